package keyless

import (
	"fmt"

	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrNotSigned reports an image with no keyless signature that verifies
	// for the required identity under the trusted root.
	ErrNotSigned = errclass.New(errclass.Rejected, "no valid keyless signature")
	// ErrBadRoot reports a trusted root that does not parse or whose digest
	// is not the pinned one.
	ErrBadRoot = errclass.New(errclass.Rejected, "trusted root not accepted")
	// ErrBadIdentity reports an identity that cannot be checked (no issuer,
	// no subject, an invalid regular expression).
	ErrBadIdentity = errclass.New(errclass.Usage, "invalid keyless identity")
)

// RootError names the trusted root file a problem was found in.
type RootError struct {
	Source string
	Err    error
}

func (e *RootError) Error() string { return fmt.Sprintf("trusted root %s: %v", e.Source, e.Err) }

func (e *RootError) Unwrap() error { return e.Err }

// ImageError names the image (and its digest) that has no acceptable
// keyless signature, the identity that was required, and why each
// candidate signature failed.
type ImageError struct {
	Image    string   // as named by the caller (reference)
	Digest   string   // the image manifest digest the signature must cover
	Identity Identity // what was required
	Reasons  []string // one per candidate signature, "where: why"
	Err      error    // ErrNotSigned
}

func (e *ImageError) Error() string {
	detail := "no Sigstore bundle referrer and no cosign signature tag with a certificate was found"
	if len(e.Reasons) > 0 {
		detail = joinReasons(e.Reasons)
	}
	return fmt.Sprintf("image %s (%s): %v for %s: %s", e.Image, e.Digest, e.Err, e.Identity, detail)
}

func (e *ImageError) Unwrap() error { return e.Err }

func joinReasons(rs []string) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += "; "
		}
		out += r
	}
	return out
}
