package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
)

// TestPackPlatformFlag: --platform applies to every image without its own
// platforms:, with the rules of format.md §10.
func TestPackPlatformFlag(t *testing.T) {
	t.Parallel()
	dir := sampleRelease(t)
	spec := filepath.Join(dir, "airlock.yaml")
	out := filepath.Join(t.TempDir(), "amd64.airlock")
	if code, _, stderr := runCLI(t, itgEpoch, "pack", "-q", "-f", spec, "-o", out, "--platform", "linux/amd64"); code != exitOK {
		t.Fatalf("pack --platform linux/amd64: exit %d\n%s", code, stderr)
	}
	for _, a := range inspectBundle(t, out).Artifacts {
		if a.Kind != bundle.KindImage {
			continue
		}
		if strings.Join(a.Platforms, ",") != "linux/amd64" {
			t.Errorf("%s: platforms %v", a.Ref, a.Platforms)
		}
		if strings.HasSuffix(a.Ref, "/demo/api:1.0") != a.Filtered {
			t.Errorf("%s: filtered %v (only the two-platform index is rewritten)", a.Ref, a.Filtered)
		}
	}
	// The single-platform images (worker, legacy) do not offer linux/arm64:
	// the pack fails naming the one it met first (they resolve concurrently).
	code, _, stderr := runCLI(t, itgEpoch, "pack", "-q", "-f", spec, "-o", filepath.Join(t.TempDir(), "x.airlock"), "--platform", "linux/amd64,linux/arm64")
	named := strings.Contains(stderr, "demo/worker:1.0: single-platform image is linux/amd64, not linux/arm64") ||
		strings.Contains(stderr, "demo/legacy:1.0: single-platform image is linux/amd64, not linux/arm64")
	if code != exitError || !named {
		t.Fatalf("two platforms: exit %d\n%s", code, stderr)
	}
	for _, bad := range []string{"linux", "linux/amd64,linux/amd64", "Linux/AMD64"} {
		if code, _, stderr := runCLI(t, itgEpoch, "pack", "-q", "-f", spec, "--platform", bad); code != exitUsage {
			t.Errorf("--platform %s: exit %d, want 2\n%s", bad, code, stderr)
		}
	}
}
