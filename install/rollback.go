package install

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/audit"
)

// RollbackOptions configures Rollback; the zero value works.
type RollbackOptions struct {
	// Now is the time recorded in the history; zero means time.Now().
	Now time.Time
	// Failpoint is as in Options (tests only; nil in production).
	Failpoint func(name string)
	// Airlock is the airlock version written into the audit log entry.
	Airlock string
}

// RollbackResult is what Rollback did.
type RollbackResult struct {
	Root     string   `json:"root"`
	Name     string   `json:"name"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Sequence uint64   `json:"sequence"` // of the release now current
	Link     string   `json:"link"`
	Repaired []string `json:"repaired,omitempty"`
	// AuditHead is the digest of the "refused" line a refused rollback
	// appended to DIR/.airlock/audit.log.
	AuditHead string `json:"auditHead,omitempty"`
	// AuditSkipped says why that line could not be appended.
	AuditSkipped []string `json:"auditSkipped,omitempty"`
}

// Rollback points DIR/current/NAME back at the previous installed release:
// the one with the highest sequence below the current one's. That release
// was verified when it was installed, so this is not a downgrade attack;
// the state records the switch and the highest accepted sequence does not
// change, so the newer bundle can be installed again later but nothing
// older than it from outside.
//
// A rollback refused before its commit point changes nothing but the audit
// log, which gets a "refused" line (see refusal.go).
func Rollback(ctx context.Context, root, name string, opts RollbackOptions) (res *RollbackResult, err error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res = &RollbackResult{Root: root, Name: name, Link: CurrentLink(root, name)}
	isRoot := wasRoot(root)
	var l *layout
	committed := false
	defer func() {
		if loggable(err) && !committed {
			e := refusalEntry(now, audit.OpRollback, opts.Airlock, err)
			e.Outcome = fmt.Sprintf("%s not rolled back", name)
			res.AuditHead, res.AuditSkipped = logRefusal(root, isRoot, l, "", e)
		}
		if l != nil {
			l.close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	l, st, repaired, err := openLocked(root, now)
	if err != nil {
		return res, err
	}
	res.Repaired = repaired
	b := st.Bundles[name]
	if b == nil || b.Current == "" {
		return res, fmt.Errorf("%w: no release of %q is installed in %s (see airlock status)", ErrNotInstalled, name, root)
	}
	cur := b.release(b.Current)
	var prev *Release
	for i := range b.Releases {
		r := &b.Releases[i]
		if r.Sequence < cur.Sequence && (prev == nil || r.Sequence > prev.Sequence) {
			prev = r
		}
	}
	if prev == nil {
		return res, fmt.Errorf("%w: %s %s is the oldest installed release of %s; there is nothing to roll back to", ErrNotInstalled, name, cur.Version, name)
	}
	nr, err := l.nameDir(name, false)
	if err != nil {
		return res, err
	}
	fi, err := nr.Lstat(prev.Version)
	nr.Close()
	if err != nil || !fi.IsDir() {
		return res, fmt.Errorf("%w: %s is missing; run airlock check", ErrNotInstalled, ReleaseDir(root, name, prev.Version))
	}
	res.From, res.To, res.Sequence = cur.Version, prev.Version, prev.Sequence
	next := st.clone()
	nb := next.Bundles[name]
	nb.Current = prev.Version
	ev := Event{Time: now.UTC(), Action: ActionRollback, From: cur.Version, To: prev.Version, Sequence: prev.Sequence, Root: prev.Root}
	nb.History = append(nb.History, ev)
	fp := func(n string) {
		if opts.Failpoint != nil {
			opts.Failpoint(n)
		}
	}
	if err := prepareRollbackAudit(l, opts.Airlock, name, ev); err != nil {
		return res, err
	}
	fp(FailpointBeforeState)
	if err := l.writeState(next); err != nil {
		return res, err
	}
	committed = true
	fp(FailpointAfterState)
	fp(FailpointBeforeLink)
	if err := l.switchLink(name, prev.Version); err != nil {
		return res, fmt.Errorf("rolled back in the state, but %s could not be switched (the next airlock status repairs it): %w", res.Link, err)
	}
	fp(FailpointAfterLink)
	_, err = afterCommit(l, "rolled back", fp)
	return res, err
}

// openLocked opens an existing install root, takes the lock, loads the
// state and repairs what a crash left.
func openLocked(root string, now time.Time) (*layout, *State, []string, error) {
	if err := precheck(root); err != nil {
		return nil, nil, nil, err
	}
	if _, err := statDir(root); err != nil {
		return nil, nil, nil, err
	}
	l, err := openLayout(root, false)
	if errorsIsNotExist(err) {
		return nil, nil, nil, fmt.Errorf("%w: %s holds no airlock installs", ErrNotInstalled, root)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if err := l.acquireLock(now); err != nil {
		l.close()
		return nil, nil, nil, err
	}
	st, err := l.readState()
	if err != nil {
		l.close()
		return nil, nil, nil, err
	}
	repaired, err := l.recover(st)
	if err != nil {
		l.close()
		return nil, nil, nil, err
	}
	return l, st, repaired, nil
}
