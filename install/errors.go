package install

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/airlock-dev/airlock/internal/errclass"

	"github.com/airlock-dev/airlock/internal/meter"
)

var (
	// ErrReplay reports a bundle that would roll the install root back or
	// replay an older release: a lower sequence than the highest accepted,
	// a sequence or version already used by a different bundle.
	ErrReplay = errclass.New(errclass.Rejected, "bundle refused: replay or rollback")
	// ErrDowngradeNotAllowed reports --allow-downgrade used where the policy
	// rule does not set allowDowngrade: true.
	ErrDowngradeNotAllowed = errclass.New(errclass.Rejected, "downgrade not allowed by the policy")
	// ErrSequenceJump reports a sequence absurdly far ahead (more than
	// MaxSequenceJump above the highest accepted sequence and the current time).
	ErrSequenceJump = errclass.New(errclass.Rejected, "sequence jump too large")
	// ErrUnsafeTarget reports an install path from the bundle that could
	// escape the release directory or collides with another one.
	ErrUnsafeTarget = errclass.New(errclass.Rejected, "unsafe install target")
	// ErrUnsafeRoot reports a path airlock owns in the install root that is
	// a symbolic link or of the wrong type.
	ErrUnsafeRoot = errors.New("unsafe install root")
	// ErrLocked reports an install root another airlock process holds.
	ErrLocked = errors.New("install root is locked by another airlock process")
	// ErrState reports an install state file that is missing pieces, corrupted,
	// replaced by a link or from an unknown schema.
	ErrState = errors.New("install state unusable")
	// ErrNoSpace reports too little free space for the files to install.
	ErrNoSpace = errors.New("not enough free space")
	// ErrNotInstalled reports a bundle name or release that is not installed,
	// or no earlier release to roll back to.
	ErrNotInstalled = errors.New("not installed")
	// ErrDrift reports installed files that differ from what was installed.
	ErrDrift = errclass.New(errclass.Rejected, "installed files drifted")
)

// FreshnessError explains why a bundle was refused as a replay, a
// downgrade or an absurd sequence jump.
type FreshnessError struct {
	Name     string // bundle name
	Version  string // bundle version
	Sequence uint64 // the bundle's signed sequence
	Highest  uint64 // the highest sequence accepted for Name
	Reason   string
	Err      error // ErrReplay, ErrDowngradeNotAllowed or ErrSequenceJump
}

func (e *FreshnessError) Error() string {
	return fmt.Sprintf("%s %s (sequence %d; highest accepted %d): %s", e.Name, e.Version, e.Sequence, e.Highest, e.Reason)
}

func (e *FreshnessError) Unwrap() error { return e.Err }

// TargetError names an artifact whose install path is unsafe.
type TargetError struct {
	Artifact string // e.g. "model m" or "file etc/app.yaml"
	Target   string // the offending path, relative to the release directory
	Reason   string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("%s: install path %q: %s", e.Artifact, e.Target, e.Reason)
}

func (e *TargetError) Unwrap() error { return ErrUnsafeTarget }

// RootError names a path in the install root that airlock will not use.
type RootError struct {
	Path   string
	Reason string
}

func (e *RootError) Error() string {
	return fmt.Sprintf("%s %s; airlock owns this path and never follows links in the install root: move it away and try again (nothing was changed)", e.Path, e.Reason)
}

func (e *RootError) Unwrap() error { return ErrUnsafeRoot }

// LockedError names the lock and what its holder wrote into it.
type LockedError struct {
	Path   string // the lock file
	Holder string // "pid N since TIME", or "" when unknown
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "an unknown process"
	}
	return fmt.Sprintf("%s is held by %s: another airlock process (an install, rollback, prune or repair, or a check while one of those waits) is using this root; wait for it to finish and run the command again", e.Path, h)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// StateError names the state file, or a release record, and what is wrong
// with it. Its message says what to do; it never advises removing the
// install root or the records, which hold the rollback protection.
type StateError struct {
	Path   string // DIR/.airlock/state.json, or DIR/releases/NAME/.records/VERSION.json
	Root   string // DIR
	Reason string
	// Repairable is true when Repair can set the file aside (as
	// state.json.corrupt-TIME) and rebuild the state from the release
	// records: a state.json that is corrupted, inconsistent, too large or
	// not a regular file.
	Repairable bool
	// Fix, when set, is what to do instead of the default advice.
	Fix string
	Err error // cause, may be nil
}

func (e *StateError) Error() string {
	what := "install state"
	if filepath.Base(filepath.Dir(e.Path)) == dirRecords {
		what = "release record"
	}
	fix := e.Fix
	switch {
	case fix != "":
	case e.Repairable:
		fix = fmt.Sprintf("run 'airlock status --root %s --repair': it sets the file aside as %s.corrupt-TIME and rebuilds the state from the release records, keeping the highest sequence they prove (or restore %s from a backup). Do not remove %s: that would also drop the rollback protection", e.Root, fileState, fileState, e.Root)
	default:
		fix = fmt.Sprintf("fix the cause and run the command again. Do not remove it, %s or the release records: they hold the rollback protection", e.Root)
	}
	return fmt.Sprintf("%s %s %s; nothing was changed: %s", what, e.Path, e.Reason, fix)
}

func (e *StateError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrState, e.Err}
	}
	return []error{ErrState}
}

// NoSpaceError says how much space the install needs and how much there is.
type NoSpaceError struct {
	Dir       string // the install root
	Need      int64  // bytes of the files to install (signed sizes)
	Available int64  // bytes available to this user, -1 when unknown
	Target    string // the file being written when the disk filled up, "" for the pre-check
	Err       error  // cause (syscall.ENOSPC), may be nil
}

func (e *NoSpaceError) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("no space left on the device of %s while staging %s (the release needs %s): %v; free space and run the install again (the current release and the state are unchanged)", e.Dir, e.Target, sizeString(e.Need), e.Err)
	}
	return fmt.Sprintf("the release needs %s in %s but only %s is available; free space and run the install again (nothing was changed)", sizeString(e.Need), e.Dir, sizeString(e.Available))
}

func (e *NoSpaceError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrNoSpace, e.Err}
	}
	return []error{ErrNoSpace}
}

// DriftError summarizes what Check found.
type DriftError struct {
	Findings int // number of findings
	Releases int // releases with findings
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("%d finding(s) in %d release(s): installed files differ from what airlock installed", e.Findings, e.Releases)
}

func (e *DriftError) Unwrap() error { return ErrDrift }

func sizeString(n int64) string {
	return fmt.Sprintf("%s (%d bytes)", meter.Bytes(n), n)
}
