package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestMain lets a test run this binary as airlock itself (for runs that
// need their own process, such as a private mount namespace).
func TestMain(m *testing.M) {
	if os.Getenv("AIRLOCK_TEST_RUN_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], newEnv(os.Stdin, os.Stdout, os.Stderr)))
	}
	os.Exit(m.Run())
}

// runOnSmallDisk runs airlock ARGS in a private mount namespace where
// small is a 32 KiB tmpfs, and returns its exit code and standard error.
func runOnSmallDisk(t *testing.T, small string, args ...string) (int, string) {
	t.Helper()
	unshare := testkit.RequireTool(t, "unshare", "apt-get install util-linux")
	script := `mount -t tmpfs -o size=32k airlock-test "$1" || exit 99; shift; exec "$@"`
	cmd := exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", small, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), "AIRLOCK_TEST_RUN_CLI=1", "AIRLOCK_PASSWORD="+testPassword)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() == 99:
		t.Fatalf("could not mount a tmpfs in a private mount namespace: %s", stderr.String())
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run: %v", err)
	return 0, ""
}

// TestNoSpaceSaysWhereAndHowMuch fills a real (tmpfs) disk under pack's
// staging directory, pack's output and mirror's temporary directory: each
// run fails with exit 1 and says which directory ran out, about how much
// it needs and how much is free, never blaming the source (finding 5 of
// issue 9: "did the source change while packing?"). Needs root for the
// mount namespace.
func TestNoSpaceSaysWhereAndHowMuch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a 32 KiB tmpfs in a private mount namespace (unshare --mount)")
	}
	t.Parallel()
	rel := sampleRelease(t)
	b, pol, _, _ := goneSourceRelease(t, nil)
	reg := testkit.StartInProcess(t)
	small := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		// --prefetch-memory 0: every layer pulled ahead of the writer waits on disk.
		{"pack spool", []string{"pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", filepath.Join(t.TempDir(), "x.airlock"), "--tmp-dir", small, "--prefetch-memory", "0"},
			[]string{"no space left in " + small + "/.airlock-pack-", "while holding pulled blobs ahead of the writer", "it needs about ", "is free", "hint: ", "--tmp-dir"}},
		{"pack output", []string{"pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", filepath.Join(small, "x.airlock"), "--tmp-dir", t.TempDir()},
			[]string{"no space left in " + small + " while writing the bundle", "it needs about", "is free", "hint: ", "-o"}},
		{"mirror spool", []string{"mirror", b, "--to", reg.Host + "/s", "--policy", pol, "-q", "--tmp-dir", small},
			[]string{"no space left in " + small + "/airlock-mirror-", "while spooling blob sha256:", "it needs about", "is free", "hint: ", "--tmp-dir", "--jobs"}},
	} {
		code, stderr := runOnSmallDisk(t, small, tc.args...)
		if code != exitError {
			t.Errorf("%s: exit %d, want 1: %s", tc.name, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, stderr)
			}
		}
		if strings.Contains(stderr, "did the source change") || strings.Contains(stderr, "panic") {
			t.Errorf("%s: blames the source or panics:\n%s", tc.name, stderr)
		}
		t.Logf("%s: %s", tc.name, strings.TrimSpace(stderr))
	}
}
