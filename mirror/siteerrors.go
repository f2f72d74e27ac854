package mirror

import (
	"errors"
	"fmt"
	"strings"
	"time"
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
	// ErrConcurrentNewer reports a run whose tags were set while a newer
	// bundle of the same name was claimed in the same prefix by another
	// run: its tags may have replaced the newer bundle's.
	ErrConcurrentNewer = errors.New("a newer bundle was mirrored concurrently")
	// ErrTagMoved reports a tag this run set that names another manifest
	// when read again: another writer moved it.
	ErrTagMoved = errors.New("tag moved by another writer")
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
	// Intent and IntentDigest name the intent (REPO:TAG and its
	// manifest's digest; the digest is empty for one listed but not
	// served) whose claim refused the bundle, when a claim that has not
	// completed did; "" otherwise. A forged intent is removed by
	// deleting that manifest.
	Intent, IntentDigest string
	Err                  error // ErrReplay or ErrDowngradeNotAllowed
}

func (e *FreshnessError) Error() string {
	s := fmt.Sprintf("%s %s (sequence %d; highest mirrored %d, recorded in %s): %s", e.Name, e.Version, e.Sequence, e.Highest, e.State, e.Reason)
	if e.Intent != "" && !strings.Contains(e.Reason, e.Intent) {
		s += " (claimed by the intent " + e.Intent
		if e.IntentDigest != "" {
			s += ", manifest " + e.IntentDigest
		}
		s += ")"
	}
	return s
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

// ConcurrentMirrorError says that, while this run set its tags, another
// run claimed a newer bundle of the same name in the same prefix (the site
// state shows its intent or record): this run's tags may have replaced
// that bundle's. Mirroring the newer bundle again restores them. It is a
// refusal of this bundle by the site state (wrapped in a verify.Failure
// by Mirror); this run is not recorded as mirrored.
//
// With Earlier set it is the refusal, before anything is pushed, of a
// bundle whose earlier run claimed the prefix (its intent is live) and
// never completed, while a newer bundle is there now: that earlier run
// may have set its tags over the newer bundle's (it failed or was killed
// after its claim). It then also wraps ErrReplay.
type ConcurrentMirrorError struct {
	Name     string // bundle name
	Version  string // this bundle's version
	Sequence uint64 // this bundle's sequence
	// NewerVersion and NewerSequence name the newer bundle (the version
	// is empty when only the state document's highest sequence says so).
	NewerVersion  string
	NewerSequence uint64
	State         string // REGISTRY/PREFIX/airlock-state:NAME
	// Earlier is set when an earlier run of this bundle, which claimed
	// at EarlierClaim, is the one whose tags may have replaced the newer
	// bundle's.
	Earlier      bool
	EarlierClaim time.Time
	// Intent and IntentDigest name the newer bundle's intent when only
	// its claim (no record) shows it.
	Intent, IntentDigest string
}

func (e *ConcurrentMirrorError) Error() string {
	newer := fmt.Sprintf("%s %s (sequence %d)", e.Name, e.NewerVersion, e.NewerSequence)
	if e.NewerVersion == "" {
		newer = fmt.Sprintf("a bundle %s with sequence %d", e.Name, e.NewerSequence)
	}
	again := "the bundle " + e.Name + " with sequence " + fmt.Sprint(e.NewerSequence)
	if e.NewerVersion != "" {
		again = e.Name + " " + e.NewerVersion
	}
	if e.Intent != "" {
		newer += ", claimed by the intent " + e.Intent
		if e.IntentDigest != "" {
			newer += " (manifest " + e.IntentDigest + ")"
		}
	}
	if e.Earlier {
		return fmt.Sprintf("%s %s (sequence %d): an earlier run of this bundle claimed this prefix at %s and may have set its tags, but never completed (it failed or was killed); "+
			"%s, a newer bundle, is mirrored into the same prefix (%s): the earlier run's tags may have replaced its tags; mirror %s again to restore them (this bundle stays refused)",
			e.Name, e.Version, e.Sequence, e.EarlierClaim.Format(time.RFC3339), newer, e.State, again)
	}
	return fmt.Sprintf("%s %s (sequence %d): while this run set its tags, %s, a newer bundle, was mirrored into the same prefix by another run (%s): "+
		"this run's tags may have replaced its tags; mirror %s again to restore them (this bundle stays refused from now on)",
		e.Name, e.Version, e.Sequence, newer, e.State, again)
}

func (e *ConcurrentMirrorError) Unwrap() []error {
	if e.Earlier {
		return []error{ErrConcurrentNewer, ErrReplay}
	}
	return []error{ErrConcurrentNewer}
}

// TagMovedError names a tag this run set that, read again, names another
// manifest, while this run's manifest is stored byte for byte: another
// writer (for example a concurrent mirror into the same prefix) moved the
// tag.
type TagMovedError struct {
	Tag  string // REPO:TAG
	Got  string // the digest it names now
	Want string // the digest this run set
}

func (e *TagMovedError) Error() string {
	return fmt.Sprintf("%s names %s, not %s, which this run set and the registry stores byte for byte (%s@%s): another writer moved the tag meanwhile, "+
		"for example a concurrent airlock mirror into the same prefix; once that has ended, run this mirror again to set it back",
		e.Tag, e.Got, e.Want, e.Tag[:strings.LastIndex(e.Tag, ":")], e.Want)
}

func (e *TagMovedError) Unwrap() []error { return []error{ErrRegistry, ErrTagMoved} }
