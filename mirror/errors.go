package mirror

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound reports a tag, digest or repository the source does not have.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized reports a registry that refused our credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable reports a registry that could not be contacted.
	ErrUnreachable = errors.New("registry unreachable")
)

// SourceError names the image reference a failure belongs to and says what to do.
type SourceError struct {
	Ref  string
	Hint string
	Err  error
}

func (e *SourceError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("%s: %v (%s)", e.Ref, e.Err, e.Hint)
	}
	return fmt.Sprintf("%s: %v", e.Ref, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }
