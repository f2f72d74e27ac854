package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/keys"
)

// runKey runs `airlock key ARGS...` through runCLI once the command is
// registered in commands(), and through runCommand until then.
func runKey(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for _, c := range commands() {
		if c.name == "key" {
			return runCLI(t, environ, append([]string{"key"}, args...)...)
		}
	}
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code := runCommand(context.Background(), keyCommand(), args, e)
	if strings.Contains(errb.String(), "panic:") {
		t.Fatalf("panic in airlock key %v:\n%s", args, errb.String())
	}
	return code, out.String(), errb.String()
}

func TestKeyGenerateAndFingerprint(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"", "ed25519", "rsa-3072"} {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(t.TempDir(), "release")
			environ := map[string]string{passwordEnv: "s3cret pass"}
			args := []string{"generate", "--output", name, "--json"}
			if alg != "" {
				args = append(args, "--algorithm", alg)
			}
			code, stdout, stderr := runKey(t, environ, args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var gen keySummary
			if err := json.Unmarshal([]byte(stdout), &gen); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			want := alg
			if want == "" {
				want = keys.DefaultAlgorithm
			}
			if gen.Algorithm != want || gen.PrivateKey != name+".key" || gen.PublicKey != name+".pub" || !strings.HasPrefix(gen.Fingerprint, "sha256:") {
				t.Fatalf("summary %+v", gen)
			}
			s, err := keys.LoadSigner(name+".key", func(bool) ([]byte, error) { return []byte("s3cret pass"), nil })
			if err != nil || s.Public.Fingerprint != gen.Fingerprint {
				t.Fatalf("generated key does not load with the password: %v", err)
			}

			code, stdout, stderr = runKey(t, nil, "fingerprint", name+".pub")
			if code != exitOK || stdout != gen.Fingerprint+" "+want+" "+name+".pub\n" {
				t.Fatalf("fingerprint exit %d: %q %s", code, stdout, stderr)
			}
			code, stdout, _ = runKey(t, nil, "fingerprint", "--json", name+".pub")
			var fp keySummary
			if code != exitOK || json.Unmarshal([]byte(stdout), &fp) != nil || fp.Fingerprint != gen.Fingerprint || fp.PrivateKey != "" {
				t.Fatalf("fingerprint --json exit %d: %s", code, stdout)
			}
		})
	}
}

func TestKeyGenerateText(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "ops")
	code, stdout, stderr := runKey(t, map[string]string{passwordEnv: "pw"}, "generate", "-o", name)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{name + ".key", name + ".pub", "fingerprint sha256:", "(ecdsa-p256)"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestKeyRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "taken")
	if err := os.WriteFile(existing+".key", []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	notKey := filepath.Join(dir, "notes.pub")
	if err := os.WriteFile(notKey, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{passwordEnv: "pw"}
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		code    int
		stderr  string
	}{
		{"no subcommand", pw, nil, exitUsage, "missing subcommand"},
		{"unknown subcommand", pw, []string{"rotate"}, exitUsage, "unknown subcommand"},
		{"generate without output", pw, []string{"generate"}, exitUsage, "--output"},
		{"generate extra argument", pw, []string{"generate", "-o", filepath.Join(dir, "a"), "b"}, exitUsage, "unexpected argument"},
		{"generate output with extension", pw, []string{"generate", "-o", filepath.Join(dir, "a.key")}, exitUsage, "without extension"},
		{"generate bad algorithm", pw, []string{"generate", "-o", filepath.Join(dir, "b"), "--algorithm", "rsa-2048"}, exitUsage, "choose one of"},
		{"generate no password", nil, []string{"generate", "-o", filepath.Join(dir, "c")}, exitError, "no password: set AIRLOCK_PASSWORD (or COSIGN_PASSWORD) or run on a terminal"},
		{"generate empty password", map[string]string{passwordEnv: ""}, []string{"generate", "-o", filepath.Join(dir, "d")}, exitError, "no password"},
		{"generate over existing", pw, []string{"generate", "-o", existing}, exitError, "already exists"},
		{"fingerprint no file", nil, []string{"fingerprint"}, exitUsage, "exactly one"},
		{"fingerprint two files", nil, []string{"fingerprint", notKey, notKey}, exitUsage, "exactly one"},
		{"fingerprint with generate flag", nil, []string{"fingerprint", "--algorithm", "ed25519", notKey}, exitUsage, "generate only"},
		{"fingerprint missing file", nil, []string{"fingerprint", filepath.Join(dir, "missing.pub")}, exitError, "missing.pub"},
		{"fingerprint not a key", nil, []string{"fingerprint", notKey}, exitError, "notes.pub"},
		{"fingerprint private key", nil, []string{"fingerprint", existing + ".key"}, exitError, "taken.key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runKey(t, tc.environ, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.stderr)
			}
			if stdout != "" {
				t.Fatalf("stdout on failure: %q", stdout)
			}
		})
	}
	if b, _ := os.ReadFile(existing + ".key"); string(b) != "old key" {
		t.Fatalf("existing key overwritten: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "notes.pub,taken.key" {
		t.Fatalf("refused commands left files: %v", names)
	}
}

func TestKeyHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runKey(t, nil, "--help")
	if code != exitOK || !strings.Contains(stdout, "fingerprint FILE.pub") || !strings.Contains(stdout, "--algorithm") {
		t.Fatalf("help exit %d:\n%s", code, stdout)
	}
}

// TestReadPasswordNoTerminal: a pipe on stdin is not a terminal, so without
// AIRLOCK_PASSWORD there is no way to ask and the error says what to do.
func TestReadPasswordNoTerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var errb bytes.Buffer
	e := &env{stdin: r, stdout: &errb, stderr: &errb, stderrTTY: true, getenv: func(string) string { return "" }}
	if _, err := readPassword(e, true, "x.key"); !errors.Is(err, keys.ErrBadPassword) || !strings.Contains(err.Error(), passwordEnv) {
		t.Fatalf("readPassword: %v", err)
	}
	if errb.Len() != 0 {
		t.Fatalf("prompted without a terminal: %q", errb.String())
	}
	e.getenv = func(k string) string { return map[string]string{passwordEnv: "from env"}[k] }
	pw, err := passFunc(e, "x.key")(false)
	if err != nil || string(pw) != "from env" {
		t.Fatalf("passFunc: %q %v", pw, err)
	}
}

// TestCosignPasswordFallback: COSIGN_PASSWORD unlocks a key when
// AIRLOCK_PASSWORD is unset, and AIRLOCK_PASSWORD wins when both are set.
func TestCosignPasswordFallback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if code, _, stderr := runCLI(t, map[string]string{"COSIGN_PASSWORD": "cosign-pw"}, "key", "generate", "-o", key); code != exitOK {
		t.Fatalf("generate with COSIGN_PASSWORD: exit %d: %s", code, stderr)
	}
	b, _ := badValidBundle(t)
	bundlePath := filepath.Join(dir, "b.airlock")
	if err := os.WriteFile(bundlePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, map[string]string{"COSIGN_PASSWORD": "cosign-pw"}, "sign", "--key", key+".key", bundlePath); code != exitOK {
		t.Fatalf("sign with COSIGN_PASSWORD: exit %d: %s", code, stderr)
	}
	code, _, stderr := runCLI(t, map[string]string{"AIRLOCK_PASSWORD": "wrong", "COSIGN_PASSWORD": "cosign-pw"}, "sign", "--key", key+".key", bundlePath)
	if code != exitError || !strings.Contains(stderr, "password") {
		t.Fatalf("AIRLOCK_PASSWORD must win over COSIGN_PASSWORD: exit %d: %s", code, stderr)
	}
}
