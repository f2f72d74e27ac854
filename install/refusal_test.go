package install_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/verify"
)

// auditFile is the one file of an install root a refusal may change.
var auditFile = filepath.Join(".airlock", "audit.log")

// snapshotButAudit is snapshot without exactly DIR/.airlock/audit.log.
func snapshotButAudit(t testing.TB, dir string) map[string]string {
	t.Helper()
	s := snapshot(t, dir)
	delete(s, auditFile)
	return s
}

// readLog returns the bytes of DIR/.airlock/audit.log, nil when there is none.
func readLog(t testing.TB, root string) []byte {
	t.Helper()
	b, err := os.ReadFile(install.AuditPath(root))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

// oneRefusedLine checks that root's audit log is before plus exactly one
// line, an op refused with class, and that the whole log still verifies
// (what `airlock audit verify` checks). It returns that entry.
func oneRefusedLine(t testing.TB, root string, before []byte, op, class string) audit.Entry {
	t.Helper()
	after := readLog(t, root)
	if !bytes.HasPrefix(after, before) {
		t.Fatalf("the audit log's earlier lines changed:\nbefore %q\nafter  %q", before, after)
	}
	added := after[len(before):]
	if bytes.Count(added, []byte("\n")) != 1 || !bytes.HasSuffix(added, []byte("\n")) {
		t.Fatalf("the audit log gained %q, want exactly one line", added)
	}
	rep, err := audit.VerifyFile(install.AuditPath(root), audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("the audit log does not verify after the refusal: %v", err)
	}
	e := rep.Entries[len(rep.Entries)-1]
	if e.Operation != op || e.Result != audit.ResultRefused || e.Class != class || e.Reason == "" {
		t.Fatalf("refused line: %+v, want operation %s, result refused, class %s and a reason", e, op, class)
	}
	if e.Bundle != nil && e.Claimed != nil {
		t.Fatalf("refused line has both bundle and claimed: %+v", e)
	}
	return e
}

func classOf(rejected bool) string {
	if rejected {
		return audit.ClassRejected
	}
	return audit.ClassCouldNotRun
}

// TestRefusalRecorded: what a refused install records about the bundle:
// the signed identity once the signatures and the policy passed, the
// head's claims (marked unverified) when they did not, the file alone
// when the head could not be read; the FAILED record's digest; and
// nothing at all in a directory that is not an install root yet.
func TestRefusalRecorded(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	mustInstall(t, root, v2)
	record := func(o *install.Options) {
		o.Airlock = "test-version"
		o.Record = func(_ context.Context, rep *verify.Report) (string, error) {
			return "sha256:" + strings.Repeat("0", 63) + "1", nil
		}
	}

	// A replay: trusted, refused for freshness.
	before := readLog(t, root)
	snap := snapshotButAudit(t, root)
	res, err := installFile(t, root, pack(t, release{version: "1.0.0", seq: 10}), loadPolicy(t, "default"), record)
	if !errors.Is(err, install.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	e := oneRefusedLine(t, root, before, audit.OpInstall, audit.ClassRejected)
	if e.Bundle == nil || e.Bundle.Name != "demo" || e.Bundle.Version != "1.0.0" || e.Bundle.Sequence != 10 || e.Bundle.Root == "" ||
		e.Policy == nil || len(e.Signers) != 2 || e.Record == "" || e.Airlock != "test-version" || !strings.Contains(e.Reason, "highest accepted 20") {
		t.Fatalf("replay line: %+v", e)
	}
	if res.AuditHead == "" || len(res.AuditSkipped) != 0 || res.Record != e.Record {
		t.Fatalf("result: head %q, skipped %q, record %q", res.AuditHead, res.AuditSkipped, res.Record)
	}
	if d := diffSnap(snap, snapshotButAudit(t, root)); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}

	// Unsigned: the head's claims, unverified; no signer counted.
	before = readLog(t, root)
	_, err = installFile(t, root, pack(t, release{version: "3.0.0", seq: 30, unsigned: true}), loadPolicy(t, "default"), record)
	if !verify.IsFailure(err) {
		t.Fatalf("unsigned: %v", err)
	}
	e = oneRefusedLine(t, root, before, audit.OpInstall, audit.ClassRejected)
	if e.Bundle != nil || e.Claimed == nil || e.Claimed.Name != "demo" || e.Claimed.Version != "3.0.0" || e.Claimed.Sequence != 30 || len(e.Signers) != 0 {
		t.Fatalf("unsigned line: %+v (claimed %+v)", e, e.Claimed)
	}

	// Not a bundle: only the file given.
	junk := filepath.Join(t.TempDir(), "junk.airlock")
	os.WriteFile(junk, []byte("not a bundle"), 0o644)
	before = readLog(t, root)
	if _, err = installFile(t, root, junk, loadPolicy(t, "default")); !verify.IsFailure(err) {
		t.Fatalf("junk: %v", err)
	}
	e = oneRefusedLine(t, root, before, audit.OpInstall, audit.ClassRejected)
	if e.Bundle != nil || e.Claimed == nil || e.Claimed.Name != "" || e.Claimed.Path != junk {
		t.Fatalf("junk line: %+v (claimed %+v)", e, e.Claimed)
	}

	// Not an install root: nothing is created.
	fresh := filepath.Join(t.TempDir(), "fresh")
	os.Mkdir(fresh, 0o755)
	if _, err = installFile(t, fresh, junk, loadPolicy(t, "default")); !verify.IsFailure(err) {
		t.Fatalf("junk into a fresh directory: %v", err)
	}
	if ents, _ := os.ReadDir(fresh); len(ents) != 0 {
		t.Fatalf("a refusal created %v in a directory that was not an install root", ents)
	}
}

// TestRefusalAuditLogOption: Options.AuditLog gets every line the root's
// log gets, accepted and refused, naming the root; and a refusal even
// when the directory is not an install root.
func TestRefusalAuditLogOption(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	ext := filepath.Join(t.TempDir(), "site-audit.log")
	withLog := func(o *install.Options) { o.AuditLog = ext }
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	junk := filepath.Join(t.TempDir(), "junk.airlock")
	os.WriteFile(junk, []byte("not a bundle"), 0o644)

	if _, err := installFile(t, root, junk, loadPolicy(t, "default"), withLog); !verify.IsFailure(err) {
		t.Fatalf("junk: %v", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refusal created the root: %v", err)
	}
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}), withLog)
	if _, err := installFile(t, root, v1, loadPolicy(t, "default"), withLog); !errors.Is(err, install.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	rep, err := audit.VerifyFile(ext, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(root)
	want := []string{audit.ResultRefused, audit.ResultAccepted, audit.ResultRefused}
	if len(rep.Entries) != len(want) {
		t.Fatalf("%d entries in %s, want %d: %+v", len(rep.Entries), ext, len(want), rep.Entries)
	}
	for i, e := range rep.Entries {
		if e.Result != want[i] || e.Target != abs {
			t.Errorf("entry %d: result %s target %s, want %s %s", i+1, e.Result, e.Target, want[i], abs)
		}
	}
	inRoot, err := audit.VerifyFile(install.AuditPath(root), audit.VerifyOptions{})
	if err != nil || len(inRoot.Entries) != 2 {
		t.Fatalf("root log: %v, %+v", err, inRoot)
	}
}

// TestRefusalWhileLocked: with the root's lock held by another run, the
// refusal is not waited for and not recorded; the result says why.
func TestRefusalWhileLocked(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	lock, err := os.OpenFile(filepath.Join(root, ".airlock", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, root)
	for _, b := range []string{
		pack(t, release{version: "1.0.0", seq: 10}),                 // would be a replay: stops at the lock
		pack(t, release{version: "3.0.0", seq: 30, unsigned: true}), // rejected before the lock
	} {
		res, err := installFile(t, root, b, loadPolicy(t, "default"))
		if err == nil {
			t.Fatal("accepted")
		}
		if res.AuditHead != "" || len(res.AuditSkipped) != 1 || !strings.Contains(res.AuditSkipped[0], "is held by") {
			t.Fatalf("%v: head %q, skipped %q", err, res.AuditHead, res.AuditSkipped)
		}
		t.Logf("%v; %s", err, res.AuditSkipped[0])
	}
	ctx := t.Context()
	rb, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{})
	if !errors.Is(err, install.ErrLocked) || len(rb.AuditSkipped) != 1 {
		t.Fatalf("rollback: %v, skipped %q", err, rb.AuditSkipped)
	}
	if d := diffSnap(snap, snapshot(t, root)); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}
}

// TestRollbackPruneRefusalRecorded: a refused rollback or prune appends one
// refused line and changes nothing else.
func TestRollbackPruneRefusalRecorded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	snap, before := snapshotButAudit(t, root), readLog(t, root)
	res, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{Airlock: "test-version"})
	if !errors.Is(err, install.ErrNotInstalled) {
		t.Fatalf("rollback past the oldest: %v", err)
	}
	e := oneRefusedLine(t, root, before, audit.OpRollback, audit.ClassCouldNotRun)
	if !strings.Contains(e.Outcome, "demo") || res.AuditHead == "" || e.Airlock != "test-version" {
		t.Fatalf("rollback line %+v, head %q", e, res.AuditHead)
	}
	if d := diffSnap(snap, snapshotButAudit(t, root)); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}

	editState(t, root, func(s string) string { return strings.Replace(s, `"current": "1.0.0"`, `"current": "0.1.0"`, 1) })
	snap, before = snapshotButAudit(t, root), readLog(t, root)
	pres, err := install.Prune(ctx, root, 1, install.PruneOptions{})
	if !errors.Is(err, install.ErrState) {
		t.Fatalf("prune with a broken state: %v", err)
	}
	oneRefusedLine(t, root, before, audit.OpPrune, audit.ClassCouldNotRun)
	if pres.AuditHead == "" {
		t.Fatal("no audit head")
	}
	if d := diffSnap(snap, snapshotButAudit(t, root)); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}

	// Not an install root: refused, nothing created.
	fresh := t.TempDir()
	if _, err := install.Rollback(ctx, fresh, "demo", install.RollbackOptions{}); !errors.Is(err, install.ErrNotInstalled) {
		t.Fatalf("rollback in an empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(fresh); len(ents) != 0 {
		t.Fatalf("created %v", ents)
	}
}

// TestRefusalSettlesPendingEntry: a crash can leave the entry of a
// committed install in audit.pending (before or after it was appended).
// A refusal settles it first, as any command on the root would, so the log
// lists the install once and before the refusal.
func TestRefusalSettlesPendingEntry(t *testing.T) {
	t.Parallel()
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	unsigned := pack(t, release{version: "3.0.0", seq: 30, unsigned: true})
	for _, point := range []string{install.FailpointAfterState, install.FailpointAfterAudit} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
			func() {
				defer func() { recover() }()
				installFile(t, root, v2, loadPolicy(t, "default"), func(o *install.Options) {
					o.Failpoint = func(n string) {
						if n == point {
							panic("crash")
						}
					}
				})
			}()
			if _, err := os.Stat(filepath.Join(root, ".airlock", "audit.pending")); err != nil {
				t.Fatalf("the crash left no pending entry: %v", err)
			}
			if _, err := installFile(t, root, unsigned, loadPolicy(t, "default")); !verify.IsFailure(err) {
				t.Fatalf("unsigned: %v", err)
			}
			rep, err := audit.VerifyFile(install.AuditPath(root), audit.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range rep.Entries {
				v := ""
				if e.Bundle != nil {
					v = e.Bundle.Version
				}
				if e.Claimed != nil {
					v = e.Claimed.Version + " (claimed)"
				}
				got = append(got, e.Result+" "+v)
			}
			want := []string{"accepted 1.0.0", "accepted 2.0.0", "refused 3.0.0 (claimed)"}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Fatalf("log: %q, want %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(root, ".airlock", "audit.pending")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the pending entry is still there: %v", err)
			}
		})
	}
}
