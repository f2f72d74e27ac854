package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParsePublicFixtures runs every key file in testdata (made with openssl
// and cosign) through ParsePublic.
func TestParsePublicFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		alg  string // accepted with this algorithm
		err  error  // or rejected with this sentinel
	}{
		{file: "cosign-p256.pub", alg: "ecdsa-p256"},
		{file: "ecdsa-p384.pub", alg: "ecdsa-p384"},
		{file: "ecdsa-p521.pub", alg: "ecdsa-p521"},
		{file: "ed25519.pub", alg: "ed25519"},
		{file: "rsa-3072.pub", alg: "rsa-3072"},
		{file: "rsa-2048.pub", err: ErrUnsupportedKey},
		{file: "rsa-2048-pkcs1.pub", err: ErrUnsupportedKey},
		{file: "dsa-2048.pub", err: ErrUnsupportedKey},
		{file: "ecdsa-p224.pub", err: ErrUnsupportedKey},
		{file: "ecdsa-secp256k1.pub", err: ErrBadKey}, // Go's x509 does not know the curve
		{file: "x25519.pub", err: ErrUnsupportedKey},
		{file: "certificate.pem", err: ErrUnsupportedKey},
		{file: "ecdsa-p384-compressed.pub", err: ErrBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			data := readFixture(t, tc.file)
			k, err := ParsePublic(tc.file, data)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParsePublic: got %v, want %v", err, tc.err)
				}
				var ke *KeyError
				if !errors.As(err, &ke) || ke.Source != tc.file {
					t.Fatalf("error does not name the source: %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Algorithm != tc.alg || k.Source != tc.file {
				t.Fatalf("got %s from %s, want %s", k.Algorithm, k.Source, tc.alg)
			}
			block, _ := pem.Decode(data)
			sum := sha256.Sum256(block.Bytes)
			if want := "sha256:" + hex.EncodeToString(sum[:]); k.Fingerprint != want {
				t.Fatalf("fingerprint %s, want %s", k.Fingerprint, want)
			}
			if _, err := k.Verifier(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParsePublicMalformed(t *testing.T) {
	t.Parallel()
	good := readFixture(t, "cosign-p256.pub")
	block, _ := pem.Decode(good)
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Comment": "x"}, Bytes: block.Bytes})
	trailingDER := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: append(bytes.Clone(block.Bytes), 0)})
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	tests := []struct {
		name string
		data []byte
		err  error
	}{
		{"empty", nil, ErrBadKey},
		{"whitespace", []byte(" \n\t\n"), ErrBadKey},
		{"not pem", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host\n"), ErrBadKey},
		{"leading text", append([]byte("my key:\n"), good...), ErrBadKey},
		{"trailing garbage", append(bytes.Clone(good), "garbage"...), ErrBadKey},
		{"two blocks", append(bytes.Clone(good), good...), ErrBadKey},
		{"damaged first block then good", append([]byte("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"), good...), ErrBadKey},
		{"no footer", bytes.TrimSuffix(bytes.TrimSpace(good), []byte("-----END PUBLIC KEY-----")), ErrBadKey},
		{"bad base64", bytes.Replace(good, []byte("M"), []byte("*"), 1), ErrBadKey},
		{"headers", withHeader, ErrBadKey},
		{"der trailing byte", trailingDER, ErrBadKey},
		{"der garbage", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not der")}), ErrBadKey},
		{"private key", privPEM, ErrBadKey},
		{"other type", pem.EncodeToMemory(&pem.Block{Type: "SOMETHING", Bytes: block.Bytes}), ErrBadKey},
		{"too large", append(bytes.Clone(good), bytes.Repeat([]byte("\n"), MaxKeyFileSize)...), ErrBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePublic("k.pub", tc.data)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Source != "k.pub" {
				t.Fatalf("error does not name the source: %v", err)
			}
		})
	}
	// Surrounding whitespace and CRLF line ends are fine.
	crlf := bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n"))
	if _, err := ParsePublic("k.pub", append([]byte("\n  \n"), crlf...)); err != nil {
		t.Fatalf("CRLF key with blank lines: %v", err)
	}
}

func TestLoadPublic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := LoadPublic(filepath.Join(dir, "missing.pub"))
	var ke *KeyError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &ke) || !strings.HasSuffix(ke.Source, "missing.pub") {
		t.Fatalf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.pub")
	if err := os.WriteFile(big, bytes.Repeat([]byte("A"), MaxKeyFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublic(big); !errors.Is(err, ErrBadKey) {
		t.Fatalf("oversized file: %v", err)
	}
	k, err := LoadPublic(filepath.Join("testdata", "ed25519.pub"))
	if err != nil || k.Algorithm != "ed25519" {
		t.Fatalf("LoadPublic: %v %v", k, err)
	}
}

func TestFingerprintCanonical(t *testing.T) {
	t.Parallel()
	// The same key parsed twice has one fingerprint, and Fingerprint agrees
	// with ParsePublic.
	a, err := ParsePublic("a", readFixture(t, "ecdsa-p384.pub"))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := Fingerprint(a.Key)
	if err != nil || fp != a.Fingerprint {
		t.Fatalf("Fingerprint %s %v, want %s", fp, err, a.Fingerprint)
	}
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Fatalf("fingerprint shape %q", fp)
	}
	if _, err := Fingerprint(struct{}{}); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Fingerprint of a non-key: %v", err)
	}
}

func TestVerifierRefusesHandBuiltKeys(t *testing.T) {
	t.Parallel()
	k, err := ParsePublic("rsa", readFixture(t, "rsa-2048.pub"))
	if err == nil {
		t.Fatal("RSA 2048 accepted")
	}
	// Build the PublicKey by hand around the refused key.
	block, _ := pem.Decode(readFixture(t, "rsa-2048.pub"))
	raw, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k = &PublicKey{Key: raw, Source: "hand"}
	if _, err := k.Verifier(); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Verifier on RSA 2048: %v", err)
	}
	var nilKey *PublicKey
	if _, err := nilKey.Verifier(); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Verifier on nil: %v", err)
	}
}

func FuzzParsePublic(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil && !e.IsDir() {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublic("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrBadKey) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		if k.Fingerprint == "" || k.Algorithm == "" {
			t.Fatalf("accepted key without fingerprint or algorithm: %+v", k)
		}
		if _, err := k.Verifier(); err != nil {
			t.Fatalf("accepted key has no verifier: %v", err)
		}
	})
}
