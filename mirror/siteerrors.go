package mirror

import (
	"errors"
	"fmt"
)

var (
	// ErrTooLarge reports a registry answer longer than anything it may
	// legitimately send (a manifest over bundle.MaxManifestSize).
	ErrTooLarge = errors.New("registry answer too large")
	// ErrNotServed reports content a registry said it has but does not serve.
	ErrNotServed = errors.New("registry does not serve what it claims to have")
	// ErrReplay reports a bundle older than, or conflicting with, one
	// already mirrored into the same registry prefix (the site state).
	ErrReplay = errors.New("bundle refused by the site state: replay or rollback")
	// ErrDowngradeNotAllowed reports a downgrade asked for (AllowDowngrade)
	// where the policy rule does not set allowDowngrade: true.
	ErrDowngradeNotAllowed = errors.New("downgrade not allowed by the policy")
	// ErrSiteState reports a site state artifact that cannot be read or
	// understood; nothing is pushed over it.
	ErrSiteState = errors.New("site state unusable")
)

// LimitError names an answer that exceeded its limit; the rest of it was
// not read.
type LimitError struct {
	What  string // e.g. "GET REPO@sha256:..."
	Limit int64  // bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: the registry sent more than %d bytes, the limit; it was not read further", e.What, e.Limit)
}

func (e *LimitError) Unwrap() []error { return []error{ErrRegistry, ErrTooLarge} }

// NotServedError names a blob or manifest the registry claimed to have
// (a mount or push was acknowledged) that it does not serve.
type NotServedError struct {
	Ref    string // REPO@DIGEST, or REPO:TAG
	Reason string
}

func (e *NotServedError) Error() string {
	return fmt.Sprintf("%s: %s", e.Ref, e.Reason)
}

func (e *NotServedError) Unwrap() []error { return []error{ErrRegistry, ErrNotServed} }

// FreshnessError explains why the site state refused a bundle. It is a
// rejection of the bundle (wrapped in a verify.Failure by Mirror).
type FreshnessError struct {
	Name     string // bundle name
	Version  string
	Sequence uint64 // the bundle's signed sequence
	Highest  uint64 // the highest sequence mirrored for Name into State
	State    string // REGISTRY/PREFIX/airlock-state:NAME
	Reason   string
	Err      error // ErrReplay or ErrDowngradeNotAllowed
}

func (e *FreshnessError) Error() string {
	return fmt.Sprintf("%s %s (sequence %d; highest mirrored %d, recorded in %s): %s", e.Name, e.Version, e.Sequence, e.Highest, e.State, e.Reason)
}

func (e *FreshnessError) Unwrap() error { return e.Err }

// SiteStateError names a site state artifact that cannot be used.
type SiteStateError struct {
	Ref    string
	Reason string
	Err    error // cause, may be nil
}

func (e *SiteStateError) Error() string {
	s := fmt.Sprintf("site state %s %s", e.Ref, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *SiteStateError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrSiteState, e.Err}
	}
	return []error{ErrSiteState}
}
