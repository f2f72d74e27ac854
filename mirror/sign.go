package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
)

// Names of cosign's key-based signature format.
const (
	cosignPayloadType   = "application/vnd.dev.cosign.simplesigning.v1+json"
	cosignSigAnnotation = "dev.cosignproject.cosign/signature"
	cosignImageType     = "cosign container image signature"
	// signerAnnotation marks layers airlock added, so a rerun does not sign twice.
	signerAnnotation = "dev.airlock.signer"
)

type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]string `json:"optional"`
}

type sigLayer struct {
	MediaType   string            `json:"mediaType"`
	Size        int64             `json:"size"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// signImages adds a signature by the site key to every mirrored image, in
// the format `cosign verify --key` checks: a simple-signing payload as a
// layer of the manifest tagged sha256-<hex>.sig. An existing signature
// manifest (an upstream signature carried in the bundle) keeps its layers;
// the site's layer is appended.
func (m *mirrorer) signImages(ctx context.Context) error {
	for _, j := range m.jobs {
		if j.kind != bundle.KindImage {
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
	var p simpleSigning
	p.Critical.Identity.DockerReference = repo.String()
	p.Critical.Image.DockerManifestDigest = digest
	p.Critical.Type = cosignImageType
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	payloadDigest := sha256Digest(payload)
	keyID := m.opts.SiteSigner.KeyID()
	tag := repo.Tag("sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig")

	manifest := map[string]json.RawMessage{}
	var layers []sigLayer
	if d, err := remote.Get(tag, m.remoteOpts(ctx)...); err == nil {
		if err := json.Unmarshal(d.Manifest, &manifest); err != nil {
			return fmt.Errorf("%w: signature manifest %s: %v", ErrRegistry, tag, err)
		}
		if err := json.Unmarshal(manifest["layers"], &layers); err != nil {
			return fmt.Errorf("%w: signature manifest %s: %v", ErrRegistry, tag, err)
		}
		for _, l := range layers {
			if l.Digest == payloadDigest && l.Annotations[signerAnnotation] == keyID {
				return nil // signed by this key on an earlier run
			}
		}
	} else {
		manifest["schemaVersion"] = json.RawMessage(`2`)
		manifest["mediaType"] = json.RawMessage(`"application/vnd.oci.image.manifest.v1+json"`)
	}
	sig, err := m.opts.SiteSigner.Sign(ctx, payload)
	if err != nil {
		return fmt.Errorf("sign %s with the site key: %w", digest, err)
	}
	layers = append(layers, sigLayer{
		MediaType: cosignPayloadType, Size: int64(len(payload)), Digest: payloadDigest,
		Annotations: map[string]string{cosignSigAnnotation: base64.StdEncoding.EncodeToString(sig), signerAnnotation: keyID},
	})
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, l.Digest)
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return err
	}
	cfgDesc := bundle.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: sha256Digest(cfg), Size: int64(len(cfg))}
	for _, b := range []struct {
		d    bundle.Descriptor
		data []byte
	}{{bundle.Descriptor{MediaType: cosignPayloadType, Digest: payloadDigest, Size: int64(len(payload))}, payload}, {cfgDesc, cfg}} {
		m.repos[b.d.Digest] = []name.Repository{repo}
		if err := m.uploadBlob(ctx, b.d, memOpener(b.data)); err != nil {
			return err
		}
	}
	if manifest["config"], err = json.Marshal(cfgDesc); err != nil {
		return err
	}
	if manifest["layers"], err = json.Marshal(layers); err != nil {
		return err
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := remote.Put(tag, rawManifest{raw: raw, mt: "application/vnd.oci.image.manifest.v1+json"}, m.remoteOpts(ctx)...); err != nil {
		return fmt.Errorf("%w: push signature %s: %v", ErrRegistry, tag, err)
	}
	if err := m.readBack(ctx, tag, sha256Digest(raw)); err != nil {
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
	var cur, up struct {
		Layers []sigLayer `json:"layers"`
	}
	if json.Unmarshal(d.Manifest, &cur) != nil || json.Unmarshal(upstream.Data, &up) != nil || len(cur.Layers) <= len(up.Layers) {
		return false
	}
	for i, l := range up.Layers {
		c := cur.Layers[i]
		if c.Digest != l.Digest || c.Annotations[cosignSigAnnotation] != l.Annotations[cosignSigAnnotation] {
			return false
		}
	}
	for _, c := range cur.Layers[len(up.Layers):] {
		if c.Annotations[signerAnnotation] == "" {
			return false
		}
	}
	return true
}
