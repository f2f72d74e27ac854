package keys

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestCosignMadeKeys: a key pair from `cosign generate-key-pair` loads in
// airlock, and what airlock signs with it verifies with `cosign verify-blob`.
func TestCosignMadeKeys(t *testing.T) {
	bin := testkit.NewCosign(t).Bin
	dir := t.TempDir()
	if _, err := (&testkit.Cosign{Bin: bin, Dir: dir, Password: "cosign pw"}).Run("generate-key-pair"); err != nil {
		t.Log(err)
		t.Fatal("cosign generate-key-pair failed")
	}
	s, err := LoadSigner(filepath.Join(dir, "cosign.key"), staticPass("cosign pw"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublic(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if pub.Fingerprint != s.Public.Fingerprint || pub.Algorithm != "ecdsa-p256" {
		t.Fatalf("cosign.pub %s %s, signer %s", pub.Fingerprint, pub.Algorithm, s.Public.Fingerprint)
	}
	if _, err := LoadSigner(filepath.Join(dir, "cosign.key"), staticPass("wrong")); err == nil {
		t.Fatal("wrong password accepted for cosign.key")
	}
	blob := writeBlob(t, dir)
	sig, err := s.SignMessage(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "blob.sig")
	if err := os.WriteFile(sigFile, []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&testkit.Cosign{Bin: bin, Dir: dir, Password: ""}).Run("verify-blob", "--key", "cosign.pub", "--signature", "blob.sig", "--insecure-ignore-tlog=true", "blob"); err != nil {
		t.Log(err)
		t.Fatal("cosign verify-blob rejected airlock's signature made with cosign.key")
	}
	// A changed blob must not verify, or the check above proves nothing.
	if err := os.WriteFile(filepath.Join(dir, "blob"), append(blob, '!'), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&testkit.Cosign{Bin: bin, Dir: dir, Password: ""}).Run("verify-blob", "--key", "cosign.pub", "--signature", "blob.sig", "--insecure-ignore-tlog=true", "blob"); err == nil {
		t.Fatal("cosign verify-blob accepted a changed blob")
	}
}

// TestAirlockMadeKeysInCosign: a key pair from keys.Generate signs with
// `cosign sign-blob`, and the signature verifies in airlock; airlock's own
// signature verifies with `cosign verify-blob`.
func TestAirlockMadeKeysInCosign(t *testing.T) {
	bin := testkit.NewCosign(t).Bin
	for _, alg := range []string{"ecdsa-p256", "ed25519", "rsa-3072"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			const password = "airlock pw"
			pub, err := Generate(filepath.Join(dir, "release"), alg, []byte(password))
			if err != nil {
				t.Fatal(err)
			}
			blob := writeBlob(t, dir)
			v, err := pub.Verifier()
			if err != nil {
				t.Fatal(err)
			}

			// airlock signs, cosign verifies.
			s, err := LoadSigner(filepath.Join(dir, "release.key"), staticPass(password))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.SignMessage(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "airlock.sig"), []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := (&testkit.Cosign{Bin: bin, Dir: dir, Password: ""}).Run("verify-blob", "--key", "release.pub", "--signature", "airlock.sig", "--insecure-ignore-tlog=true", "blob"); err != nil {
				t.Log(err)
				t.Fatal("cosign verify-blob rejected airlock's signature")
			}

			// cosign signs, airlock verifies.
			out, err := (&testkit.Cosign{Bin: bin, Dir: dir, Password: password}).Run("sign-blob", "--key", "release.key", "--tlog-upload=false", "--output-signature", "cosign.sig", "blob")
			ok := err == nil
			if !ok {
				if alg == "ed25519" && strings.Contains(out, "requested hash function #0 is unavailable") {
					// cosign v2.6.5 panics when signing with an Ed25519 key and
					// no transparency log (fixed upstream in sigstore/cosign#4880);
					// docs/commands/key.md says so. Verification above works.
					t.Logf("known cosign bug: sign-blob cannot use Ed25519 keys with --tlog-upload=false")
					return
				}
				t.Fatal("cosign sign-blob failed with an airlock key")
			}
			b64, err := os.ReadFile(filepath.Join(dir, "cosign.sig"))
			if err != nil {
				t.Fatal(err)
			}
			cosignSig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b64)))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(bytes.NewReader(cosignSig), bytes.NewReader(blob)); err != nil {
				t.Fatalf("cosign's signature does not verify in airlock: %v", err)
			}
			if err := v.VerifySignature(bytes.NewReader(cosignSig), bytes.NewReader(append(blob, '!'))); err == nil {
				t.Fatal("cosign's signature verifies over a changed blob")
			}
		})
	}
}

func writeBlob(t *testing.T, dir string) []byte {
	t.Helper()
	blob := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return blob
}
