package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/pack"
)

// ErrNotSigned reports an image without a valid signature by the required key.
var ErrNotSigned = errors.New("no valid cosign signature by the required key")

// CosignVerifier implements pack.ImageVerifier (images[].verify in
// airlock.yaml) for cosign key-based signatures found under the
// "sha256-<hex>.sig" tag or stored as an OCI 1.1 referrer, and for keyless
// signatures (an identity under a pinned Sigstore trusted root; see package
// keyless). The zero value is ready.
type CosignVerifier struct{}

var _ pack.ImageVerifier = CosignVerifier{}

// VerifyImage accepts the image when at least one signature layer under its
// signature tag verifies with the key and names the image's digest.
func (CosignVerifier) VerifyImage(ctx context.Context, req pack.ImageVerifyRequest) error {
	if req.Keyless != nil {
		return verifyKeyless(ctx, req)
	}
	key, err := keys.LoadPublic(req.Key)
	if err != nil {
		return err
	}
	v, err := key.Verifier()
	if err != nil {
		return err
	}
	tag := cosign.SignatureTag(req.Subject.Digest)
	var reasons []string
	for _, at := range req.Attachments {
		byTag := at.Kind == pack.AttachCosignTag && at.Tag == tag
		byReferrer := at.Kind == pack.AttachReferrer && at.ArtifactType == cosign.ArtifactTypeReferrerSignature
		if !(byTag || byReferrer) || at.Subject.Digest != req.Subject.Digest {
			continue
		}
		sigs, err := cosign.Parse(at.Raw)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		for _, s := range sigs {
			rc, err := req.Source.Blob(ctx, bundle.Descriptor(s.Payload))
			if err != nil {
				reasons = append(reasons, err.Error())
				continue
			}
			payload, err := checked.ReadAll(rc, s.Payload.Digest, s.Payload.Size)
			rc.Close()
			if err != nil {
				reasons = append(reasons, fmt.Sprintf("payload %s: %v", s.Payload.Digest, err))
				continue
			}
			if err := cosign.Verify(payload, s.Signature, req.Subject.Digest, v); err != nil {
				reasons = append(reasons, err.Error())
				continue
			}
			return nil
		}
	}
	detail := "no signature found under tag " + tag
	if len(reasons) > 0 {
		detail = strings.Join(reasons, "; ")
	}
	return fmt.Errorf("%w: key %s (%s), image digest %s: %s (sign it with cosign sign --key, or fix verify.key)", ErrNotSigned, req.Key, key.Fingerprint, req.Subject.Digest, detail)
}
