package attest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/verify"
)

const (
	// PredicateType is the SLSA Verification Summary predicate, v1.
	PredicateType = "https://slsa.dev/verification_summary/v1"
	// StatementType is the in-toto Statement type.
	StatementType = bundle.StatementType
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = bundle.PayloadType
	// DefaultVerifierID identifies airlock as the verifier.
	DefaultVerifierID = "https://github.com/airlock-dev/airlock"
	// MediaType is the media type of a DSSE envelope, used when the record is
	// attached to images as an OCI referrer.
	MediaType = "application/vnd.dsse.envelope.v1+json"
)

// Verification results.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Statement is the in-toto statement of a verification record.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     VerificationSum `json:"predicate"`
}

// Subject is an in-toto subject: the bundle root (index.json).
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// VerificationSum is the SLSA VSA v1 predicate.
type VerificationSum struct {
	Verifier           Verifier        `json:"verifier"`
	TimeVerified       time.Time       `json:"timeVerified"`
	ResourceURI        string          `json:"resourceUri"`
	Policy             ResourceRef     `json:"policy"`
	InputAttestations  []ResourceRef   `json:"inputAttestations"`
	VerificationResult string          `json:"verificationResult"`
	VerifiedLevels     []string        `json:"verifiedLevels"`
	DependencyLevels   map[string]uint `json:"dependencyLevels,omitempty"`
	SlsaVersion        string          `json:"slsaVersion,omitempty"`
}

// Verifier identifies who verified: its id and component versions.
type Verifier struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// ResourceRef points at a resource by URI and digest.
type ResourceRef struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
}

// Options configures New; the zero value of every field works.
type Options struct {
	// VerifierID is the verifier's id; "" means DefaultVerifierID.
	VerifierID string
	// Airlock is the airlock version, recorded as verifier.version.airlock.
	Airlock string
	// Operation is what ran: "verify", "mirror" or "install", recorded as
	// verifier.version.operation; "" records none.
	Operation string
	// Time is timeVerified; zero means the report's Now.
	Time time.Time
}

// New builds the verification record of rep: subject the bundle root,
// result PASSED only when rep.Verified (the whole bundle checked, not the
// head alone), verifiedLevels one AIRLOCK_<CHECK> value per check that
// passed (or FAILED).
func New(rep *verify.Report, opts Options) (*Statement, error) {
	b := rep.Bundle
	root, ok := strings.CutPrefix(b.Root, "sha256:")
	if !ok || len(root) != 64 {
		return nil, errors.New("attest: the report names no bundle root (its head could not be read)")
	}
	if rep.HeadOnly {
		return nil, errors.New("attest: a head-only verification checked no body byte; it cannot be recorded")
	}
	id := opts.VerifierID
	if id == "" {
		id = DefaultVerifierID
	}
	ver := map[string]string{}
	if opts.Airlock != "" {
		ver["airlock"] = opts.Airlock
	}
	if opts.Operation != "" {
		ver["operation"] = opts.Operation
	}
	t := opts.Time
	if t.IsZero() {
		t = rep.Now
	}
	p := VerificationSum{
		Verifier:           Verifier{ID: id, Version: ver},
		TimeVerified:       t.UTC(),
		ResourceURI:        resourceURI(b),
		Policy:             ResourceRef{URI: fileURI(rep.Policy.Path), Digest: digestMap(rep.Policy.Digest)},
		InputAttestations:  []ResourceRef{},
		VerificationResult: Failed,
		VerifiedLevels:     []string{Failed},
		SlsaVersion:        "1.0",
	}
	if b.SignaturesDigest != "" {
		p.InputAttestations = append(p.InputAttestations, ResourceRef{URI: bundleEntryURI(b, bundle.EntrySignatures), Digest: digestMap(b.SignaturesDigest)})
	}
	if rep.Verified {
		p.VerificationResult = Passed
		p.VerifiedLevels = []string{}
		for _, c := range rep.Checks {
			if c.OK {
				p.VerifiedLevels = append(p.VerifiedLevels, level(c.Name))
			}
		}
	}
	return &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: bundle.EntryIndex, Digest: map[string]string{"sha256": root}}},
		PredicateType: PredicateType,
		Predicate:     p,
	}, nil
}

// level turns a check name ("sbomForEveryImage") into a verifiedLevels
// value ("AIRLOCK_SBOM_FOR_EVERY_IMAGE").
func level(check string) string {
	var sb strings.Builder
	sb.WriteString("AIRLOCK_")
	for i, r := range check {
		if r >= 'A' && r <= 'Z' && i > 0 {
			sb.WriteByte('_')
		}
		sb.WriteString(strings.ToUpper(string(r)))
	}
	return sb.String()
}

func digestMap(d string) map[string]string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return map[string]string{}
	}
	return map[string]string{alg: hex}
}

// fileURI makes an absolute file:// URI of a path.
func fileURI(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String()
}

// resourceURI names the bundle: its file, or else its name and version.
func resourceURI(b verify.BundleInfo) string {
	if b.Path != "" {
		return fileURI(b.Path)
	}
	return "airlock:" + url.PathEscape(b.Name) + "@" + url.PathEscape(b.Version)
}

// bundleEntryURI names an entry inside the bundle file.
func bundleEntryURI(b verify.BundleInfo, entry string) string {
	return resourceURI(b) + "#" + entry
}

// Signer signs DSSE pre-authentication encodings; *keys.Signer is one.
type Signer interface {
	KeyID() string
	Sign(ctx context.Context, message []byte) ([]byte, error)
}

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// Sign encodes st and signs it into a DSSE envelope, returning the
// envelope's JSON (what --attest writes) and its digest.
func Sign(ctx context.Context, st *Statement, s Signer) ([]byte, string, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, "", err
	}
	sig, err := s.Sign(ctx, dsse.PAE(PayloadType, payload))
	if err != nil {
		return nil, "", fmt.Errorf("sign the verification record with %s: %w", s.KeyID(), err)
	}
	env := Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []Signature{{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}}}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, "", err
	}
	out = append(out, '\n')
	sum := sha256.Sum256(out)
	return out, "sha256:" + hex.EncodeToString(sum[:]), nil
}
