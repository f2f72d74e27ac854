package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// runCmd runs one command built by its constructor, as `airlock NAME args`
// would (the commands of this file need not be registered for the test).
func runCmd(t *testing.T, c command, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := runCommand(context.Background(), c, args, e)
	if strings.Contains(errb.String(), "panic:") {
		t.Fatalf("panic in airlock %s %v:\n%s", c.name, args, errb.String())
	}
	return code, out.String(), errb.String()
}

// installRelease packs the sample release as version VERSION with sequence
// SEQ, signed by two keys that a 2-of-2 policy requires.
type installFixture struct {
	dir, rel, policy string
	env              map[string]string
}

func newInstallFixture(t *testing.T) *installFixture {
	t.Helper()
	f := &installFixture{rel: sampleRelease(t), dir: t.TempDir()}
	f.env = map[string]string{"AIRLOCK_PASSWORD": testPassword, "SOURCE_DATE_EPOCH": fmt.Sprint(time.Now().Unix() - 60)}
	for _, k := range []string{"release", "security"} {
		if code, _, stderr := runCLI(t, f.env, "key", "generate", "--output", filepath.Join(f.dir, k)); code != 0 {
			t.Fatalf("key generate: %s", stderr)
		}
	}
	f.policy = filepath.Join(f.dir, "policy.yaml")
	os.WriteFile(f.policy, []byte("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: demo\n    signers: [release, security]\n    threshold: 2\n"), 0o644)
	return f
}

func (f *installFixture) pack(t *testing.T, version string, seq int) string {
	t.Helper()
	spec := filepath.Join(f.rel, "airlock.yaml")
	raw, _ := os.ReadFile(spec)
	s := strings.Replace(string(raw), "\nversion: 1.0.0\n", "\nversion: "+version+"\n", 1)
	dir := filepath.Join(t.TempDir(), "rel")
	if err := os.CopyFS(dir, os.DirFS(f.rel)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(s), 0o644)
	os.WriteFile(filepath.Join(dir, "config", "app.yaml"), []byte("# version "+version+"\nport: 8080\n"), 0o644)
	out := filepath.Join(f.dir, "demo-"+version+".airlock")
	code, _, stderr := runCLI(t, f.env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out,
		"--key", filepath.Join(f.dir, "release.key"), "--key", filepath.Join(f.dir, "security.key"), "--sequence", fmt.Sprint(seq))
	if code != 0 {
		t.Fatalf("pack %s: %s", version, stderr)
	}
	return out
}

func TestInstallStatusRollbackCheckPruneCLI(t *testing.T) {
	t.Parallel()
	f := newInstallFixture(t)
	v1, v2 := f.pack(t, "1.0.0", 100), f.pack(t, "1.1.0", 200)
	root := filepath.Join(t.TempDir(), "demo-root")

	code, out, stderr := runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy)
	if code != exitOK || !strings.Contains(out, "installed demo 1.0.0") || !strings.Contains(out, "3 images and 1 chart verified but not mirrored") {
		t.Fatalf("install v1: exit %d\n%s%s", code, out, stderr)
	}
	t.Log(out)
	if b, err := os.ReadFile(filepath.Join(root, "current", "demo", "etc", "demo", "app.yaml")); err != nil || !strings.Contains(string(b), "1.0.0") {
		t.Fatalf("installed file: %q %v", b, err)
	}
	// The same bundle again: a no-op that says so.
	code, out, _ = runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy)
	if code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("reinstall: exit %d\n%s", code, out)
	}

	// Upgrade, mirroring images and models into a registry in the same run.
	reg := testkit.StartInProcess(t)
	code, out, stderr = runCmd(t, installCommand(), v2, "--root", root, "--policy", f.policy, "--registry", reg.Host+"/mirror")
	if code != exitOK || !strings.Contains(out, "installed demo 1.1.0") || !strings.Contains(out, "Mirrored into "+reg.Host+"/mirror") || !strings.Contains(out, "(was 1.0.0)") {
		t.Fatalf("install v2 --registry: exit %d\n%s%s", code, out, stderr)
	}
	t.Log(out)

	// A replay of the older bundle is refused with exit 3, and says why.
	code, out, stderr = runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy)
	if code != exitRejected || !strings.Contains(out, "REJECTED") || !strings.Contains(stderr, "lower sequence") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, stderr)
	}
	t.Log(stderr)

	code, out, _ = runCmd(t, statusCommand(), "--root", root)
	if code != exitOK || !strings.Contains(out, "demo: current 1.1.0 (highest sequence accepted: 200)") || !strings.Contains(out, "release (") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	t.Log(out)
	code, out, _ = runCmd(t, statusCommand(), "--root", root, "--json")
	var st install.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || len(st.Bundles) != 1 || len(st.Bundles[0].Releases) != 2 {
		t.Fatalf("status --json: %v %s", err, out)
	}

	if code, out, _ = runCmd(t, checkCommand(), "--root", root); code != exitOK || !strings.Contains(out, "0 findings") {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	p := filepath.Join(root, "releases", "demo", "1.1.0", "etc", "demo", "app.yaml")
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("tampered\n"), 0o644)
	os.WriteFile(filepath.Join(root, "releases", "demo", "1.1.0", "etc", "demo", "extra.conf"), nil, 0o644)
	code, out, _ = runCmd(t, checkCommand(), "--root", root)
	if code != exitRejected || !strings.Contains(out, "modified") || !strings.Contains(out, "extra") {
		t.Fatalf("check with drift: exit %d\n%s", code, out)
	}
	t.Log(out)
	code, out, _ = runCmd(t, checkCommand(), "--root", root, "--json")
	var rep install.CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitRejected || rep.Findings != 3 {
		t.Fatalf("check --json: exit %d %v\n%s", code, err, out)
	}

	code, out, _ = runCmd(t, rollbackCommand(), "demo", "--root", root)
	if code != exitOK || !strings.Contains(out, "rolled back demo from 1.1.0 to 1.0.0") {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	if code, _, _ = runCmd(t, rollbackCommand(), "demo", "--root", root); code != exitError {
		t.Fatalf("second rollback: exit %d, want 1", code)
	}
	code, out, _ = runCmd(t, pruneCommand(), "--root", root, "--keep", "1")
	if code != exitOK || !strings.Contains(out, "pruned 0 releases, kept 2 releases") {
		t.Fatalf("prune: exit %d\n%s", code, out)
	}

	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"install", v1, "--policy", f.policy},
		{"install", v1, "--root", root},
		{"install", "--root", root, "--policy", f.policy},
		{"install", v1, "--root", root, "--policy", f.policy, "--ca-file", "x.pem"},
		{"rollback", "--root", root},
		{"prune", "--root", root},
		{"status"},
		{"check", "--root", root, "extra"},
	} {
		c := map[string]command{"install": installCommand(), "rollback": rollbackCommand(), "prune": pruneCommand(), "status": statusCommand(), "check": checkCommand()}[args[0]]
		if code, _, _ := runCmd(t, c, args[1:]...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// A missing bundle is exit 1; a missing root for status too.
	if code, _, _ := runCmd(t, installCommand(), filepath.Join(f.dir, "nope.airlock"), "--root", root, "--policy", f.policy); code != exitError {
		t.Errorf("missing bundle: exit %d", code)
	}
	if code, _, _ := runCmd(t, statusCommand(), "--root", filepath.Join(root, "nope")); code != exitError {
		t.Errorf("missing root: exit %d", code)
	}
	for _, c := range []command{installCommand(), statusCommand(), rollbackCommand(), checkCommand(), pruneCommand()} {
		if code, out, _ := runCmd(t, c, "--help"); code != 0 || !strings.Contains(out, "Exit status") {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
	}
}

// TestInstallJSONCLI: --json prints the documented result, also when refused.
func TestInstallJSONCLI(t *testing.T) {
	t.Parallel()
	f := newInstallFixture(t)
	v1, v2 := f.pack(t, "1.0.0", 100), f.pack(t, "1.1.0", 200)
	root := t.TempDir()
	runCmd(t, installCommand(), v2, "--root", root, "--policy", f.policy)
	code, out, _ := runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy, "--json")
	var res install.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitRejected || res.Verify == nil || res.Verify.Verified || res.Verify.Stage != "trusted" || res.Outcome != "" {
		t.Fatalf("refused --json: exit %d %v\n%s", code, err, out)
	}
}
