package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/attest"
	"github.com/airlock-dev/airlock/bundle"
)

// TestVerifyAttestCosign: `airlock verify --attest site.key -o vsa.json`
// writes a record that the real cosign verify-blob-attestation accepts
// against the bundle root (as a blob, index.json, and as a digest), and
// refuses for another blob or another key; a rejected bundle gets a
// FAILED record.
func TestVerifyAttestCosign(t *testing.T) {
	c := newCosign(t) // not parallel: testkit.NewCosign sets PATH
	dir, b, pol, env := signedRelease(t)
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "site")); code != 0 {
		t.Fatalf("key generate site: %s", stderr)
	}
	site := filepath.Join(dir, "site.key")
	vsa := filepath.Join(dir, "vsa.json")

	// One signature of a 2-of-3 policy: rejected, and recorded as FAILED.
	code, _, stderr := runCLI(t, env, "verify", b, "--policy", pol, "--attest", site, "-o", vsa)
	if code != exitRejected || !strings.Contains(stderr, "FAILED") {
		t.Fatalf("rejected bundle: exit %d: %s", code, stderr)
	}
	st := readRecord(t, vsa)
	if st.Predicate.VerificationResult != attest.Failed || len(st.Predicate.VerifiedLevels) != 1 || st.Predicate.VerifiedLevels[0] != attest.Failed {
		t.Fatalf("FAILED record: %+v", st.Predicate)
	}

	if code, _, stderr := runCLI(t, env, "sign", b, "--key", filepath.Join(dir, "security.key")); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	code, stdout, stderr := runCLI(t, env, "verify", b, "--policy", pol, "--attest", site, "-o", vsa)
	if code != exitOK {
		t.Fatalf("verify --attest: exit %d\n%s%s", code, stdout, stderr)
	}
	head, err := bundle.ReadHeadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	st = readRecord(t, vsa)
	p := st.Predicate
	root := strings.TrimPrefix(head.Manifest.Root.Digest, "sha256:")
	polBytes, _ := os.ReadFile(pol)
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != attest.PredicateType ||
		len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != root ||
		p.VerificationResult != attest.Passed || p.Verifier.ID != attest.DefaultVerifierID || p.Verifier.Version["airlock"] != version() ||
		p.Policy.Digest["sha256"] != itgDigest(polBytes)[len("sha256:"):] || !strings.HasSuffix(p.Policy.URI, "/policy.yaml") ||
		len(p.InputAttestations) != 1 || p.TimeVerified.IsZero() || !strings.HasPrefix(p.ResourceURI, "file:///") {
		t.Fatalf("record: %+v", st)
	}
	for _, want := range []string{"AIRLOCK_THRESHOLD", "AIRLOCK_EXPIRES", "AIRLOCK_INTEGRITY"} {
		if !strings.Contains(strings.Join(p.VerifiedLevels, " "), want) {
			t.Errorf("verifiedLevels %v lack %s", p.VerifiedLevels, want)
		}
	}

	// The real cosign checks the envelope with the site's public key.
	for _, f := range []string{"site.pub", "vsa.json"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "index.json"), head.IndexBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"verify-blob-attestation", "--key", "site.pub", "--type", attest.PredicateType, "--insecure-ignore-tlog", "--signature", "vsa.json"}
	out := c.MustRun(t, append(base, "index.json")...)
	t.Logf("cosign (blob): %s", strings.TrimSpace(out))
	c.MustRun(t, append(base, "--digest", root, "--digestAlg", "sha256")...)

	// Another blob, another key, another predicate type: refused.
	os.WriteFile(filepath.Join(c.Dir, "other.json"), append(head.IndexBytes, ' '), 0o644)
	if out, err := c.Run(append(base, "other.json")...); err == nil {
		t.Fatalf("cosign accepted the record for another blob:\n%s", out)
	}
	if out, err := c.Run("verify-blob-attestation", "--key", "cosign.pub", "--type", attest.PredicateType, "--insecure-ignore-tlog", "--signature", "vsa.json", "index.json"); err == nil {
		t.Fatalf("cosign accepted the record with another key:\n%s", out)
	}
	if out, err := c.Run("verify-blob-attestation", "--key", "site.pub", "--type", "slsaprovenance", "--insecure-ignore-tlog", "--signature", "vsa.json", "index.json"); err == nil {
		t.Fatalf("cosign accepted the record as SLSA provenance:\n%s", out)
	}
}

func TestAttestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"verify", "x.airlock", "--policy", "p.yaml", "--attest", "site.key"},
		{"verify", "x.airlock", "--policy", "p.yaml", "-o", "vsa.json"},
	} {
		if code, _, stderr := runCLI(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
}

// readRecord decodes the statement inside a record's DSSE envelope.
func readRecord(t *testing.T, path string) attest.Statement {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env attest.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	if env.PayloadType != attest.PayloadType || len(env.Signatures) != 1 {
		t.Fatalf("envelope: %+v", env)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st attest.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
