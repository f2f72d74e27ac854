package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

func report(verified bool) *verify.Report {
	return &verify.Report{
		Verified: verified, Trusted: verified, Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Bundle: verify.BundleInfo{Path: "b.airlock", Name: "demo", Version: "1.0.0", Root: "sha256:" + strings.Repeat("ab", 32), SignaturesDigest: "sha256:" + strings.Repeat("cd", 32)},
		Policy: verify.PolicyInfo{Path: "policy.yaml", Digest: "sha256:" + strings.Repeat("ef", 32)},
		Checks: []policy.Check{{Name: "threshold", OK: true}, {Name: "sbomForEveryImage", OK: true}, {Name: "expires", OK: verified}},
	}
}

func TestNew(t *testing.T) {
	st, err := New(report(true), Options{Airlock: "v1.2.3", Operation: "verify"})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Predicate
	if st.Subject[0].Digest["sha256"] != strings.Repeat("ab", 32) || p.VerificationResult != Passed ||
		strings.Join(p.VerifiedLevels, ",") != "AIRLOCK_THRESHOLD,AIRLOCK_SBOM_FOR_EVERY_IMAGE,AIRLOCK_EXPIRES" ||
		p.Policy.Digest["sha256"] != strings.Repeat("ef", 32) || !strings.HasPrefix(p.Policy.URI, "file:///") ||
		p.InputAttestations[0].Digest["sha256"] != strings.Repeat("cd", 32) || p.Verifier.Version["airlock"] != "v1.2.3" {
		t.Fatalf("statement: %+v", st)
	}
	st, err = New(report(false), Options{})
	if err != nil || st.Predicate.VerificationResult != Failed || strings.Join(st.Predicate.VerifiedLevels, ",") != Failed {
		t.Fatalf("failed statement: %+v %v", st, err)
	}
	head := report(true)
	head.Verified, head.HeadOnly = false, true
	if _, err := New(head, Options{}); err == nil {
		t.Fatal("a head-only verification was recorded")
	}
	unread := report(false)
	unread.Bundle.Root = ""
	if _, err := New(unread, Options{}); err == nil {
		t.Fatal("a verification without a root was recorded")
	}
}

// TestSign: the envelope's signature verifies with the signer's public key
// over the DSSE PAE of exactly the payload, and the digest is the file's.
func TestSign(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("pw")
	if _, err := keys.Generate(filepath.Join(dir, "site"), "ecdsa-p256", pw); err != nil {
		t.Fatal(err)
	}
	s, err := keys.LoadSigner(filepath.Join(dir, "site.key"), func(bool) ([]byte, error) { return pw, nil })
	if err != nil {
		t.Fatal(err)
	}
	st, _ := New(report(true), Options{})
	data, digest, err := Sign(context.Background(), st, s)
	if err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	v, err := s.Public.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(dsse.PAE(PayloadType, payload))); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if env.Signatures[0].KeyID != s.KeyID() || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("keyid %s digest %s", env.Signatures[0].KeyID, digest)
	}
	payload[10] ^= 1
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(dsse.PAE(PayloadType, payload))); err == nil {
		t.Fatal("a changed payload verified")
	}
}
