package install

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/verify"
)

// Refusals. An install, rollback or prune that fails before its commit
// point changes nothing under the root: the installed files and
// DIR/.airlock/state.json stay byte for byte as they were. It appends one
// line to the audit log, with result "refused", the error's class and
// message, and the bundle as far as it was read, because the log is the
// record of what the site accepted and what it refused.
//
// Only an existing install root gets the line: when DIR/.airlock did not
// exist at the start of the run, nothing is written there (a refusal never
// creates a state directory). The append takes the root's lock, without
// waiting: a lock another run holds skips the append, and the result says
// so (AuditSkipped), as does any other reason the line could not be
// written. Errors of class Usage (wrong options) are not logged.
//
// Before the line is appended, an entry an interrupted operation left in
// audit.pending is settled as the next look at the root would (appended
// when its operation committed, dropped when not), so the log stays in
// order and never records an operation twice. When the state cannot settle
// it (unreadable, missing, or behind the release records) the entry is
// left for the repair and the refusal's line is not appended (the result
// says why).

// maxReason bounds the error message kept in an entry.
const maxReason = 4096

// wasRoot reports whether DIR/.airlock exists (in any form: a link there
// is an unsafe root, reported rather than ignored).
func wasRoot(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, dirAirlock))
	return err == nil
}

// loggable reports whether err is a refusal the audit log records.
func loggable(err error) bool { return err != nil && errclass.Of(err) != errclass.Usage }

// refusalEntry is the entry of a run refused with err.
func refusalEntry(now time.Time, op, airlock string, err error) audit.Entry {
	class := audit.ClassCouldNotRun
	if errclass.Of(err) == errclass.Rejected {
		class = audit.ClassRejected
	}
	reason := err.Error()
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "..."
	}
	return audit.Entry{Time: now, Operation: op, Result: audit.ResultRefused, Class: class, Reason: reason, Airlock: airlock}
}

// describeRefused adds what the verification report says about the bundle
// to e: the signed identity when the signatures and the policy passed
// (e.Bundle), or else the head's unverified claims (e.Claimed).
func describeRefused(e *audit.Entry, rep *verify.Report, path string) {
	b := &audit.Bundle{Path: path}
	if rep == nil {
		e.Claimed = b
		return
	}
	b.Name, b.Version, b.Sequence, b.Root = rep.Bundle.Name, rep.Bundle.Version, rep.Bundle.Sequence, rep.Bundle.Root
	if rep.Trusted {
		e.Bundle = b
	} else {
		e.Claimed = b
	}
	if rep.Policy.Digest != "" {
		e.Policy = &audit.Policy{Path: rep.Policy.Path, Digest: rep.Policy.Digest}
	}
	e.Signers = auditSigners(rep)
}

// logRefusal records e in the audit log of the install root dir, when it
// was one at the start of the run (isRoot), and in the log at external
// when that is set. held is the run's layout when it holds the root's lock,
// nil otherwise. It returns the digest of the line appended to the root's
// log ("" for none) and why a line could not be written.
func logRefusal(dir string, isRoot bool, held *layout, external string, e audit.Entry) (head string, skipped []string) {
	if isRoot {
		h, err := appendRefusal(dir, held, e)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("the refusal is not recorded in %s: %v", AuditPath(dir), err))
		}
		head = h
	}
	if external != "" {
		if err := appendExternal(external, dir, e); err != nil {
			skipped = append(skipped, fmt.Sprintf("the refusal is not recorded in %s: %v", external, err))
		}
	}
	return head, skipped
}

// appendRefusal appends e to DIR/.airlock/audit.log under the root's lock:
// held's when it has it, otherwise taken here without waiting and without
// writing into the lock file (whose bytes stay as they were).
func appendRefusal(dir string, held *layout, e audit.Entry) (string, error) {
	l := held
	if l == nil || l.lock == nil {
		var err error
		if l, err = openStateDir(dir); err != nil {
			return "", err
		}
		defer l.close()
		f, err := l.flockFile(true, false)
		switch {
		case errorsIsNotExist(err):
			// No lock file (a root from before there was one, or it was
			// removed): creating it would change the root; the audit
			// file's own lock orders the appends.
		case err != nil:
			return "", err
		default:
			defer func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}()
		}
	}
	p, err := l.readPending()
	if err != nil {
		return "", err
	}
	if p != nil {
		pending := filepath.Join(dir, dirAirlock, fileAuditPending)
		st, err := l.readState()
		if err != nil {
			return "", fmt.Errorf("the entry of an interrupted operation is pending in %s and the state to settle it cannot be read: %w", pending, err)
		}
		// A missing state, or one behind the records, cannot tell whether
		// the operation committed: the entry is left for the repair.
		if l.stateDigest == "" {
			return "", fmt.Errorf("the entry of an interrupted operation is pending in %s and the state to settle it is missing; it is left for the repair that rebuilds the state", pending)
		}
		if err := l.openReleases(); err != nil {
			return "", fmt.Errorf("the entry of an interrupted operation is pending in %s and the release records cannot be read to settle it: %w", pending, err)
		}
		if _, err := l.reconcile(st.clone(), false); err != nil {
			return "", fmt.Errorf("the entry of an interrupted operation is pending in %s and the state cannot settle it; it is left for the repair: %w", pending, err)
		}
		if _, err := l.recoverAudit(st); err != nil {
			return "", err
		}
	}
	log, err := audit.OpenIn(l.air, fileAudit, AuditPath(dir))
	if err != nil {
		return "", err
	}
	defer log.Close()
	_, head, err := log.Append(e)
	return head, err
}

// openReleases opens DIR/releases when l has not (a missing one is left
// nil: no records).
func (l *layout) openReleases() error {
	if l.rel != nil {
		return nil
	}
	r, err := openOwnedDir(l.root, l.path, dirReleases, false)
	if errorsIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	l.rel = r
	return nil
}

// openStateDir opens DIR and DIR/.airlock only (not a link, checked as
// openLayout does): a refusal is recorded even when another directory of
// the root is unsafe, which may be what was refused.
func openStateDir(dir string) (*layout, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	l := &layout{path: dir, root: root}
	if l.air, err = openOwnedDir(root, dir, dirAirlock, false); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// appendExternal appends e to the audit log at path (Options.AuditLog),
// naming the install root dir as its target.
func appendExternal(path, dir string, e audit.Entry) error {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	e.Target = dir
	log, err := audit.Open(path)
	if err != nil {
		return err
	}
	defer log.Close()
	_, _, err = log.Append(e)
	return err
}

// RefusalOptions describes an install refused before Install ran (the
// CLI could not load the policy or open the bundle file). Root is
// required; the zero value of every other field works.
type RefusalOptions struct {
	// Root is the install root (DIR).
	Root string
	// AuditLog is Options.AuditLog: "" for none.
	AuditLog string
	// Airlock is the airlock version written into the entry.
	Airlock string
	// Path names the bundle file given (recorded under "claimed").
	Path string
	// Now is the time of the entry; zero means time.Now().
	Now time.Time
}

// RecordRefusal records an install refused with err before Install ran,
// exactly as Install records its own refusals: one "refused" line in
// DIR/.airlock/audit.log when DIR is an install root, and in AuditLog.
// Usage errors are not recorded. It returns the digest of the root's line
// ("" for none) and why a line could not be written.
func RecordRefusal(opts RefusalOptions, err error) (head string, skipped []string) {
	if !loggable(err) || opts.Root == "" {
		return "", nil
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	e := refusalEntry(now, audit.OpInstall, opts.Airlock, err)
	e.Claimed = &audit.Bundle{Path: opts.Path}
	return logRefusal(opts.Root, wasRoot(opts.Root), nil, opts.AuditLog, e)
}
