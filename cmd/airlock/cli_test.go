package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/policy"
)

// runCLI runs airlock in-process and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code := run(context.Background(), args, e)
	if strings.Contains(errb.String(), "panic:") {
		t.Fatalf("panic in airlock %v:\n%s", args, errb.String())
	}
	return code, out.String(), errb.String()
}

// sampleRelease pushes the sample images into an in-process registry and
// writes the sample release pointing at it.
func sampleRelease(t *testing.T) (dir string) {
	t.Helper()
	reg := testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := sample.WriteRelease(dir, reg.Host); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPackInspect(t *testing.T) {
	t.Parallel()
	dir := sampleRelease(t)
	out := filepath.Join(t.TempDir(), "demo.airlock")
	env := map[string]string{"SOURCE_DATE_EPOCH": "1767225600"}
	code, stdout, stderr := runCLI(t, env, "pack", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out)
	if code != 0 {
		t.Fatalf("pack exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "packed demo 1.0.0") {
		t.Fatalf("pack output: %q", stdout)
	}
	code, stdout, stderr = runCLI(t, nil, "inspect", out, "--json")
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, stderr)
	}
	var ins bundle.Inspection
	if err := json.Unmarshal([]byte(stdout), &ins); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range ins.Artifacts {
		kinds[a.Kind]++
	}
	if kinds["image"] != 3 || kinds["model"] != 1 || kinds["file"] != 2 || kinds["sbom"] != 2 {
		t.Fatalf("artifacts by kind: %v", kinds)
	}
	code, stdout, _ = runCLI(t, nil, "inspect", out)
	if code != 0 || !strings.Contains(stdout, "linux/amd64, linux/arm64") {
		t.Fatalf("inspect text: %s", stdout)
	}
	t.Log(stdout)

	// Same inputs and SOURCE_DATE_EPOCH: byte-identical bundle.
	out2 := filepath.Join(t.TempDir(), "demo.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out2); code != 0 {
		t.Fatalf("second pack: %s", stderr)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Fatalf("bundles differ: %d vs %d bytes", len(a), len(b))
	}
}

// TestSuggestions: a mistyped command or flag is answered with the nearest
// known one, and the exit status stays the usage error's.
func TestSuggestions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"verfy", "x.airlock"}, "Did you mean 'airlock verify'?"},
		{[]string{"instal"}, "Did you mean 'airlock install'?"},
		{[]string{"verify", "--polcy", "p.yaml", "x.airlock"}, "Did you mean --policy?"},
		{[]string{"pack", "--ouptut=x"}, "Did you mean --output?"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("airlock %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
	if code, _, stderr := runCLI(t, nil, "deploy"); code != exitUsage || strings.Contains(stderr, "Did you mean") {
		t.Errorf("airlock deploy: exit %d, %q: no command is near, so none may be suggested", code, stderr)
	}
}

// TestChannelRuleAsDocumented: pack and the policy share one channel rule,
// and the examples docs/commands/pack.md and docs/policy.md give behave as
// written: prod, Prod and site/eu-1 are valid; a space is a usage error
// found before anything is packed.
func TestChannelRuleAsDocumented(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badWrite(t, dir, map[string]string{"airlock.yaml": badFileYAML, "a.txt": "x\n"})
	for _, ch := range []string{"prod", "Prod", "site/eu-1", "a.b_c-d"} {
		out := filepath.Join(t.TempDir(), "b.airlock")
		if code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out, "--channel", ch); code != exitOK {
			t.Errorf("pack --channel %q: exit %d: %s", ch, code, stderr)
		}
		pol := "keys:\n  k: {publicKey: k.pub}\nbundles:\n  - match: demo\n    signers: [k]\n    threshold: 1\n    channel: " + ch + "\n"
		if err := policyChannelOK(t, pol); err != nil {
			t.Errorf("policy channel %q: %v", ch, err)
		}
	}
	for _, ch := range []string{"Prod Stage", "-prod", strings.Repeat("a", 129)} {
		out := filepath.Join(t.TempDir(), "b.airlock")
		code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out, "--channel", ch)
		if code != exitUsage || !strings.Contains(stderr, "--channel") {
			t.Errorf("pack --channel %q: exit %d, %q; want a usage error naming --channel", ch, code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("pack --channel %q left a bundle", ch)
		}
	}
}

// writeKeyPolicy writes pol (which names the key file k.pub) next to a
// real key k.pub and returns its path.
func writeKeyPolicy(t *testing.T, pol string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := keys.Generate(filepath.Join(dir, "k"), "ecdsa-p256", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// policyChannelOK loads pol with a real key.
func policyChannelOK(t *testing.T, pol string) error {
	t.Helper()
	_, err := policy.Load(writeKeyPolicy(t, pol))
	return err
}

// runCLIStdin is runCLI with stdin.
func runCLIStdin(t *testing.T, environ map[string]string, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code := run(context.Background(), args, e)
	if strings.Contains(errb.String(), "panic:") {
		t.Fatalf("panic in airlock %v:\n%s", args, errb.String())
	}
	return code, out.Bytes(), errb.String()
}

// TestStdinAndStdout: `pack -o -` streams the bundle to standard output
// (the report goes to standard error), byte for byte what a file would
// hold, and every command that reads a bundle takes "-" for standard
// input; sign, which rewrites in place, says it needs a file.
func TestStdinAndStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badWrite(t, dir, map[string]string{"airlock.yaml": badFileYAML, "a.txt": strings.Repeat("x\n", 1000)})
	env := map[string]string{"SOURCE_DATE_EPOCH": "1767225600", "AIRLOCK_PASSWORD": testPassword}
	// Ed25519 signatures are deterministic, so the two bundles can match.
	if code, _, stderr := runCLI(t, env, "key", "generate", "-o", filepath.Join(dir, "k"), "--algorithm", "ed25519"); code != exitOK {
		t.Fatalf("key generate: %s", stderr)
	}
	code, streamed, stderr := runCLIStdin(t, env, nil, "pack", "-f", filepath.Join(dir, "airlock.yaml"), "-o", "-", "--key", filepath.Join(dir, "k.key"), "--expires", "3650d")
	if code != exitOK || !strings.Contains(stderr, "-> standard output") {
		t.Fatalf("pack -o -: exit %d: %s", code, stderr)
	}
	file := filepath.Join(dir, "b.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", file, "--key", filepath.Join(dir, "k.key"), "--expires", "3650d"); code != exitOK {
		t.Fatalf("pack to a file: %s", stderr)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(streamed, want) {
		t.Fatalf("streamed %d bytes, the file has %d; they differ", len(streamed), len(want))
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  k: {publicKey: k.pub}\nbundles:\n  - match: demo\n    signers: [k]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLIStdin(t, env, streamed, "verify", "-q", "--policy", pol, "-"); code != exitOK {
		t.Fatalf("verify -: exit %d: %s %s", code, out, stderr)
	}
	if code, out, stderr := runCLIStdin(t, env, streamed, "inspect", "-"); code != exitOK || !strings.Contains(string(out), "demo") {
		t.Fatalf("inspect -: exit %d: %s %s", code, out, stderr)
	}
	root := filepath.Join(t.TempDir(), "root")
	if code, out, stderr := runCLIStdin(t, env, streamed, "install", "-q", "--policy", pol, "--root", root, "-"); code != exitOK {
		t.Fatalf("install -: exit %d: %s %s", code, out, stderr)
	}
	if code, _, stderr := runCLIStdin(t, env, streamed, "sign", "-", "--key", filepath.Join(dir, "k.key")); code != exitUsage || !strings.Contains(stderr, "standard input") {
		t.Fatalf("sign -: exit %d: %s", code, stderr)
	}
	// A truncated stream is refused like a truncated file.
	if code, _, _ := runCLIStdin(t, env, streamed[:len(streamed)/2], "verify", "-q", "--policy", pol, "-"); code != exitRejected {
		t.Fatalf("verify of a truncated stream: exit %d, want %d", code, exitRejected)
	}
}

// TestLibraryErrorsNameNoFlags: the library says what is wrong; the CLI
// names the flag that fixes it (here: a scheme in --to).
func TestLibraryErrorsNameNoFlags(t *testing.T) {
	t.Parallel()
	if _, err := mirror.ParseTarget("https://registry.site/m", false); err == nil || strings.Contains(err.Error(), "--") {
		t.Errorf("ParseTarget: %v; want an error that names no flag", err)
	}
	pol := writeKeyPolicy(t, "keys:\n  k: {publicKey: k.pub}\nbundles:\n  - match: demo\n    signers: [k]\n    threshold: 1\n")
	code, _, stderr := runCLI(t, nil, "mirror", "x.airlock", "--to", "http://registry.site/m", "--policy", pol)
	if code != exitUsage || !strings.Contains(stderr, "--to") || !strings.Contains(stderr, "--insecure-registry") {
		t.Errorf("mirror --to http://...: exit %d, %q; want a usage error naming --to and --insecure-registry", code, stderr)
	}
}

// TestQuietPrintsOnlyTheResult: with -q a command prints errors and, where
// a script needs one, a single result line.
func TestQuietPrintsOnlyTheResult(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badWrite(t, dir, map[string]string{"airlock.yaml": badFileYAML, "a.txt": "x\n"})
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	if code, _, stderr := runCLI(t, env, "key", "generate", "-o", filepath.Join(dir, "k")); code != exitOK {
		t.Fatal(stderr)
	}
	b := filepath.Join(dir, "b.airlock")
	code, out, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", b, "--key", filepath.Join(dir, "k.key"))
	if code != exitOK || out != b+"\n" || stderr != "" {
		t.Fatalf("pack -q: exit %d, stdout %q, stderr %q; want only the bundle path", code, out, stderr)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  k: {publicKey: k.pub}\nbundles:\n  - match: demo\n    signers: [k]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCLI(t, nil, "verify", "-q", "--policy", pol, b)
	if code != exitOK || out != "VERIFIED demo 1.0.0\n" || stderr != "" {
		t.Fatalf("verify -q: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = runCLI(t, nil, "install", "-q", "--policy", pol, "--root", filepath.Join(dir, "root"), b)
	if code != exitOK || out != "" || stderr != "" {
		t.Fatalf("install -q: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("keys:\n  k: {publicKey: k.pub}\nbundles:\n  - match: other\n    signers: [k]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCLI(t, nil, "verify", "-q", "--policy", other, b)
	if code != exitRejected || out != "REJECTED demo 1.0.0\n" || stderr == "" {
		t.Fatalf("verify -q of a refused bundle: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestHelpShowsOwnExitStatuses: every command's --help explains its own exit
// statuses, and each code it lists is one of the documented four.
func TestHelpShowsOwnExitStatuses(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range commands() {
		code, out, _ := runCLI(t, nil, c.name, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", c.name, code)
		}
		i := strings.Index(out, "Exit status:\n")
		if i < 0 {
			t.Fatalf("%s --help has no exit statuses", c.name)
		}
		section := out[i:]
		if seen[section] && commandExits[c.name] != "" {
			t.Errorf("%s --help repeats another command's exit statuses", c.name)
		}
		seen[section] = true
		if _, ok := commandExits[c.name]; !ok {
			t.Errorf("%s has no exit statuses of its own in commandExits", c.name)
		}
		if strings.Contains(section, "airlock.yaml") && c.name != "pack" {
			t.Errorf("%s --help mentions airlock.yaml in its exit statuses", c.name)
		}
	}
}
