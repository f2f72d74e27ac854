package verify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrUntrusted reports signatures that do not establish trust: one that
	// claims a policy key but does not verify, or too few trusted keys.
	ErrUntrusted = errclass.New(errclass.Rejected, "untrusted bundle")
	// ErrNoPolicy reports a call without a policy.
	ErrNoPolicy = errors.New("no trust policy given")
)

// Failure is a verification failure: the bundle was read and judged, and it
// is not acceptable. Stage says where: "head", "signatures", "policy" or "body".
type Failure struct {
	Stage string
	Err   error
}

func (f *Failure) Error() string {
	// The bundle reader names the stage too ("head: bundle entry ..."); say it once.
	msg := strings.TrimPrefix(f.Err.Error(), f.Stage+": ")
	return fmt.Sprintf("verification failed (%s): %s", f.Stage, msg)
}

func (f *Failure) Unwrap() error { return f.Err }

// Class makes every Failure a rejection of the bundle.
func (f *Failure) Class() errclass.Class { return errclass.Rejected }

// IsFailure reports whether err means "verification failed" (the bundle is
// rejected) as opposed to "could not verify" (I/O, a missing file, a
// cancelled run). Callers map the first to exit code 3 and the second to 1.
//
// The class is decided where each error is made (package errclass): this is
// errclass.Of(err) == errclass.Rejected.
func IsFailure(err error) bool { return errclass.Of(err) == errclass.Rejected }

// classifyHead turns an error from reading the head into a Failure when the
// bundle itself is at fault, and leaves I/O errors alone.
func classifyHead(err error) error {
	if IsFailure(err) {
		return &Failure{Stage: "head", Err: err}
	}
	return err
}
