package source

import (
	"context"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/pack"
)

// verifyKeyless checks images[].verify's keyless identity: a Sigstore
// bundle referrer or a keyless cosign signature tag attached to the image
// must verify, offline, under the pinned trusted root (package keyless).
func verifyKeyless(ctx context.Context, req pack.ImageVerifyRequest) error {
	kr := req.Keyless
	r, err := keyless.LoadRoot(kr.TrustedRoot, kr.TrustedRootSHA256)
	if err != nil {
		return err
	}
	atts := make([]keyless.Attachment, 0, len(req.Attachments))
	for _, at := range req.Attachments {
		atts = append(atts, keyless.Attachment{Subject: at.Subject.Digest, Root: at.Root, Raw: at.Raw, ArtifactType: at.ArtifactType, Tag: at.Tag})
	}
	blob := func(ctx context.Context, d bundle.Descriptor) ([]byte, error) {
		rc, err := req.Source.Blob(ctx, d)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return checked.ReadAll(rc, d.Digest, d.Size)
	}
	id := keyless.Identity{Issuer: kr.Issuer, Subject: kr.Subject, SubjectRegExp: kr.SubjectRegExp}
	_, err = keyless.VerifyImage(ctx, r, id, req.Ref, req.Subject.Digest, atts, blob)
	return err
}
