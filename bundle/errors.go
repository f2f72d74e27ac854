package bundle

import (
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/errclass"
)

// The format's sentinels. Each is a rejection of the input: a bundle that
// breaks them is refused (errclass.Rejected), whoever reads it.
var (
	// ErrNotBundle reports input that is not an airlock bundle at all.
	ErrNotBundle = errclass.New(errclass.Rejected, "not an airlock bundle")
	// ErrUnsupportedVersion reports a bundle written in a format version this build does not read.
	ErrUnsupportedVersion = errclass.New(errclass.Rejected, "unsupported bundle format version")
	// ErrMalformed reports a bundle whose structure breaks the format: unknown,
	// duplicate, missing or misplaced entries, bad JSON, trailing data.
	ErrMalformed = errclass.New(errclass.Rejected, "malformed bundle")
	// ErrLimit reports input that exceeds one of the limits in limits.go.
	ErrLimit = errclass.New(errclass.Rejected, "limit exceeded")
	// ErrIntegrity reports bytes that do not match the digest or size the metadata declares.
	ErrIntegrity = errclass.New(errclass.Rejected, "integrity check failed")
	// ErrUnsupportedMediaType reports a manifest media type airlock does not carry.
	ErrUnsupportedMediaType = errclass.New(errclass.Rejected, "unsupported media type")
)

// EntryError names the bundle entry (tar name) or digest a problem was found
// in, the artifact it belongs to when known, and the stage of reading.
type EntryError struct {
	// Stage is "head" or "body" ("" when the error did not come from a Reader).
	Stage string
	Entry string // tar entry name, e.g. blobs/sha256/ab12...
	// Artifact describes the artifact, e.g. `artifact 2 (model m)`; "" when
	// the entry belongs to none or it is not known.
	Artifact string
	Err      error // wraps one of the sentinels
}

func (e *EntryError) Error() string {
	s := "bundle entry " + e.Entry
	if e.Stage != "" {
		s = e.Stage + ": " + s
	}
	if e.Artifact != "" {
		s += " of " + e.Artifact
	}
	return fmt.Sprintf("%s: %v", s, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func overLimit(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLimit}, args...)...)
}

// LayoutError reports two artifacts that would share one layout name
// (org.opencontainers.image.ref.name).
type LayoutError struct {
	Name          string
	First, Second string // the two artifacts, described
}

func (e *LayoutError) Error() string {
	return fmt.Sprintf("%s and %s would share the layout name %q; rename one", e.First, e.Second, e.Name)
}

// BlobError names a body blob that could not be written: its source failed,
// or its bytes did not match the digest (then it wraps ErrIntegrity).
type BlobError struct {
	Label  string // the artifact it belongs to
	Digest string
	Err    error
}

func (e *BlobError) Error() string { return fmt.Sprintf("%s: blob %s: %v", e.Label, e.Digest, e.Err) }

func (e *BlobError) Unwrap() error { return e.Err }

// withStage records the stage of reading in an *EntryError err carries
// (the outermost one), and returns err.
func withStage(err error, stage string) error {
	var ee *EntryError
	if errors.As(err, &ee) && ee.Stage == "" {
		ee.Stage = stage
	}
	return err
}

// withArtifact names the artifact in the entry error err carries, or wraps
// err in one naming entry and the artifact.
func withArtifact(err error, artifact, entry string) error {
	var ee *EntryError
	if errors.As(err, &ee) {
		if ee.Artifact == "" {
			ee.Artifact = artifact
		}
		return err
	}
	return &EntryError{Entry: entry, Artifact: artifact, Err: err}
}
