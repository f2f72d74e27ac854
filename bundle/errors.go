package bundle

import (
	"errors"
	"fmt"
)

var (
	// ErrSpec reports an invalid airlock.yaml.
	ErrSpec = errors.New("invalid release description")
	// ErrNotBundle reports input that is not an airlock bundle at all.
	ErrNotBundle = errors.New("not an airlock bundle")
	// ErrUnsupportedVersion reports a bundle written in a format version this build does not read.
	ErrUnsupportedVersion = errors.New("unsupported bundle format version")
	// ErrMalformed reports a bundle whose structure breaks the format: unknown,
	// duplicate, missing or misplaced entries, bad JSON, trailing data.
	ErrMalformed = errors.New("malformed bundle")
	// ErrLimit reports input that exceeds one of the limits in limits.go.
	ErrLimit = errors.New("limit exceeded")
	// ErrIntegrity reports bytes that do not match the digest or size the metadata declares.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrSource reports an artifact source (image, model, file, SBOM) that cannot be packed.
	ErrSource = errors.New("cannot pack source")
	// ErrUnsupportedMediaType reports a manifest media type airlock does not carry.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
)

// SpecError locates a problem in airlock.yaml.
type SpecError struct {
	File  string // path of airlock.yaml
	Line  int    // 1-based line, 0 when unknown
	Field string // e.g. "images[2].ref"
	Msg   string
}

func (e *SpecError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

func (e *SpecError) Unwrap() error { return ErrSpec }

// EntryError names the bundle entry (tar name) or digest a problem was found in.
type EntryError struct {
	Entry string // tar entry name, e.g. blobs/sha256/ab12...
	Err   error  // wraps one of the sentinels
}

func (e *EntryError) Error() string { return fmt.Sprintf("bundle entry %s: %v", e.Entry, e.Err) }

func (e *EntryError) Unwrap() error { return e.Err }

// SourceError names the artifact that could not be packed.
type SourceError struct {
	Artifact string // image ref, model name, file or SBOM source path
	Err      error
}

func (e *SourceError) Error() string { return fmt.Sprintf("%s: %v", e.Artifact, e.Err) }

func (e *SourceError) Unwrap() []error { return []error{ErrSource, e.Err} }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func overLimit(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLimit}, args...)...)
}
