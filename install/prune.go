package install

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/internal/errclass"
)

// PruneOptions configures Prune; the zero value works.
type PruneOptions struct {
	// Failpoint is as in Options (tests only; nil in production): Prune
	// passes FailpointBeforeState and FailpointAfterState.
	Failpoint func(name string)
	// Airlock is the airlock version written into the audit log entry.
	Airlock string
}

// PruneResult is what Prune did.
type PruneResult struct {
	Root     string          `json:"root"`
	Removed  []PrunedRelease `json:"removed"`
	Kept     int             `json:"kept"`
	Repaired []string        `json:"repaired,omitempty"`
	// AuditHead is the digest of the "refused" line a refused prune
	// appended to DIR/.airlock/audit.log.
	AuditHead string `json:"auditHead,omitempty"`
	// AuditSkipped says why that line could not be appended.
	AuditSkipped []string `json:"auditSkipped,omitempty"`
}

// PrunedRelease is one removed release.
type PrunedRelease struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Sequence uint64 `json:"sequence"`
	Dir      string `json:"dir"`
}

// Prune keeps, per bundle name, the keep newest installed releases (by
// sequence) and the current one, and removes the others: first from the
// state, then from disk (a crash in between leaves directories the next run
// removes). The highest accepted sequence and the history stay, so a pruned
// release cannot be installed again from an old bundle. keep must be >= 1.
//
// A prune refused before its commit point changes nothing but the audit
// log, which gets a "refused" line (see refusal.go).
func Prune(ctx context.Context, root string, keep int, opts PruneOptions) (res *PruneResult, err error) {
	if keep < 1 {
		return nil, errclass.Mark(errclass.Usage, errors.New("prune: keep must be at least 1"))
	}
	now := time.Now()
	res = &PruneResult{Root: root, Removed: []PrunedRelease{}}
	isRoot := wasRoot(root)
	var l *layout
	committed := false
	defer func() {
		if loggable(err) && !committed {
			e := refusalEntry(now, audit.OpPrune, opts.Airlock, err)
			e.Outcome = fmt.Sprintf("nothing pruned (keep %d per bundle)", keep)
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
	next := st.clone()
	for _, name := range sortedNames(next) {
		b := next.Bundles[name]
		var kept []Release
		// Releases are sorted by increasing sequence: walk from the newest.
		n := 0
		for i := len(b.Releases) - 1; i >= 0; i-- {
			r := b.Releases[i]
			if n < keep || r.Version == b.Current {
				kept = append([]Release{r}, kept...)
				n++
				continue
			}
			res.Removed = append(res.Removed, PrunedRelease{Name: name, Version: r.Version, Sequence: r.Sequence, Dir: ReleaseDir(root, name, r.Version)})
		}
		if kept == nil {
			kept = []Release{}
		}
		b.Releases = kept
		res.Kept += len(kept)
	}
	if len(res.Removed) == 0 {
		return res, nil
	}
	fp := func(n string) {
		if opts.Failpoint != nil {
			opts.Failpoint(n)
		}
	}
	// Mark the records first: a crash before the state is written leaves
	// records the state still lists (recover rewrites them unpruned); a
	// crash after it leaves directories recover removes as a prune's.
	for _, p := range res.Removed {
		if err := l.markPruned(p.Name, *st.Bundles[p.Name].release(p.Version), time.Now()); err != nil {
			return res, err
		}
	}
	if err := preparePruneAudit(l, time.Now(), opts.Airlock, res); err != nil {
		return res, err
	}
	fp(FailpointBeforeState)
	if err := l.writeState(next); err != nil {
		return res, err
	}
	committed = true
	fp(FailpointAfterState)
	for _, p := range res.Removed {
		nr, err := l.nameDir(p.Name, false)
		if errorsIsNotExist(err) {
			continue
		}
		if err != nil {
			return res, err
		}
		err = nr.RemoveAll(p.Version)
		nr.Close()
		if err != nil {
			return res, err
		}
	}
	_, err = afterCommit(l, "pruned", fp)
	return res, err
}
