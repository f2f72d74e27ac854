package keyless_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/testkit/sigstoretest"
	"github.com/airlock-dev/airlock/keyless"
)

const (
	issuer  = "https://token.actions.githubusercontent.com"
	subject = "https://github.com/example/payments/.github/workflows/release.yml@refs/heads/main"
	ref     = "registry.example/payments/api:1.0"
)

// store holds blobs by digest, as a BlobFunc reads them.
type store map[string][]byte

func (s store) put(mediaType string, b []byte) bundle.Descriptor {
	d := bundle.Descriptor{MediaType: mediaType, Digest: checked.Digest(b), Size: int64(len(b))}
	s[d.Digest] = b
	return d
}

func (s store) blob(_ context.Context, d bundle.Descriptor) ([]byte, error) {
	b, ok := s[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", d.Digest)
	}
	return b, nil
}

// image is a fake image manifest digest.
func image(t *testing.T) string {
	sum := sha256.Sum256([]byte(t.Name()))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// referrer wraps a Sigstore bundle in an OCI referrer manifest of digest.
func referrer(s store, digest string, bundleJSON []byte) keyless.Attachment {
	layer := s.put(sigstoretest.MediaTypeBundle, bundleJSON)
	cfg := s.put("application/vnd.oci.empty.v1+json", []byte("{}"))
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"artifactType": sigstoretest.MediaTypeBundle, "config": cfg, "layers": []any{layer},
		"subject": map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 100},
	})
	root := s.put("application/vnd.oci.image.manifest.v1+json", raw)
	return keyless.Attachment{Subject: digest, Root: root, Raw: raw, ArtifactType: sigstoretest.MediaTypeBundle}
}

// sigTag wraps keyless cosign layers in the manifest of the .sig tag of digest.
func sigTag(s store, digest string, payload []byte, ann map[string]string) keyless.Attachment {
	pd := s.put(cosign.MediaTypeSimpleSigning, payload)
	cfg := s.put("application/vnd.oci.image.config.v1+json", []byte("{}"))
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg,
		"layers": []any{map[string]any{"mediaType": pd.MediaType, "digest": pd.Digest, "size": pd.Size, "annotations": ann}},
	})
	root := s.put("application/vnd.oci.image.manifest.v1+json", raw)
	return keyless.Attachment{Subject: digest, Root: root, Raw: raw, Tag: "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"}
}

func simpleSigning(t *testing.T, digest string) []byte {
	p, err := cosign.NewPayload(ref, digest)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeylessBothForms(t *testing.T) {
	t.Parallel()
	ss := sigstoretest.New(t)
	r, err := keyless.ParseRoot("trusted_root.json", ss.Root, checked.Digest(ss.Root))
	if err != nil {
		t.Fatal(err)
	}
	id := keyless.Identity{Issuer: issuer, Subject: subject}
	ctx := context.Background()
	dig := image(t)

	s := store{}
	m, err := keyless.VerifyImage(ctx, r, id, ref, dig, []keyless.Attachment{referrer(s, dig, ss.Bundle(t, subject, issuer, ref, dig, sigstoretest.Options{}))}, s.blob)
	if err != nil {
		t.Fatalf("Sigstore bundle referrer: %v", err)
	}
	if m.Form != keyless.FormSigstoreBundle || m.Subject != subject || m.Issuer != issuer || m.TrustedRoot != r.Digest || m.IntegratedTime.IsZero() {
		t.Errorf("match %+v", m)
	}

	s = store{}
	payload := simpleSigning(t, dig)
	m, err = keyless.VerifyImage(ctx, r, id, ref, dig, []keyless.Attachment{sigTag(s, dig, payload, ss.CosignLayer(t, subject, issuer, payload, sigstoretest.Options{}))}, s.blob)
	if err != nil {
		t.Fatalf("cosign .sig tag: %v", err)
	}
	if m.Form != keyless.FormCosignTag || m.Subject != subject {
		t.Errorf("match %+v", m)
	}

	// A subject regular expression matches the whole SAN only.
	for re, ok := range map[string]bool{
		`https://github\.com/example/payments/.*`: true,
		`https://github\.com/example/`:            false, // a prefix is not a match
		`.*/other/.*`:                             false,
	} {
		_, err := keyless.VerifyImage(ctx, r, keyless.Identity{Issuer: issuer, SubjectRegExp: re}, ref, dig, []keyless.Attachment{sigTag(s, dig, payload, ss.CosignLayer(t, subject, issuer, payload, sigstoretest.Options{}))}, s.blob)
		if (err == nil) != ok {
			t.Errorf("subjectRegExp %s: err %v, want ok=%v", re, err, ok)
		}
	}
}

// TestKeylessRefuses: each failure the issue names fails with ErrNotSigned
// (or ErrBadRoot), naming the image and the reason.
func TestKeylessRefuses(t *testing.T) {
	t.Parallel()
	ss := sigstoretest.New(t)
	other := sigstoretest.New(t)
	r, _ := keyless.ParseRoot("trusted_root.json", ss.Root, "")
	ctx := context.Background()
	dig := image(t)
	id := keyless.Identity{Issuer: issuer, Subject: subject}
	payload := simpleSigning(t, dig)
	late := sigstoretest.Options{LogTime: time.Now().Add(30 * time.Minute)} // the certificate lived 10 minutes

	cases := []struct {
		name string
		att  func(s store) keyless.Attachment
		id   keyless.Identity
		want string
	}{
		{"wrong subject", func(s store) keyless.Attachment {
			return referrer(s, dig, ss.Bundle(t, "mallory@example.com", issuer, ref, dig, sigstoretest.Options{}))
		}, id, "wrong identity"},
		{"wrong issuer", func(s store) keyless.Attachment {
			return sigTag(s, dig, payload, ss.CosignLayer(t, subject, "https://accounts.google.com", payload, sigstoretest.Options{}))
		}, id, "wrong identity"},
		{"expired certificate (bundle)", func(s store) keyless.Attachment {
			return referrer(s, dig, ss.Bundle(t, subject, issuer, ref, dig, late))
		}, id, "not valid at the log entry's time"},
		{"expired certificate (tag)", func(s store) keyless.Attachment {
			return sigTag(s, dig, payload, ss.CosignLayer(t, subject, issuer, payload, late))
		}, id, "not valid at the log entry's time"},
		{"no inclusion proof", func(s store) keyless.Attachment {
			return referrer(s, dig, ss.Bundle(t, subject, issuer, ref, dig, sigstoretest.Options{NoInclusionProof: true}))
		}, id, "inclusion proof"},
		{"no Rekor bundle on the tag", func(s store) keyless.Attachment {
			ann := ss.CosignLayer(t, subject, issuer, payload, sigstoretest.Options{})
			delete(ann, keyless.AnnotationBundle)
			return sigTag(s, dig, payload, ann)
		}, id, "no Rekor bundle"},
		{"another Sigstore's certificate", func(s store) keyless.Attachment {
			return referrer(s, dig, other.Bundle(t, subject, issuer, ref, dig, sigstoretest.Options{}))
		}, id, "trusted root"},
		{"another image's signature", func(s store) keyless.Attachment {
			d2 := "sha256:" + strings.Repeat("ab", 32)
			return referrer(s, dig, ss.Bundle(t, subject, issuer, ref, d2, sigstoretest.Options{}))
		}, id, "digest"},
		{"tag payload for another image", func(s store) keyless.Attachment {
			p2 := simpleSigning(t, "sha256:"+strings.Repeat("cd", 32))
			return sigTag(s, dig, p2, ss.CosignLayer(t, subject, issuer, p2, sigstoretest.Options{}))
		}, id, "sha256:cdcd"},
		{"nothing attached", nil, id, "no Sigstore bundle referrer"},
	}
	for _, c := range cases {
		s := store{}
		var atts []keyless.Attachment
		if c.att != nil {
			atts = append(atts, c.att(s))
		}
		_, err := keyless.VerifyImage(ctx, r, c.id, ref, dig, atts, s.blob)
		var ie *keyless.ImageError
		if !errors.Is(err, keyless.ErrNotSigned) || !errors.As(err, &ie) || ie.Image != ref {
			t.Errorf("%s: err %v, want an ImageError for %s wrapping ErrNotSigned", c.name, err, ref)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || !strings.Contains(msg, ref) {
			t.Errorf("%s: %q should name the image and contain %q", c.name, msg, c.want)
		}
	}

	// An unpinned (other) trusted root is refused before anything is checked.
	if _, err := keyless.ParseRoot("roots/other.json", other.Root, r.Digest); !errors.Is(err, keyless.ErrBadRoot) || !strings.Contains(err.Error(), "roots/other.json") {
		t.Errorf("unpinned root: %v", err)
	}
	for name, raw := range map[string][]byte{
		"duplicate key": []byte(`{"mediaType":"a","mediaType":"b"}`),
		"not a root":    []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`),
		"trailing data": append(append([]byte{}, ss.Root...), []byte(" {}")...),
	} {
		if _, err := keyless.ParseRoot(name, raw, ""); !errors.Is(err, keyless.ErrBadRoot) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []keyless.Identity{{Subject: subject}, {Issuer: issuer}, {Issuer: issuer, Subject: "a", SubjectRegExp: "b"}, {Issuer: issuer, SubjectRegExp: "("}} {
		if err := bad.Validate(); !errors.Is(err, keyless.ErrBadIdentity) {
			t.Errorf("identity %+v: %v", bad, err)
		}
	}
}

// TestRealPublicGoodBundle verifies, offline, a real bundle from the
// public-good Sigstore instance (sigstore-js 2.0.0's npm provenance, from
// sigstore-go's test data; see testdata/README.md) against the public-good
// trusted root: Fulcio chain, SCT, Rekor inclusion proof and SET.
func TestRealPublicGoodBundle(t *testing.T) {
	t.Parallel()
	rootJSON, err := os.ReadFile("testdata/public-good-trusted-root.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyless.ParseRoot("testdata/public-good-trusted-root.json", rootJSON, "sha256:4364d7724c04cc912ce2a6c45ed2610e8d8d1c4dc857fb500292738d4d9c8d2c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/sigstore-js-2.0.0-provenance.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString("46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c")
	id := keyless.Identity{Issuer: issuer, Subject: "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"}
	m, err := keyless.VerifyArtifactBundle(r, id, b, "sha512", digest)
	if err != nil {
		t.Fatalf("public-good bundle: %v", err)
	}
	if m.IntegratedTime.Year() != 2023 {
		t.Errorf("integrated time %v", m.IntegratedTime)
	}
	wrong := id
	wrong.Subject = "https://github.com/sigstore/sigstore-js/.github/workflows/other.yml@refs/heads/main"
	if _, err := keyless.VerifyArtifactBundle(r, wrong, b, "sha512", digest); !errors.Is(err, keyless.ErrNotSigned) {
		t.Errorf("wrong workflow accepted: %v", err)
	}
	digest[0] ^= 1
	if _, err := keyless.VerifyArtifactBundle(r, id, b, "sha512", digest); !errors.Is(err, keyless.ErrNotSigned) {
		t.Errorf("another artifact accepted: %v", err)
	}
}
