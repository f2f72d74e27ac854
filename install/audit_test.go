package install_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/verify"
)

// TestAuditLog: installs, a rollback and a prune append hash-chained lines
// to DIR/.airlock/audit.log; a no-op appends nothing, a refused replay a
// refused line; an edited line is detected.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	v2 := pack(t, release{version: "1.1.0", seq: 20})
	v3 := pack(t, release{version: "1.2.0", seq: 30})
	record := func(o *install.Options) {
		o.Airlock = "test-version"
		o.Record = func(_ context.Context, rep *verify.Report) (string, error) {
			// Verified: the PASSED record before a commit; trusted but
			// not verified: the FAILED record of the refused replay.
			if !rep.Verified && !rep.Trusted {
				t.Errorf("record asked for a bundle that was not even trusted")
			}
			return "sha256:" + rep.Bundle.Root[len("sha256:"):], nil
		}
	}
	r1 := mustInstall(t, root, v1, record)
	if r1.Record == "" || r1.AuditHead == "" {
		t.Fatalf("install result lacks the record or the audit head: %+v", r1)
	}
	mustInstall(t, root, v2, record)
	mustInstall(t, root, v2, record) // unchanged: not logged
	if _, err := installFile(t, root, v1, loadPolicy(t, "default"), record); !errors.Is(err, install.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{Now: now, Airlock: "test-version"}); err != nil {
		t.Fatal(err)
	}
	mustInstall(t, root, v2, record)
	mustInstall(t, root, v3, record)
	if _, err := install.Prune(ctx, root, 2, install.PruneOptions{Airlock: "test-version"}); err != nil {
		t.Fatal(err)
	}

	rep, err := audit.VerifyFile(install.AuditPath(root), audit.VerifyOptions{Head: r1.AuditHead})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ op, outcome, version string }{
		{audit.OpInstall, install.OutcomeInstalled, "1.0.0"},
		{audit.OpInstall, install.OutcomeInstalled, "1.1.0"},
		{audit.OpInstall, "", "1.0.0"}, // the refused replay
		{audit.OpRollback, "rolled back from 1.1.0 to 1.0.0", "1.0.0"},
		{audit.OpInstall, install.OutcomeSwitched, "1.1.0"},
		{audit.OpInstall, install.OutcomeInstalled, "1.2.0"},
		{audit.OpPrune, "", ""},
	}
	if len(rep.Entries) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(rep.Entries), len(want), rep.Entries)
	}
	for i, w := range want {
		e := rep.Entries[i]
		if e.Operation != w.op || (w.outcome != "" && e.Outcome != w.outcome) || (w.version != "" && e.Bundle.Version != w.version) || e.Airlock != "test-version" {
			t.Errorf("entry %d: %+v, want %+v", i+1, e, w)
		}
		if e.Result == audit.ResultRefused {
			if i != 2 || e.Class != audit.ClassRejected || e.Reason == "" || e.Record == "" || e.Bundle == nil {
				t.Errorf("entry %d: %+v", i+1, e)
			}
			continue
		}
		if e.Operation == audit.OpInstall && (e.Record == "" || e.Policy == nil || e.Policy.Digest == "" || len(e.Signers) < 2 || e.Bundle.Root == "") {
			t.Errorf("entry %d lacks record, policy or signers: %+v", i+1, e)
		}
	}
	if e := rep.Entries[6]; e.Result != audit.ResultDone || !bytes.Contains([]byte(e.Outcome), []byte("demo 1.0.0")) {
		t.Errorf("prune entry: %+v", e)
	}

	// Edit the second line: the chain breaks at the third.
	b, err := os.ReadFile(install.AuditPath(root))
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"version":"1.1.0"`), []byte(`"version":"1.1.1"`), 1)
	if err := os.WriteFile(install.AuditPath(root), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *audit.ChainError
	if _, err := audit.VerifyFile(install.AuditPath(root), audit.VerifyOptions{}); !errors.As(err, &ce) || ce.Line != 3 {
		t.Fatalf("edited line not detected at line 3: %v", err)
	}
}
