package verify

import (
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
)

var (
	// ErrUntrusted reports signatures that do not establish trust: one that
	// claims a policy key but does not verify, or too few trusted keys.
	ErrUntrusted = errors.New("untrusted bundle")
	// ErrNoPolicy reports a call without a policy.
	ErrNoPolicy = errors.New("no trust policy given")
)

// Failure is a verification failure: the bundle was read and judged, and it
// is not acceptable. Stage says where: "head", "signatures", "policy" or "body".
type Failure struct {
	Stage string
	Err   error
}

func (f *Failure) Error() string { return fmt.Sprintf("verification failed (%s): %v", f.Stage, f.Err) }

func (f *Failure) Unwrap() error { return f.Err }

// IsFailure reports whether err means "verification failed" (the bundle is
// rejected) as opposed to "could not verify" (I/O, a missing file, a
// cancelled run). Callers map the first to exit code 3 and the second to 1.
func IsFailure(err error) bool {
	var f *Failure
	if errors.As(err, &f) {
		return true
	}
	for _, e := range []error{
		bundle.ErrNotBundle, bundle.ErrUnsupportedVersion, bundle.ErrMalformed, bundle.ErrIntegrity,
		bundle.ErrLimit, bundle.ErrStatement, bundle.ErrPayloadType, bundle.ErrUnsupportedMediaType,
		ErrUntrusted, policy.ErrPolicy, policy.ErrNoRule,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// classifyHead turns an error from reading the head into a Failure when the
// bundle itself is at fault, and leaves I/O errors alone.
func classifyHead(err error) error {
	if IsFailure(err) {
		return &Failure{Stage: "head", Err: err}
	}
	return err
}
