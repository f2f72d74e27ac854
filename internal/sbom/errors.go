package sbom

import "errors"

// Sentinel errors. Summarize wraps exactly one of them in an *Error, except
// when reading fails, where the *Error wraps the reader's error instead.
var (
	// ErrUnknownFormat means the input is not an SPDX JSON or CycloneDX JSON
	// document: it is empty, not JSON, a JSON value other than an object, or
	// an object with neither an "spdxVersion" nor a "bomFormat" member.
	ErrUnknownFormat = errors.New("unknown SBOM format")

	// ErrTooLarge means the input exceeds one of Summarize's limits: more
	// than MaxSize bytes, components nested more than 64 levels deep, or a
	// recorded string (name, version) longer than 4096 bytes.
	ErrTooLarge = errors.New("SBOM too large")

	// ErrMalformed means the input claims to be SPDX or CycloneDX JSON but
	// is not valid: invalid JSON or UTF-8, duplicate or case-variant keys,
	// data after the document, both format markers, or a field of the wrong
	// type.
	ErrMalformed = errors.New("malformed SBOM")
)

// Error reports why an SBOM could not be summarised.
type Error struct {
	// Name is the name the caller passed to Summarize, usually the file path.
	Name string
	// Reason says what is wrong and what to do about it.
	Reason string
	// Err is ErrUnknownFormat, ErrTooLarge, ErrMalformed, or the error
	// returned by the reader.
	Err error
}

// Error returns "NAME: REASON". An empty Name is shown as "SBOM".
func (e *Error) Error() string {
	name := e.Name
	if name == "" {
		name = "SBOM"
	}
	return name + ": " + e.Reason
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }
