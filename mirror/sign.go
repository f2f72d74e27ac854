package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
)

// signerAnnotation marks layers airlock added, so a rerun does not sign twice.
const signerAnnotation = "dev.airlock.signer"

// signImages adds a signature by the site key to every mirrored image, in
// the format `cosign verify --key` checks: a simple-signing payload as a
// layer of the manifest tagged sha256-<hex>.sig. An existing signature
// manifest (an upstream signature carried in the bundle) keeps its layers;
// the site's layer is appended.
func (m *mirrorer) signImages(ctx context.Context) error {
	for _, j := range m.jobs {
		if k, _ := bundle.KindOf(j.kind); k.Placement != bundle.PlaceByRef {
			continue
		}
		root := j.content.Manifests[len(j.content.Manifests)-1]
		if err := m.signImage(ctx, j.place.repo, root.Digest); err != nil {
			return err
		}
	}
	return nil
}

func (m *mirrorer) signImage(ctx context.Context, repo name.Repository, digest string) error {
	payload, err := cosign.NewPayload(repo.String(), digest)
	if err != nil {
		return err
	}
	payloadDigest := sha256Digest(payload)
	keyID := m.opts.SiteSigner.KeyID()
	tag := repo.Tag(cosign.SignatureTag(digest))

	var existing []byte
	if d, err := remote.Get(tag, m.remoteOpts(ctx)...); err == nil {
		layers, err := cosign.Layers(d.Manifest)
		if err != nil {
			return fmt.Errorf("%w: signature manifest %s: %w", ErrRegistry, tag, err)
		}
		for _, l := range layers {
			if l.Digest == payloadDigest && l.Annotations[signerAnnotation] == keyID {
				return nil // signed by this key on an earlier run
			}
		}
		existing = d.Manifest
	}
	sig, err := m.opts.SiteSigner.Sign(ctx, payload)
	if err != nil {
		return fmt.Errorf("sign %s with the site key: %w", digest, err)
	}
	built, err := cosign.AppendSignature(existing, payload, sig, map[string]string{signerAnnotation: keyID})
	if err != nil {
		return fmt.Errorf("%w: signature manifest %s: %w", ErrRegistry, tag, err)
	}
	for _, b := range []struct {
		d    cosign.Descriptor
		data []byte
	}{{built.PayloadDesc, built.Payload}, {built.ConfigDesc, built.Config}} {
		m.repos[b.d.Digest] = []name.Repository{repo}
		if err := m.uploadBlob(ctx, bundle.Descriptor(b.d), memOpener(b.data)); err != nil {
			return err
		}
	}
	if err := remote.Put(tag, rawManifest{raw: built.Manifest, mt: bundle.MediaTypeOCIManifest}, m.remoteOpts(ctx)...); err != nil {
		return fmt.Errorf("%w: push signature %s: %w", ErrRegistry, tag, err)
	}
	if err := m.readBack(ctx, tag, sha256Digest(built.Manifest)); err != nil {
		return err
	}
	m.count(func(r *Result) { r.Signed++ })
	return nil
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// siteSignedCopy reports whether tag, the cosign signature tag that
// upstream (a signature manifest carried in the bundle) belongs under,
// holds what signImage makes of it: upstream's layers, unchanged and in
// order, followed only by layers the site key added.
func (m *mirrorer) siteSignedCopy(ctx context.Context, tag name.Tag, upstream bundle.Blob) bool {
	if m.opts.SiteSigner == nil || !strings.HasSuffix(tag.TagStr(), ".sig") {
		return false
	}
	d, err := remote.Get(tag, m.remoteOpts(ctx)...)
	if err != nil {
		return false
	}
	cur, err1 := cosign.Layers(d.Manifest)
	up, err2 := cosign.Layers(upstream.Data)
	if err1 != nil || err2 != nil || len(cur) <= len(up) {
		return false
	}
	for i, l := range up {
		c := cur[i]
		if c.Digest != l.Digest || c.Annotations[cosign.AnnotationSignature] != l.Annotations[cosign.AnnotationSignature] {
			return false
		}
	}
	for _, c := range cur[len(up):] {
		if c.Annotations[signerAnnotation] == "" {
			return false
		}
	}
	return true
}
