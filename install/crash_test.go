package install_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/policy"
)

// The crash child is this test binary re-executed with these variables: it
// runs one install (or rollback) and dies with os.Exit(137) at the named
// failpoint, without running a single defer, like a kill -9.
const (
	childEnv       = "AIRLOCK_INSTALL_CRASH_CHILD" // "install" or "rollback"
	childRoot      = "AIRLOCK_INSTALL_CRASH_ROOT"
	childBundle    = "AIRLOCK_INSTALL_CRASH_BUNDLE"
	childPolicy    = "AIRLOCK_INSTALL_CRASH_POLICY"
	childFailpoint = "AIRLOCK_INSTALL_CRASH_FAILPOINT"
	childHit       = "AIRLOCK_INSTALL_CRASH_HIT" // die at the Nth pass (default 1)
	crashCode      = 137
)

func crashChild() {
	fp := os.Getenv(childFailpoint)
	hit, _ := strconv.Atoi(os.Getenv(childHit))
	if hit < 1 {
		hit = 1
	}
	n := 0
	failpoint := func(name string) {
		if name == fp {
			if n++; n == hit {
				os.Exit(crashCode)
			}
		}
	}
	root := os.Getenv(childRoot)
	var err error
	switch os.Getenv(childEnv) {
	case "install":
		var pol *policy.Policy
		if pol, err = policy.Load(os.Getenv(childPolicy)); err == nil {
			var f *os.File
			if f, err = os.Open(os.Getenv(childBundle)); err == nil {
				_, err = install.Install(context.Background(), f, install.Options{Root: root, Policy: pol, Now: now, Path: os.Getenv(childBundle), Failpoint: failpoint})
			}
		}
	case "rollback":
		_, err = install.Rollback(context.Background(), root, "demo", install.RollbackOptions{Now: now, Failpoint: failpoint})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(t *testing.T, mode, root, bundlePath, fp string, hit int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childRoot+"="+root, childBundle+"="+bundlePath,
		childPolicy+"="+getFixture(t).policies["default"], childFailpoint+"="+fp, childHit+"="+strconv.Itoa(hit))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != crashCode {
		t.Fatalf("child did not crash at %s#%d: %v\n%s", fp, hit, err, out)
	}
}

// idle drops an empty lock file and an empty state from a snapshot: an
// idle root's lock is empty, and a first install that crashed leaves one
// where there was none; a first install writes the empty state (no
// bundles) before anything under releases, which says what no state says.
func idle(s map[string]string) map[string]string {
	if s[".airlock/lock"] == "file 0644 "+emptySHA256 {
		delete(s, ".airlock/lock")
	}
	if s[".airlock/state.json"] == "file 0644 "+emptyStateSHA256 {
		delete(s, ".airlock/state.json")
	}
	return s
}

const (
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// emptyStateSHA256 is of "{\n  \"schemaVersion\": 1,\n  \"bundles\": {}\n}\n".
	emptyStateSHA256 = "1c862ef13cee944ebfe287c5c4fc21c1f612eafc9211a355ddc4a09fb770155d"
)

// copyTree copies a directory tree with modes and links, for reference roots.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}

// TestCrashAtEveryFailpoint kills an install (a real process exit, no
// defers) at every failpoint, on a first install and on an upgrade. The
// next look at the root (airlock status) must show exactly the old tree or
// exactly the new one, and rerunning the install must complete to the new
// tree.
func TestCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	type point struct {
		name string
		hit  int
	}
	var points []point
	for _, fp := range install.Failpoints() {
		points = append(points, point{fp, 1})
	}
	points = append(points, point{install.FailpointStaged, 4}, point{install.FailpointStaged, 8})

	for _, upgrade := range []bool{false, true} {
		// Reference trees, without crashes: old (before) and new (after).
		base := t.TempDir()
		oldRoot := filepath.Join(base, "old")
		os.MkdirAll(oldRoot, 0o755)
		if upgrade {
			mustInstall(t, oldRoot, v1)
		}
		newRoot := filepath.Join(base, "new")
		copyTree(t, oldRoot, newRoot)
		mustInstall(t, newRoot, v2)
		oldSnap, newSnap := idle(snapshot(t, oldRoot)), idle(snapshot(t, newRoot))

		for _, p := range points {
			t.Run(fmt.Sprintf("upgrade=%v/%s#%d", upgrade, p.name, p.hit), func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "root")
				copyTree(t, oldRoot, root)
				runChild(t, "install", root, v2, p.name, p.hit)
				// The next look repairs what the crash left.
				if _, err := install.ReadStatus(context.Background(), root); err != nil {
					t.Fatalf("status after the crash: %v", err)
				}
				got := idle(snapshot(t, root))
				switch {
				case sameSnap(got, oldSnap), sameSnap(got, newSnap):
				case abortedOld(t, root, got, oldSnap, upgrade):
					// Killed between its pending record and its commit
					// point: indistinguishable from a committed install
					// whose state was restored from a backup (see
					// TestRestoredBackupKeepsSequence), so the record stays
					// as an aborted one and its sequence counts.
					if p.name != install.FailpointBeforeRename && p.name != install.FailpointAfterRename && p.name != install.FailpointBeforeState {
						t.Fatalf("after a crash at %s the root shows an aborted install", p.name)
					}
					t.Logf("crash at %s#%d: the root shows the old release, with the aborted record of the new one", p.name, p.hit)
				default:
					t.Fatalf("after a crash at %s the root is neither old nor new:\nvs old:\n%s\nvs new:\n%s", p.name, diffSnap(oldSnap, got), diffSnap(newSnap, got))
				}
				if sameSnap(got, newSnap) {
					t.Logf("crash at %s#%d: the root shows the new release", p.name, p.hit)
				} else {
					t.Logf("crash at %s#%d: the root shows the old release", p.name, p.hit)
				}
				noStaging(t, root)
				res, err := installFile(t, root, v2, loadPolicy(t, "default"))
				if err != nil {
					t.Fatalf("rerun: %v", err)
				}
				if d := diffSnap(newSnap, idle(snapshot(t, root))); d != "" {
					t.Fatalf("rerun (%s) did not reach the new tree:\n%s", res.Outcome, d)
				}
				if _, err := install.Check(context.Background(), root); err != nil {
					t.Fatalf("check after the rerun: %v", err)
				}
			})
		}
	}
}

// abortedOld reports whether the root shows the old release, with 2.0.0
// (sequence 20) kept as an aborted install: its record marked aborted, the
// highest accepted sequence raised to 20, nothing else changed.
func abortedOld(t *testing.T, root string, got, oldSnap map[string]string, upgrade bool) bool {
	t.Helper()
	drop := func(s map[string]string) map[string]string {
		c := map[string]string{}
		for k, v := range s {
			c[k] = v
		}
		delete(c, ".airlock/state.json")
		delete(c, "releases/demo/.records/2.0.0.json")
		return c
	}
	if !sameSnap(drop(got), drop(oldSnap)) {
		return false
	}
	rec, err := os.ReadFile(filepath.Join(root, "releases", "demo", ".records", "2.0.0.json"))
	if err != nil || !strings.Contains(string(rec), `"aborted"`) || strings.Contains(string(rec), `"pending"`) {
		return false
	}
	st, err := install.ReadStatus(context.Background(), root)
	if err != nil || len(st.Bundles) != 1 {
		return false
	}
	b := st.Bundles[0]
	if upgrade {
		return b.HighestSequence == 20 && b.Current == "1.0.0" && len(b.Releases) == 1
	}
	return b.HighestSequence == 20 && b.Current == "" && len(b.Releases) == 0
}

// TestCrashDuringRollback does the same for rollback's failpoints.
func TestCrashDuringRollback(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	oldRoot := filepath.Join(base, "old")
	mustInstall(t, oldRoot, pack(t, release{version: "1.0.0", seq: 10}))
	mustInstall(t, oldRoot, pack(t, release{version: "2.0.0", seq: 20}))
	newRoot := filepath.Join(base, "new")
	copyTree(t, oldRoot, newRoot)
	if _, err := install.Rollback(context.Background(), newRoot, "demo", install.RollbackOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	oldSnap, newSnap := snapshot(t, oldRoot), snapshot(t, newRoot)
	for _, fp := range []string{install.FailpointBeforeState, install.FailpointAfterState, install.FailpointBeforeLink, install.FailpointAfterLink, install.FailpointAfterAudit} {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			copyTree(t, oldRoot, root)
			runChild(t, "rollback", root, "", fp, 1)
			if _, err := install.ReadStatus(context.Background(), root); err != nil {
				t.Fatal(err)
			}
			got := snapshot(t, root)
			if !sameSnap(got, oldSnap) && !sameSnap(got, newSnap) {
				t.Fatalf("neither old nor new:\n%s\n--\n%s", diffSnap(oldSnap, got), diffSnap(newSnap, got))
			}
		})
	}
}

// TestConcurrentInstallsFailFast holds one install at its first staged file
// and starts a second: it must fail at once, naming the holder.
func TestConcurrentInstallsFailFast(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	v3 := pack(t, release{version: "3.0.0", seq: 30})
	reached, proceed := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		_, err := installFile(t, root, v2, loadPolicy(t, "default"), func(o *install.Options) {
			o.Failpoint = func(name string) {
				if name == install.FailpointStaged && first {
					first = false
					close(reached)
					<-proceed
				}
			}
		})
		done <- err
	}()
	<-reached
	start := time.Now()
	_, err := installFile(t, root, v3, loadPolicy(t, "default"))
	var le *install.LockedError
	if !errors.As(err, &le) || le.Holder == "" || !errors.Is(err, install.ErrLocked) {
		t.Fatalf("second install: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the second install took %v to fail", el)
	}
	t.Logf("refused: %v", err)
	// Status still answers, read-only.
	st, err := install.ReadStatus(context.Background(), root)
	if err != nil || st.ReadOnly == "" || st.Bundles[0].Current != "1.0.0" {
		t.Fatalf("status while locked: %+v %v", st, err)
	}
	if _, err := install.Rollback(context.Background(), root, "demo", install.RollbackOptions{}); !errors.Is(err, install.ErrLocked) {
		t.Fatalf("rollback while locked: %v", err)
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("first install: %v", err)
	}
	mustInstall(t, root, v3)
}
