package cosign

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors, wrapped by *ParseError and *VerifyError; test with errors.Is.
//
// ErrBadSignature, ErrBadPayload, ErrWrongType and ErrWrongImage mean the
// signature failed verification: it must not be counted. ErrMalformed,
// ErrTooLarge and ErrInvalidArgument mean it could not be checked at all.
var (
	// ErrMalformed: the manifest is not a cosign signature manifest (not
	// strict JSON, an index, no layers, a layer without a valid digest, size
	// or base64 signature annotation, or of another media type).
	ErrMalformed = errors.New("malformed cosign signature manifest")
	// ErrTooLarge: the manifest, a payload or a signature exceeds its limit
	// (MaxManifestSize, MaxPayloadSize, MaxSignatureSize), or the manifest
	// has more than MaxSignatures layers.
	ErrTooLarge = errors.New("exceeds the limit")
	// ErrInvalidArgument: Verify was called without a verifier or with a
	// subject that is not a "sha256:<64 hex>" digest.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrBadSignature: the signature does not verify over the payload with
	// the key (wrong key, or signature or payload altered).
	ErrBadSignature = errors.New("signature does not verify with the key")
	// ErrBadPayload: the payload is validly signed but is not a strict
	// simple signing document (duplicate or unknown keys, trailing data,
	// missing critical fields).
	ErrBadPayload = errors.New("malformed simple signing payload")
	// ErrWrongType: critical.type is not TypeContainerImage.
	ErrWrongType = errors.New("payload is not a cosign container image signature")
	// ErrWrongImage: critical.image.docker-manifest-digest names another image.
	ErrWrongImage = errors.New("payload signs another image")
)

// ParseError reports why Parse refused a signature manifest.
type ParseError struct {
	// Layer is the index of the layer at fault, or -1 for the manifest as a whole.
	Layer int
	// Field names the member at fault, such as "layers" or
	// "annotations.dev.cosignproject.cosign/signature"; "" for the whole.
	Field string
	// Err wraps ErrMalformed or ErrTooLarge and, when there is one, the cause.
	Err error
}

func (e *ParseError) Error() string {
	where := "cosign signature manifest"
	if e.Layer >= 0 {
		where += " layer " + strconv.Itoa(e.Layer)
	}
	if e.Field != "" {
		where += " " + e.Field
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

// Unwrap returns the sentinel error and its cause.
func (e *ParseError) Unwrap() error { return e.Err }

// VerifyError reports why Verify refused a signature.
type VerifyError struct {
	// Subject is the image digest the signature was checked for.
	Subject string
	// Signed is the digest the payload names, when it was read (ErrWrongImage).
	Signed string
	// Err wraps one of the sentinel errors and, when there is one, the cause.
	Err error
}

func (e *VerifyError) Error() string {
	msg := fmt.Sprintf("cosign signature for %s: %v", strconv.Quote(e.Subject), e.Err)
	if e.Signed != "" {
		msg += fmt.Sprintf(" (the payload signs %s; fetch the signature of the image you pack)", strconv.Quote(clip(e.Signed)))
	}
	return msg
}

// Unwrap returns the sentinel error and its cause.
func (e *VerifyError) Unwrap() error { return e.Err }

// clip shortens untrusted text for an error message.
func clip(s string) string {
	const limit = 100
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
