package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestMirrorSiteStateCLI: an older bundle of the same name is refused with
// exit 3 after a newer one was mirrored into the prefix, also with
// --allow-downgrade when the policy rule does not consent; a
// non-positive --retry-window is a usage error.
func TestMirrorSiteStateCLI(t *testing.T) {
	t.Parallel()
	reg := testkit.Start(t)
	dir, _, pol, env := signedRelease(t)
	rel := sampleRelease(t)
	pack := func(seq string) string {
		out := filepath.Join(dir, "demo-"+seq+".airlock")
		if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", out, "--sequence", seq,
			"--key", filepath.Join(dir, "release.key"), "--key", filepath.Join(dir, "security.key")); code != 0 {
			t.Fatalf("pack --sequence %s: %s", seq, stderr)
		}
		return out
	}
	newer, older := pack("2000000000"), pack("1900000000")
	if code, res, stderr := mirrorCLI(t, nil, newer, reg.Host+"/site", pol); code != 0 {
		t.Fatalf("newer bundle: exit %d: %s", code, stderr)
	} else if res.State != reg.Host+"/site/airlock-state:demo" {
		t.Errorf("state %q", res.State)
	}
	for _, extra := range [][]string{nil, {"--allow-downgrade"}} {
		code, res, stderr := mirrorCLI(t, nil, older, reg.Host+"/site", pol, extra...)
		if code != exitRejected {
			t.Fatalf("older bundle %v: exit %d, want %d: %s", extra, code, exitRejected, stderr)
		}
		if !strings.Contains(stderr, "site state") || !strings.Contains(stderr, "highest mirrored 2000000000") {
			t.Errorf("older bundle %v: stderr does not explain: %s", extra, stderr)
		}
		if res.Tags != 0 || res.Blobs.Pushed != 0 || res.Manifests.Pushed != 0 {
			t.Errorf("older bundle %v pushed something: %+v", extra, res)
		}
	}
	if code, _, stderr := runCLI(t, nil, "mirror", older, "--to", reg.Host+"/site", "--policy", pol, "--retry-window", "0s"); code != exitUsage {
		t.Errorf("--retry-window 0s: exit %d, want %d: %s", code, exitUsage, stderr)
	}
}
