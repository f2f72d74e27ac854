package install_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/install"
)

// TestStateLostAfterCommit (review, defect 1): an install killed after its
// commit point, then state.json lost. The release records must never be
// behind the committed state, so Repair lists the release again: it never
// removes the release DIR/current/NAME points at, and never lowers the
// highest accepted sequence, so an older bundle is still a replay. Killed
// just before the commit (before-state), the install may or may not have
// committed as far as a lost state can tell: Repair keeps the release and
// its sequence (the safe side) and leaves the current release alone.
func TestStateLostAfterCommit(t *testing.T) {
	t.Parallel()
	v100 := pack(t, release{version: "1.0.0", seq: 100})
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	v150 := pack(t, release{version: "1.0.0-hotfix", seq: 150})
	base := filepath.Join(t.TempDir(), "base")
	mustInstall(t, base, v100)
	ctx := context.Background()
	for _, fp := range []string{install.FailpointBeforeState, install.FailpointAfterState, install.FailpointBeforeLink, install.FailpointAfterLink, install.FailpointAfterAudit} {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			copyTree(t, base, root)
			runChild(t, "install", root, v200, fp, 1)
			linked, _ := os.Readlink(install.CurrentLink(root, "demo"))
			if err := os.Remove(install.StatePath(root)); err != nil {
				t.Fatal(err)
			}
			// Without the repair every command refuses and changes nothing.
			if _, err := install.ReadStatus(ctx, root); !errors.Is(err, install.ErrStateBehind) {
				t.Fatalf("status with the state lost: %v, want the state behind the records", err)
			}
			done, err := install.Repair(ctx, root)
			if err != nil {
				t.Fatalf("repair: %v", err)
			}
			for _, d := range done {
				if strings.HasPrefix(d, "removed "+install.ReleaseDir(root, "demo", "1.0.1")) {
					t.Errorf("repair removed the release: %q", d)
				}
			}
			t.Logf("repaired: %q", done)
			if got, _ := os.Readlink(install.CurrentLink(root, "demo")); got != linked {
				t.Fatalf("repair moved %s from %s to %s", install.CurrentLink(root, "demo"), linked, got)
			}
			if _, err := os.Stat(filepath.Join(root, "current", "demo", "etc", "app.yaml")); err != nil {
				t.Fatalf("the current release is gone: %v", err)
			}
			st, err := install.ReadStatus(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			b := st.Bundles[0]
			wantCurrent := "1.0.0"
			if strings.HasSuffix(linked, "/1.0.1") {
				wantCurrent = "1.0.1"
			}
			if b.HighestSequence != 200 || b.Current != wantCurrent || len(b.Releases) != 2 {
				t.Fatalf("rebuilt: highest %d, current %q, %d releases; want 200, %s, 2", b.HighestSequence, b.Current, len(b.Releases), wantCurrent)
			}
			if _, err := installFile(t, root, v150, loadPolicy(t, "default")); !errors.Is(err, install.ErrReplay) {
				t.Fatalf("sequence 150 after the repair: %v, want a replay", err)
			}
			if _, err := install.Check(ctx, root); err != nil {
				t.Fatalf("check after the repair: %v", err)
			}
			// The install, run again, completes.
			mustInstall(t, root, v200)
			if st, _ := install.ReadStatus(ctx, root); st.Bundles[0].Current != "1.0.1" {
				t.Fatalf("current after the rerun: %q", st.Bundles[0].Current)
			}
		})
	}
}

// TestRepairNeverRemovesLinkTarget: a release directory DIR/current/NAME
// points at that neither the state nor a record accounts for is refused,
// not removed, by the repair and by every command's recovery.
func TestRepairNeverRemovesLinkTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 100}))
	mustInstall(t, root, pack(t, release{version: "1.0.1", seq: 200}))
	// What an airlock older than the records would have left: no record
	// of the current release, and then the state lost.
	os.Remove(filepath.Join(root, "releases", "demo", ".records", "1.0.1.json"))
	os.Remove(install.StatePath(root))
	before := idle(snapshot(t, root))
	_, err := install.Repair(ctx, root)
	if !errors.Is(err, install.ErrState) {
		t.Fatalf("repair: %v, want a refusal", err)
	}
	t.Logf("refused: %v", err)
	if d := diffSnap(before, idle(snapshot(t, root))); d != "" {
		t.Fatalf("the refused repair changed the root:\n%s", d)
	}
	// The state and every record lost: nothing can vouch for the release
	// directories, so recovery refuses instead of removing them all.
	root3 := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root3, pack(t, release{version: "1.0.0", seq: 100}))
	mustInstall(t, root3, pack(t, release{version: "1.0.1", seq: 200}))
	os.RemoveAll(filepath.Join(root3, "releases", "demo", ".records"))
	os.Remove(install.StatePath(root3))
	before = idle(snapshot(t, root3))
	if _, err := install.ReadStatus(ctx, root3); !errors.Is(err, install.ErrState) {
		t.Fatalf("status with the state and records lost: %v, want a refusal", err)
	}
	if _, err := install.Repair(ctx, root3); !errors.Is(err, install.ErrState) {
		t.Fatalf("repair with the state and records lost: %v, want a refusal", err)
	}
	if d := diffSnap(before, idle(snapshot(t, root3))); d != "" {
		t.Fatalf("the refusals changed the root:\n%s", d)
	}
	// With the state intact but not listing it (restored from a backup
	// older than the release, its record lost too): the same.
	root2 := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root2, pack(t, release{version: "1.0.0", seq: 100}))
	old := mustRead(t, install.StatePath(root2))
	mustInstall(t, root2, pack(t, release{version: "1.0.1", seq: 200}))
	os.Remove(filepath.Join(root2, "releases", "demo", ".records", "1.0.1.json"))
	os.WriteFile(install.StatePath(root2), old, 0o644)
	if _, err := install.ReadStatus(ctx, root2); !errors.Is(err, install.ErrState) {
		t.Fatalf("status: %v, want a refusal", err)
	}
	if _, err := os.Stat(install.ReleaseDir(root2, "demo", "1.0.1")); err != nil {
		t.Fatalf("the current release was removed: %v", err)
	}
}

// TestCorruptStateRepair (review, defect 2): a corrupted state.json is not
// fixed by removing the root (which throws away the rollback protection):
// the error says to run the repair, and the repair sets the file aside and
// rebuilds the state from the records, keeping the highest sequence they
// prove.
func TestCorruptStateRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	garbage := []byte("{\"schemaVersion\": 1, \"bund")
	os.WriteFile(install.StatePath(root), garbage, 0o644)

	_, err := installFile(t, root, pack(t, release{version: "1.5.0", seq: 15}), loadPolicy(t, "default"))
	var se *install.StateError
	if !errors.As(err, &se) || !errors.Is(err, install.ErrState) || !se.Repairable {
		t.Fatalf("install with a corrupted state: %v, want a repairable *StateError", err)
	}
	if strings.Contains(err.Error(), "to start over") || !strings.Contains(err.Error(), "airlock status --root "+root+" --repair") {
		t.Fatalf("unsafe or missing guidance: %v", err)
	}
	done, err := install.Repair(ctx, root)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repaired: %q", done)
	aside, _ := filepath.Glob(install.StatePath(root) + ".corrupt-*")
	if len(aside) != 1 || string(mustRead(t, aside[0])) != string(garbage) {
		t.Fatalf("set aside: %q", aside)
	}
	st, err := install.ReadStatus(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Bundles[0]; b.HighestSequence != 20 || b.Current != "2.0.0" || len(b.Releases) != 2 {
		t.Fatalf("rebuilt: highest %d, current %q, %d releases; want 20, 2.0.0, 2", b.HighestSequence, b.Current, len(b.Releases))
	}
	if _, err := installFile(t, root, pack(t, release{version: "1.5.0", seq: 15}), loadPolicy(t, "default")); !errors.Is(err, install.ErrReplay) {
		t.Fatalf("sequence 15 after the repair: %v, want a replay", err)
	}
}

// TestStaleTempFilesRemoved (review, defect 3): temporary files of killed
// atomic writes are removed wherever airlock writes them in the root (the
// state, the release records, the current links), and nothing else is.
func TestStaleTempFilesRemoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, op := range []string{"status", "prune"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
			mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
			ours := []string{
				".airlock/.state.json.tmp-0123456789abcdef",
				"releases/demo/.records/.state.json.tmp-0123456789abcdef",
				"releases/demo/.records/.record.json.tmp-fedcba9876543210",
			}
			for _, p := range ours {
				if err := os.WriteFile(filepath.Join(root, p), []byte("{\"schema"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.Symlink("../releases/demo/1.0.0", filepath.Join(root, "current", ".demo.tmp-0123456789abcdef"))
			ours = append(ours, "current/.demo.tmp-0123456789abcdef")
			// Not airlock's: names it never writes, or a type it never
			// creates under a name it does.
			theirs := []string{".airlock/.state.json.tmp-backup", ".airlock/notes.txt", "current/.demo.tmp-fedcba9876543210"}
			for _, p := range theirs {
				if err := os.WriteFile(filepath.Join(root, p), []byte("mine"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// In current/ airlock creates links: these are links, under
			// names it never gives (not ".NAME.tmp-" and 16 hex digits of
			// a valid bundle name).
			for _, n := range []string{".demo.tmp-mine", ".Demo.tmp-0123456789abcdef", "demo.tmp-0123456789abcdef", "..tmp-0123456789abcdef", ".demo.tmp-0123456789ABCDEF"} {
				if err := os.Symlink("../releases/demo/1.0.0", filepath.Join(root, "current", n)); err != nil {
					t.Fatal(err)
				}
				theirs = append(theirs, "current/"+n)
			}
			var err error
			if op == "status" {
				_, err = install.ReadStatus(ctx, root)
			} else {
				_, err = install.Prune(ctx, root, 1, install.PruneOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ours {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived %s: %v", p, op, err)
				}
			}
			for _, p := range theirs {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s was removed: %v", p, err)
				}
			}
		})
	}
}
