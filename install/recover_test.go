package install_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/install"
)

// TestRestoredBackupKeepsSequence (review): an install killed after its
// commit point, before its record's pending mark was cleared, and then
// state.json restored from a backup taken just before the install: the
// state is byte for byte the one the install started from, exactly as if
// the install had never committed. Recovery cannot tell the two apart, so
// it must not forget sequence 200: the release directory goes, the record
// stays as an aborted one, the highest accepted sequence is raised to 200,
// an older bundle (150) is a replay, and the identical bundle installs
// again.
func TestRestoredBackupKeepsSequence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v100 := pack(t, release{version: "1.0.0", seq: 100})
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	v150 := pack(t, release{version: "1.0.0-hotfix", seq: 150})
	base := filepath.Join(t.TempDir(), "base")
	mustInstall(t, base, v100)
	for _, look := range []string{"status", "repair"} {
		t.Run(look, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			copyTree(t, base, root)
			backup := mustRead(t, install.StatePath(root))
			runChild(t, "install", root, v200, install.FailpointAfterState, 1)
			if !strings.Contains(string(mustRead(t, install.StatePath(root))), `"1.0.1"`) {
				t.Fatal("the install did not commit")
			}
			if err := os.WriteFile(install.StatePath(root), backup, 0o644); err != nil {
				t.Fatal(err)
			}
			var done []string
			var err error
			if look == "status" {
				var st *install.Status
				st, err = install.ReadStatus(ctx, root)
				if st != nil {
					done = st.Repaired
				}
			} else {
				done, err = install.Repair(ctx, root)
			}
			if err != nil {
				t.Fatalf("%s: %v", look, err)
			}
			t.Logf("repaired: %q", done)
			rec := string(mustRead(t, filepath.Join(root, "releases", "demo", ".records", "1.0.1.json")))
			if !strings.Contains(rec, `"aborted"`) || strings.Contains(rec, `"pending"`) {
				t.Fatalf("the record of 1.0.1 is not kept as an aborted one:\n%s", rec)
			}
			if _, err := os.Lstat(install.ReleaseDir(root, "demo", "1.0.1")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the release directory of the aborted install: %v", err)
			}
			st, err := install.ReadStatus(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			if b := st.Bundles[0]; b.HighestSequence != 200 || b.Current != "1.0.0" || len(b.Releases) != 1 {
				t.Fatalf("after recovery: highest %d, current %q, %d releases; want 200, 1.0.0, 1", b.HighestSequence, b.Current, len(b.Releases))
			}
			if _, err := installFile(t, root, v150, loadPolicy(t, "default")); !errors.Is(err, install.ErrReplay) {
				t.Fatalf("sequence 150 after sequence 200 was committed: %v, want a replay", err)
			}
			res, err := installFile(t, root, v200, loadPolicy(t, "default"))
			if err != nil || res.Outcome != install.OutcomeInstalled {
				t.Fatalf("the identical bundle again: %v (%+v)", err, res)
			}
			if st, _ := install.ReadStatus(ctx, root); st.Bundles[0].Current != "1.0.1" || st.Bundles[0].HighestSequence != 200 {
				t.Fatalf("after the rerun: %+v", st.Bundles[0])
			}
			if rec := string(mustRead(t, filepath.Join(root, "releases", "demo", ".records", "1.0.1.json"))); strings.Contains(rec, `"aborted"`) || strings.Contains(rec, `"pending"`) {
				t.Fatalf("the record after the rerun:\n%s", rec)
			}
			if _, err := install.Check(ctx, root); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAbortedInstallRerun: an install killed between writing its pending
// record and its commit point, with the state kept or then lost, leaves a
// root where an older bundle is still refused and the same bundle, run
// again, completes.
func TestAbortedInstallRerun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v100 := pack(t, release{version: "1.0.0", seq: 100})
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	v150 := pack(t, release{version: "1.0.0-hotfix", seq: 150})
	base := filepath.Join(t.TempDir(), "base")
	mustInstall(t, base, v100)
	for _, fp := range []string{install.FailpointBeforeRename, install.FailpointAfterRename, install.FailpointBeforeState} {
		for _, lost := range []bool{false, true} {
			name := fp
			if lost {
				name += "/state-lost"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "root")
				copyTree(t, base, root)
				runChild(t, "install", root, v200, fp, 1)
				if lost {
					loseStateAndRepair(ctx, t, root)
				}
				st, err := install.ReadStatus(ctx, root)
				if err != nil {
					t.Fatalf("status: %v", err)
				}
				if b := st.Bundles[0]; b.HighestSequence != 200 || b.Current != "1.0.0" {
					t.Fatalf("highest %d, current %q; want 200, 1.0.0", b.HighestSequence, b.Current)
				}
				if _, err := installFile(t, root, v150, loadPolicy(t, "default")); !errors.Is(err, install.ErrReplay) {
					t.Fatalf("sequence 150: %v, want a replay", err)
				}
				if _, err := installFile(t, root, v200, loadPolicy(t, "default")); err != nil {
					t.Fatalf("the same bundle again: %v", err)
				}
				if st, _ := install.ReadStatus(ctx, root); st.Bundles[0].Current != "1.0.1" {
					t.Fatalf("current after the rerun: %q", st.Bundles[0].Current)
				}
				if _, err := install.Check(ctx, root); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// auditEntries reads DIR/.airlock/audit.log.
func auditEntries(t *testing.T, root string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, install.AuditPath(root))))
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// installLogged reports whether the log has an accepted install of version.
func installLogged(es []audit.Entry, version string) *audit.Entry {
	for i, e := range es {
		if e.Operation == audit.OpInstall && e.Result == audit.ResultAccepted && e.Bundle != nil && e.Bundle.Version == version {
			return &es[i]
		}
	}
	return nil
}

// TestRepairKeepsCommittedAuditEntry (review): an install killed after its
// commit point, before its audit line was appended, and then the state
// lost or damaged. The rebuilt state lists the release, so the install
// committed: the repair appends its entry, noting it, instead of dropping
// it as an operation that did not commit.
func TestRepairKeepsCommittedAuditEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v100 := pack(t, release{version: "1.0.0", seq: 100})
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	base := filepath.Join(t.TempDir(), "base")
	mustInstall(t, base, v100)
	for _, fp := range []string{install.FailpointAfterState, install.FailpointAfterLink} {
		for _, loss := range []string{"deleted", "corrupted"} {
			t.Run(fp+"/"+loss, func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "root")
				copyTree(t, base, root)
				runChild(t, "install", root, v200, fp, 1)
				if loss == "deleted" {
					os.Remove(install.StatePath(root))
				} else {
					os.WriteFile(install.StatePath(root), []byte("{"), 0o644)
				}
				done, err := install.Repair(ctx, root)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("repaired: %q", done)
				for _, d := range done {
					if strings.Contains(d, "dropped the audit entry") {
						t.Errorf("repair: %q, but 1.0.1 committed", d)
					}
				}
				e := installLogged(auditEntries(t, root), "1.0.1")
				if e == nil {
					t.Fatal("the audit log has no entry for the committed install of 1.0.1")
				}
				if e.Repaired == "" {
					t.Errorf("the entry appended by the repair does not say so: %+v", e)
				}
				if _, err := os.Stat(filepath.Join(root, ".airlock", "audit.pending")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("audit.pending after the repair: %v", err)
				}
			})
		}
	}
}

// TestRefusalLeavesPendingAuditEntry (review): the same, but the first
// command after the state loss is an install refused because the state is
// behind the records. Its refusal must not settle audit.pending against the
// missing state (which would drop the entry of a committed install): the
// entry waits for the repair.
func TestRefusalLeavesPendingAuditEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	v300 := pack(t, release{version: "1.0.2", seq: 300})
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 100}))
	runChild(t, "install", root, v200, install.FailpointAfterLink, 1)
	os.Remove(install.StatePath(root))
	pending := filepath.Join(root, ".airlock", "audit.pending")
	if _, err := os.Stat(pending); err != nil {
		t.Fatal("no pending audit entry:", err)
	}
	res, err := installFile(t, root, v300, loadPolicy(t, "default"))
	if !errors.Is(err, install.ErrStateBehind) {
		t.Fatalf("install: %v, want the state behind", err)
	}
	t.Logf("audit skipped: %q", res.AuditSkipped)
	if _, err := os.Stat(pending); err != nil {
		t.Fatalf("the refused install settled audit.pending of a committed install: %v", err)
	}
	if _, err := install.Repair(ctx, root); err != nil {
		t.Fatal(err)
	}
	if installLogged(auditEntries(t, root), "1.0.1") == nil {
		t.Fatal("the repair did not record the committed install")
	}
}

// TestForeignEntriesUnderReleasesKept (review): recovery removes only
// release directories a record proves airlock wrote; files and directories
// it never writes under DIR/releases are left alone by every command.
func TestForeignEntriesUnderReleasesKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, op := range []string{"status", "prune", "install"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
			mustInstall(t, root, pack(t, release{version: "1.0.1", seq: 11}))
			theirs := []string{"releases/demo/NOTES.txt", "releases/demo/1.0.0.orig/app.yaml", "releases/Vendor Stuff/x/f", "releases/README", "releases/other/2.0.0/f"}
			for _, p := range theirs {
				os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
				if err := os.WriteFile(filepath.Join(root, p), []byte("mine"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var done []string
			var err error
			switch op {
			case "status":
				var st *install.Status
				if st, err = install.ReadStatus(ctx, root); st != nil {
					done = st.Repaired
				}
			case "prune":
				var res *install.PruneResult
				if res, err = install.Prune(ctx, root, 1, install.PruneOptions{}); res != nil {
					done = res.Repaired
				}
			case "install":
				var res *install.Result
				if res, err = installFile(t, root, pack(t, release{version: "1.0.2", seq: 12}), loadPolicy(t, "default")); res != nil {
					done = res.Repaired
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(done) != 0 {
				t.Errorf("%s repaired: %q", op, done)
			}
			for _, p := range theirs {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s removed (airlock never wrote it): %v", p, err)
				}
			}
		})
	}
}

// TestStateLostAfterRename (review): an install killed right after its
// staging directory became the release directory, and then the state lost:
// the pending record, written before the rename, accounts for the
// directory, so the repair completes without the operator moving anything.
func TestStateLostAfterRename(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 100}))
	v200 := pack(t, release{version: "1.0.1", seq: 200})
	runChild(t, "install", root, v200, install.FailpointAfterRename, 1)
	loseStateAndRepair(ctx, t, root)
	st, err := install.ReadStatus(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Bundles[0]; b.HighestSequence != 200 || b.Current != "1.0.0" {
		t.Fatalf("rebuilt: highest %d, current %q; want 200, 1.0.0", b.HighestSequence, b.Current)
	}
	mustInstall(t, root, v200)
	if _, err := install.Check(ctx, root); err != nil {
		t.Fatal(err)
	}
}

// TestRepairRefusesNonRoot (review): the repair of a directory that holds
// no airlock state refuses and creates nothing there.
func TestRepairRefusesNonRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("mine"), 0o644)
	before := snapshot(t, dir)
	_, err := install.Repair(context.Background(), dir)
	if !errors.Is(err, install.ErrNotInstalled) {
		t.Fatalf("repair: %v, want ErrNotInstalled", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || !sameSnap(before, snapshot(t, dir)) {
		t.Fatalf("the refused repair changed %s: %v", dir, ents)
	}
}

// loseStateAndRepair deletes root's state.json, as a lost file would, and
// runs status --repair, which must rebuild it.
func loseStateAndRepair(ctx context.Context, t *testing.T, root string) {
	t.Helper()
	os.Remove(install.StatePath(root))
	done, err := install.Repair(ctx, root)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repaired: %q", done)
}
