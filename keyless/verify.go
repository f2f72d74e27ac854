package keyless

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Limits on what is read from attachments.
const (
	// MaxBundleSize bounds one Sigstore bundle blob (1 MiB; real ones are
	// a few KiB).
	MaxBundleSize = 1 << 20
	// MaxCandidates bounds the signatures tried for one image.
	MaxCandidates = 64
)

// Forms of evidence.
const (
	// FormSigstoreBundle is a Sigstore bundle (media type
	// application/vnd.dev.sigstore.bundle.v0.3+json and earlier versions)
	// stored as an OCI referrer of the image, as cosign v3 writes it.
	FormSigstoreBundle = "sigstore-bundle"
	// FormCosignTag is a layer of the cosign "sha256-<hex>.sig" tag with
	// the certificate and Rekor bundle annotations.
	FormCosignTag = "cosign-tag"
)

// mediaTypeBundlePrefix matches every Sigstore bundle version's media type.
const mediaTypeBundlePrefix = "application/vnd.dev.sigstore.bundle"

// Identity is who must have signed: the OIDC issuer recorded in the
// certificate, and its subject (the certificate's SAN: an e-mail address,
// a workflow URI) given exactly or as a regular expression.
type Identity struct {
	Issuer string `json:"issuer" yaml:"issuer"`
	// Subject must equal the certificate's SAN.
	Subject string `json:"subject,omitempty" yaml:"subject"`
	// SubjectRegExp must match the whole SAN (it is anchored: ^(?:RE)$).
	SubjectRegExp string `json:"subjectRegExp,omitempty" yaml:"subjectRegExp"`
}

func (i Identity) String() string {
	if i.SubjectRegExp != "" {
		return fmt.Sprintf("issuer %s, subject matching %s", i.Issuer, i.SubjectRegExp)
	}
	return fmt.Sprintf("issuer %s, subject %s", i.Issuer, i.Subject)
}

// Validate checks that the identity names an issuer and exactly one of
// Subject and SubjectRegExp, and that the expression compiles.
func (i Identity) Validate() error {
	switch {
	case i.Issuer == "":
		return fmt.Errorf("%w: issuer is required", ErrBadIdentity)
	case (i.Subject == "") == (i.SubjectRegExp == ""):
		return fmt.Errorf("%w: give exactly one of subject and subjectRegExp", ErrBadIdentity)
	}
	if i.SubjectRegExp != "" {
		if _, err := regexp.Compile(anchored(i.SubjectRegExp)); err != nil {
			return fmt.Errorf("%w: subjectRegExp: %v", ErrBadIdentity, err)
		}
	}
	return nil
}

func anchored(re string) string { return "^(?:" + re + ")$" }

// Attachment is one manifest attached to an image: a referrer, or the
// manifest under a cosign tag.
type Attachment struct {
	// Subject is the digest of the manifest it is attached to.
	Subject string
	// Root is the attachment manifest; Raw its exact bytes (already checked
	// against Root by the caller).
	Root bundle.Descriptor
	Raw  []byte
	// ArtifactType of a referrer; Tag of a cosign tag attachment.
	ArtifactType string
	Tag          string
}

// BlobFunc returns the exact bytes of the blob d, checked against its digest
// and size, or an error.
type BlobFunc func(ctx context.Context, d bundle.Descriptor) ([]byte, error)

// Match says which signature satisfied an identity.
type Match struct {
	Form           string    `json:"form"`           // FormSigstoreBundle or FormCosignTag
	Attachment     string    `json:"attachment"`     // digest of the attachment manifest
	Issuer         string    `json:"issuer"`         // from the certificate
	Subject        string    `json:"subject"`        // the certificate's SAN
	IntegratedTime time.Time `json:"integratedTime"` // the log entry's time
	LogIndex       int64     `json:"logIndex"`
	TrustedRoot    string    `json:"trustedRoot"` // digest of the root it chained to
}

// VerifyImage accepts the image (manifest digest) when at least one
// keyless signature attached to it verifies, offline, under r for id: the
// certificate chains to one of r's Fulcio CAs, names id, was valid at the
// time of its Rekor entry, the entry is in one of r's logs (inclusion proof
// or signed entry timestamp), SCTs verify when r lists CT logs, and the
// signature covers the image digest. image names it in errors. Errors are
// an *ImageError wrapping ErrNotSigned with one reason per candidate.
func VerifyImage(ctx context.Context, r *Root, id Identity, image, digest string, atts []Attachment, blob BlobFunc) (*Match, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if !checked.ValidDigest(digest) {
		return nil, fmt.Errorf("image %s: digest %q is not sha256:<hex>", image, digest)
	}
	fail := &ImageError{Image: image, Digest: digest, Identity: id, Err: ErrNotSigned}
	v, err := newVerifier(r)
	if err != nil {
		return nil, &RootError{Source: r.Source, Err: fmt.Errorf("%w: %v", ErrBadRoot, err)}
	}
	certID, err := sgverify.NewShortCertificateIdentity(id.Issuer, "", id.Subject, regexpOrEmpty(id.SubjectRegExp))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	sum, _ := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	sigTag := "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
	tried := 0
	for _, at := range atts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if at.Subject != digest {
			continue
		}
		var cands []candidate
		switch {
		case at.Tag == "" && strings.HasPrefix(at.ArtifactType, mediaTypeBundlePrefix):
			cands, err = bundleCandidates(ctx, at, blob)
		case at.Tag == sigTag:
			cands, err = cosignTagCandidates(ctx, at, blob, digest)
		default:
			continue
		}
		if err != nil {
			fail.Reasons = append(fail.Reasons, fmt.Sprintf("attachment %s: %v", at.Root.Digest, err))
			continue
		}
		for _, c := range cands {
			if tried++; tried > MaxCandidates {
				fail.Reasons = append(fail.Reasons, fmt.Sprintf("more than %d candidate signatures; the rest were not tried", MaxCandidates))
				return nil, fail
			}
			artifact := sgverify.WithArtifactDigest("sha256", sum)
			if c.payload != nil {
				artifact = sgverify.WithArtifact(strings.NewReader(string(c.payload)))
			}
			res, err := v.Verify(c.entity, sgverify.NewPolicy(artifact, sgverify.WithCertificateIdentity(certID)))
			if err == nil && c.check != nil {
				err = c.check()
			}
			if err != nil {
				fail.Reasons = append(fail.Reasons, fmt.Sprintf("%s %s: %s", c.form, c.where, explain(err)))
				continue
			}
			return matchOf(c.form, at.Root.Digest, r, res, c.entity), nil
		}
	}
	return nil, fail
}

// regexpOrEmpty anchors a non-empty expression.
func regexpOrEmpty(re string) string {
	if re == "" {
		return ""
	}
	return anchored(re)
}

// newVerifier is sigstore-go's verifier for r: one transparency log entry
// and one observer timestamp (the log's integrated time, or a signed
// timestamp) are required; SCTs when r lists CT logs.
func newVerifier(r *Root) (*sgverify.Verifier, error) {
	opts := []sgverify.VerifierOption{sgverify.WithTransparencyLog(1), sgverify.WithObserverTimestamps(1)}
	if len(r.tr.CTLogs()) > 0 {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	return sgverify.NewVerifier(r.tr, opts...)
}

// explain shortens sigstore-go's error chains to what an operator acts on.
func explain(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "certificate identity") || strings.Contains(s, "no matching CertificateIdentity"):
		return "wrong identity: " + s
	case strings.Contains(s, "expired") || strings.Contains(s, "not yet valid") || strings.Contains(s, "outside certificate validity"):
		return "certificate not valid at the log entry's time: " + s
	case strings.Contains(s, "inclusion proof"):
		return "no inclusion proof: " + s
	case strings.Contains(s, "not enough verified log entries"):
		return "no entry verifies against a Rekor log of the trusted root: " + s
	case strings.Contains(s, "certificate signed by unknown authority") || strings.Contains(s, "x509"):
		return "the certificate does not chain to a Fulcio CA of the trusted root: " + s
	}
	return s
}

// candidate is one signature to try.
type candidate struct {
	form    string
	where   string
	entity  sgverify.SignedEntity
	payload []byte       // the signed bytes, for message signatures over a payload
	check   func() error // after sigstore-go: does the payload name the image?
}

// referrerManifest is the part of an OCI manifest read here.
type referrerManifest struct {
	Layers []bundle.Descriptor `json:"layers"`
}

func parseManifest(raw []byte) (*referrerManifest, error) {
	if err := strictjson.Check(raw); err != nil {
		return nil, err
	}
	var m referrerManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// bundleCandidates reads the Sigstore bundle layers of a referrer.
func bundleCandidates(ctx context.Context, at Attachment, blob BlobFunc) ([]candidate, error) {
	m, err := parseManifest(at.Raw)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for i, l := range m.Layers {
		if !strings.HasPrefix(l.MediaType, mediaTypeBundlePrefix) {
			continue
		}
		where := fmt.Sprintf("%s layer %d", at.Root.Digest, i)
		if l.Size <= 0 || l.Size > MaxBundleSize {
			return nil, fmt.Errorf("layer %d: Sigstore bundle of %d bytes (at most %d)", i, l.Size, MaxBundleSize)
		}
		data, err := blob(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if err := strictjson.Check(data); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("layer %d: not a valid Sigstore bundle: %w", i, err)
		}
		out = append(out, candidate{form: FormSigstoreBundle, where: where, entity: &b})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no layer of media type %s*", mediaTypeBundlePrefix)
	}
	return out, nil
}

// digestOf is the sha256 of b.
func digestOf(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// VerifyArtifactBundle verifies one Sigstore bundle (JSON) for an artifact
// given by its digest (algorithm "sha256", "sha384" or "sha512"), offline,
// under r for id; the checks are those of VerifyImage. It is how a bundle
// that is not attached to an image (a blob's, a package's) is checked.
func VerifyArtifactBundle(r *Root, id Identity, bundleJSON []byte, algorithm string, digest []byte) (*Match, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if len(bundleJSON) > MaxBundleSize {
		return nil, fmt.Errorf("%w: Sigstore bundle of %d bytes (at most %d)", ErrNotSigned, len(bundleJSON), MaxBundleSize)
	}
	if err := strictjson.Check(bundleJSON); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSigned, err)
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, fmt.Errorf("%w: not a valid Sigstore bundle: %v", ErrNotSigned, explain(err))
	}
	v, err := newVerifier(r)
	if err != nil {
		return nil, &RootError{Source: r.Source, Err: fmt.Errorf("%w: %v", ErrBadRoot, err)}
	}
	certID, err := sgverify.NewShortCertificateIdentity(id.Issuer, "", id.Subject, regexpOrEmpty(id.SubjectRegExp))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	res, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest(algorithm, digest), sgverify.WithCertificateIdentity(certID)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotSigned, explain(err))
	}
	return matchOf(FormSigstoreBundle, "", r, res, &b), nil
}

// matchOf fills a Match from sigstore-go's result and the entity's log entry.
func matchOf(form, attachment string, r *Root, res *sgverify.VerificationResult, ent sgverify.SignedEntity) *Match {
	m := &Match{Form: form, Attachment: attachment, TrustedRoot: r.Digest}
	if res.Signature != nil && res.Signature.Certificate != nil {
		m.Issuer = res.Signature.Certificate.Issuer
		m.Subject = res.Signature.Certificate.SubjectAlternativeName
	}
	if entries, err := ent.TlogEntries(); err == nil && len(entries) > 0 {
		m.IntegratedTime = entries[0].IntegratedTime().UTC()
		m.LogIndex = entries[0].LogIndex()
	}
	return m
}
