package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestFormatV1StillReads: a bundle written by the last airlock that wrote
// format 1 verifies, inspects, mirrors and installs with this one.
func TestFormatV1StillReads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"legacy-1.0.0.airlock", "v1key.pub"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  v1: { publicKey: v1key.pub }\nbundles:\n  - match: legacy\n    signers: [v1]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "legacy-1.0.0.airlock")
	code, stdout, stderr := runCLI(t, nil, "inspect", b)
	if code != 0 || !strings.Contains(stdout, "legacy") || strings.Contains(stdout, "Body:") {
		t.Fatalf("inspect: exit %d: %s %s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "verify", "-q", b, "-p", pol); code != 0 {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}
	root := filepath.Join(dir, "root")
	if code, _, stderr := runCLI(t, nil, "install", "-q", b, "--root", root, "-p", pol); code != 0 {
		t.Fatalf("install: exit %d: %s", code, stderr)
	}
	if got, err := os.ReadFile(filepath.Join(root, "current", "legacy", "etc", "legacy", "app.yaml")); err != nil || string(got) != "port: 8080\n" {
		t.Fatalf("installed file: %q, %v", got, err)
	}
	reg := testkit.Start(t)
	if code, _, stderr := runCLI(t, nil, "mirror", "-q", b, "--to", reg.Host+"/site", "-p", pol); code != 0 {
		t.Fatalf("mirror: exit %d: %s", code, stderr)
	}
}
