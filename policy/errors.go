package policy

import (
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrInvalidPolicy reports a policy file that cannot be used: unreadable,
	// malformed, or unsafe (see Parse). Nothing is trusted under it.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrPolicy reports a bundle the policy rejects. Every *Violation wraps it.
	ErrPolicy = errclass.New(errclass.Rejected, "rejected by policy")
	// ErrNoRule reports a bundle name no rule matches (deny by default). It
	// comes as a *Violation, so it wraps ErrPolicy too.
	ErrNoRule = errclass.New(errclass.Rejected, "no policy rule matches the bundle")
	// ErrThreshold reports too few distinct trusted signers. It comes as a
	// *Violation, so it wraps ErrPolicy too.
	ErrThreshold = errclass.New(errclass.Rejected, "not enough trusted signatures")
)

// Error locates a problem in a policy file. It wraps ErrInvalidPolicy and,
// when there is one, the underlying cause (an I/O error, or a keys sentinel
// such as keys.ErrUnsupportedKey).
type Error struct {
	File  string // policy file path
	Line  int    // 1-based line, 0 when unknown
	Field string // e.g. "bundles[1].threshold" or "keys.release.publicKey"
	Msg   string
	Err   error // cause, may be nil
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("policy %s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("policy %s: %s", loc, e.Msg)
}

func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidPolicy, e.Err}
	}
	return []error{ErrInvalidPolicy}
}

// Names of the checks Evaluate runs, as they appear in Check.Name and
// Violation.Check.
const (
	CheckMatch     = "match"             // the rule's glob matches the bundle name
	CheckThreshold = "threshold"         // enough distinct trusted signers
	CheckChannel   = "channel"           // statement channel equals the rule's
	CheckNotBefore = "notBefore"         // created no later than now + ClockSkew
	CheckExpires   = "expires"           // now before expiry; expiry after creation
	CheckMaxAge    = "maxAge"            // created no longer ago than maxAge
	CheckSBOM      = "sbomForEveryImage" // every image carries an SBOM
	CheckPlatforms = "platforms"         // every image offers the required platforms
)

// Violation is a bundle failing a policy check. It wraps ErrPolicy, plus
// ErrThreshold for the threshold check and ErrNoRule for an unmatched name.
type Violation struct {
	Check  string // one of the Check* names
	Detail string // what was expected and what was found
}

func (v *Violation) Error() string {
	return fmt.Sprintf("policy check %s failed: %s", v.Check, v.Detail)
}

func (v *Violation) Unwrap() []error {
	switch v.Check {
	case CheckThreshold:
		return []error{ErrPolicy, ErrThreshold}
	case CheckMatch:
		return []error{ErrPolicy, ErrNoRule}
	}
	return []error{ErrPolicy}
}
