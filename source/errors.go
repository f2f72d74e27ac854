package source

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound reports a tag, digest or repository the source does not have.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized reports a registry that refused our credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrAmbiguous reports a local reference that matches several images.
	ErrAmbiguous = errors.New("ambiguous reference")
	// ErrUnreachable reports a registry that could not be contacted.
	ErrUnreachable = errors.New("registry unreachable")
)

// SourceError names the image reference a failure belongs to and says what to do.
type SourceError struct {
	Ref  string
	Hint string
	Err  error
}

// Error says what went wrong and what to do; callers prefix the reference
// (pack names the image), so it is not repeated here.
func (e *SourceError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("%v (%s)", e.Err, e.Hint)
	}
	return e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }
