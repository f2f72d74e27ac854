package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/verify"
)

// The audit log in DIR/.airlock: one hash-chained JSON line per install,
// rollback and prune that changed the root (package audit), and one per
// refused install, rollback or prune (refusal.go). An install that finds
// the release installed and current already (OutcomeUnchanged) changes
// nothing and is not logged.
//
// The line is written ahead: before the commit point (the state write) the
// entry goes to audit.pending, fsynced; after the commit it is appended to
// the log and the pending file removed. A crash in between is finished by
// the next look at the root (recover): the pending entry is appended when
// the state shows its operation committed (once: audit.Log.AppendOnce), and
// dropped when it did not. So the log records exactly what committed.
const (
	fileAudit        = "audit.log"
	fileAuditPending = "audit.pending"
	maxPending       = 2 * audit.MaxLine
)

// AuditPath returns DIR/.airlock/audit.log.
func AuditPath(root string) string { return filepath.Join(root, dirAirlock, fileAudit) }

// pendingAudit is an entry prepared before a commit, with what tells
// whether the commit happened.
type pendingAudit struct {
	Entry audit.Entry `json:"entry"`
	// Name and Event: the history event an install or rollback adds.
	Name  string `json:"name,omitempty"`
	Event *Event `json:"event,omitempty"`
	// Removed: the releases a prune takes out of the state.
	Removed []PrunedRelease `json:"removed,omitempty"`
}

// committed reports whether st shows the operation of p done.
func (p *pendingAudit) committed(st *State) bool {
	if p.Event != nil {
		b := st.Bundles[p.Name]
		if b == nil {
			return false
		}
		for _, ev := range b.History {
			if ev.Time.Equal(p.Event.Time) && ev.Action == p.Event.Action && ev.From == p.Event.From && ev.To == p.Event.To && ev.Sequence == p.Event.Sequence && ev.Root == p.Event.Root {
				return true
			}
		}
		return false
	}
	for _, r := range p.Removed {
		if b := st.Bundles[r.Name]; b != nil && b.release(r.Version) != nil {
			return false
		}
	}
	return len(p.Removed) > 0
}

// prepareAudit writes p to audit.pending and fsyncs it and the directory:
// called before the commit point, so a committed state implies a complete
// pending file.
func (l *layout) prepareAudit(p pendingAudit) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	err = writeSynced(l.air, fileAuditPending, os.O_TRUNC, raw)
	if err == nil {
		err = syncDir(l.air, ".")
	}
	if err != nil {
		return fmt.Errorf("audit log: prepare the entry: %w", err)
	}
	return nil
}

// finishAudit appends the pending entry to the log and removes the
// pending file; it returns the digest of the entry's line.
func (l *layout) finishAudit(failpoint func(string)) (string, error) {
	p, err := l.readPending()
	if err != nil || p == nil {
		return "", err
	}
	return l.appendPending(p, failpoint)
}

// appendPending appends p's entry (once) and removes the pending file;
// failpoint, when set, is called with FailpointAfterAudit in between.
func (l *layout) appendPending(p *pendingAudit, failpoint func(string)) (string, error) {
	log, err := audit.OpenIn(l.air, fileAudit, AuditPath(l.path))
	if err != nil {
		return "", err
	}
	defer log.Close()
	_, head, err := log.AppendOnce(p.Entry)
	if err != nil {
		return "", err
	}
	if failpoint != nil {
		failpoint(FailpointAfterAudit)
	}
	if err := l.air.Remove(fileAuditPending); err != nil {
		return head, fmt.Errorf("audit log: %w", err)
	}
	return head, nil
}

// readPending reads audit.pending; nil when there is none. A pending file
// that does not parse was cut by a crash before the commit point.
func (l *layout) readPending() (*pendingAudit, error) {
	f, err := l.air.Open(fileAuditPending)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxPending+1))
	if err != nil {
		return nil, err
	}
	var p pendingAudit
	if len(raw) > maxPending || json.Unmarshal(raw, &p) != nil {
		return &pendingAudit{}, nil // incomplete: the commit never happened
	}
	return &p, nil
}

// recoverAudit finishes or drops a pending entry a crash left (see above).
// After Repair rebuilt the state (l.rebuilt), the history that proves a
// commit may be gone with the old state: an install entry then counts as
// committed when the rebuilt state lists its release with the same
// version, sequence and root (and, for a switch, as current), and is
// appended with a note saying so.
func (l *layout) recoverAudit(st *State) (string, error) {
	p, err := l.readPending()
	if err != nil || p == nil {
		return "", err
	}
	if p.Entry.Operation != "" && p.committed(st) {
		if _, err := l.appendPending(p, nil); err != nil {
			return "", err
		}
		return "recorded in " + AuditPath(l.path) + " the " + p.Entry.Operation + " a crash interrupted after it committed", nil
	}
	if l.rebuilt && p.listedInstall(st) {
		p.Entry.Repaired = "recorded by a repair that rebuilt the install state from the release records: the install's commit is known from its release in the rebuilt state, not from the state's history"
		if _, err := l.appendPending(p, nil); err != nil {
			return "", err
		}
		return "recorded in " + AuditPath(l.path) + " the install a crash interrupted, as the rebuilt state lists its release", nil
	}
	if err := l.air.Remove(fileAuditPending); err != nil {
		return "", err
	}
	if l.rebuilt {
		return "dropped the audit entry of an operation a crash interrupted, as the rebuilt state does not show it committed", nil
	}
	return "dropped the audit entry of an operation a crash interrupted before it committed", nil
}

// listedInstall reports whether p is an install whose release st lists
// with the same version, sequence and root (and, for a switch, as the
// current release: a switch adds no release).
func (p *pendingAudit) listedInstall(st *State) bool {
	if p.Entry.Operation != audit.OpInstall || p.Event == nil || p.Entry.Bundle == nil {
		return false
	}
	b := st.Bundles[p.Name]
	if b == nil {
		return false
	}
	r := b.release(p.Event.To)
	if r == nil || r.Sequence != p.Event.Sequence || r.Root != p.Event.Root {
		return false
	}
	return p.Entry.Outcome != OutcomeSwitched || b.Current == p.Event.To
}

// prepareInstallAudit prepares the entry of an install about to commit.
func (in *installer) prepareInstallAudit() error {
	outcome := OutcomeInstalled
	if in.dec.act == actSwitch {
		outcome = OutcomeSwitched
	}
	rep := in.rep
	e := audit.Entry{
		Time: in.now, Operation: audit.OpInstall, Result: audit.ResultAccepted, Outcome: outcome,
		Bundle: &audit.Bundle{Name: in.plan.name, Version: in.plan.version, Sequence: in.id.sequence, Root: in.id.root, Path: in.opts.Path},
		Record: in.record, Airlock: in.opts.Airlock,
	}
	if in.dec.downgrade {
		e.Outcome += " (downgrade allowed by the policy)"
	}
	if rep != nil {
		e.Policy = &audit.Policy{Path: rep.Policy.Path, Digest: rep.Policy.Digest}
		e.Signers = auditSigners(rep)
	}
	ev := in.event()
	in.auditEntry = e
	return in.l.prepareAudit(pendingAudit{Entry: e, Name: in.plan.name, Event: &ev})
}

func auditSigners(rep *verify.Report) []audit.Signer {
	var out []audit.Signer
	for _, s := range rep.Signers {
		if s.Verified && s.Counted {
			out = append(out, audit.Signer{Name: s.Name, KeyID: s.KeyID})
		}
	}
	return out
}

// prepareRollbackAudit prepares the entry of a rollback about to commit.
func prepareRollbackAudit(l *layout, airlock, name string, ev Event) error {
	return l.prepareAudit(pendingAudit{
		Entry: audit.Entry{
			Time: ev.Time, Operation: audit.OpRollback, Result: audit.ResultDone,
			Outcome: fmt.Sprintf("rolled back from %s to %s", ev.From, ev.To),
			Bundle:  &audit.Bundle{Name: name, Version: ev.To, Sequence: ev.Sequence, Root: ev.Root},
			Airlock: airlock,
		},
		Name: name, Event: &ev,
	})
}

// preparePruneAudit prepares the entry of a prune about to commit.
func preparePruneAudit(l *layout, now time.Time, airlock string, res *PruneResult) error {
	out := fmt.Sprintf("removed %d releases, kept %d", len(res.Removed), res.Kept)
	for _, r := range res.Removed {
		out += fmt.Sprintf("; %s %s (sequence %d)", r.Name, r.Version, r.Sequence)
	}
	return l.prepareAudit(pendingAudit{
		Entry:   audit.Entry{Time: now, Operation: audit.OpPrune, Result: audit.ResultDone, Outcome: out, Airlock: airlock},
		Removed: res.Removed,
	})
}

// afterCommit appends the prepared entry once the operation committed. A
// failure here leaves the pending file for the next look at the root.
func afterCommit(l *layout, what string, failpoint func(string)) (string, error) {
	head, err := l.finishAudit(failpoint)
	if err != nil {
		return "", fmt.Errorf("%s, but its audit log entry is not written yet (the next airlock command on this root writes it): %w", what, err)
	}
	return head, nil
}
