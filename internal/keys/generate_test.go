package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

func staticPass(pw string) PassFunc {
	return func(bool) ([]byte, error) { return []byte(pw), nil }
}

// TestGenerateSignVerify creates a key pair of every algorithm, reloads it
// and checks that a signature made with the private key verifies with the
// public key and that a changed message or signature does not.
func TestGenerateSignVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range append([]string{""}, GenerateAlgorithms()...) {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel()
			if alg == "rsa-4096" && testing.Short() {
				t.Skip("RSA 4096 generation is slow")
			}
			name := filepath.Join(t.TempDir(), "release")
			pub, err := Generate(name, alg, []byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			want := alg
			if want == "" {
				want = DefaultAlgorithm
			}
			if pub.Algorithm != want || pub.Source != name+".pub" {
				t.Fatalf("Generate returned %s from %s", pub.Algorithm, pub.Source)
			}
			for path, mode := range map[string]os.FileMode{name + ".key": 0o600, name + ".pub": 0o644} {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != mode {
					t.Fatalf("%s mode %v, want %v", path, st.Mode().Perm(), mode)
				}
			}
			keyPEM, _ := os.ReadFile(name + ".key")
			if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")) {
				t.Fatalf("private key PEM type: %.60q", keyPEM)
			}
			entries, _ := os.ReadDir(filepath.Dir(name))
			if len(entries) != 2 {
				t.Fatalf("leftovers next to the key pair: %v", entries)
			}

			s, err := LoadSigner(name+".key", staticPass("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if s.Public.Fingerprint != pub.Fingerprint || s.Public.Algorithm != want {
				t.Fatalf("signer key %s %s, want %s", s.Public.Fingerprint, s.Public.Algorithm, pub.Fingerprint)
			}
			msg := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
			sig, err := s.SignMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadPublic(name + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			v, err := loaded.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
				t.Fatalf("own signature does not verify: %v", err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(append(msg, ' '))); err == nil {
				t.Fatal("signature verifies over a changed message")
			}
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			if err := v.VerifySignature(bytes.NewReader(bad), bytes.NewReader(msg)); err == nil {
				t.Fatal("changed signature verifies")
			}
		})
	}
}

func TestSignatureFromOtherKeyFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Generate(filepath.Join(dir, "a"), "ed25519", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(filepath.Join(dir, "b"), "ed25519", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	sb, err := LoadSigner(filepath.Join(dir, "b.key"), staticPass("pw"))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := sb.SignMessage(strings.NewReader("m"))
	v, _ := a.Verifier()
	if err := v.VerifySignature(bytes.NewReader(sig), strings.NewReader("m")); err == nil {
		t.Fatal("b's signature verifies with a's key")
	}
}

func TestGenerateRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "taken")
	if err := os.WriteFile(existing+".pub", []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.key")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, out, alg, password string
		err                      error
	}{
		{"existing pub", existing, "", "pw", ErrExists},
		{"dangling symlink", filepath.Join(dir, "dangling"), "", "pw", ErrExists},
		{"empty password", filepath.Join(dir, "x1"), "", "", ErrBadPassword},
		{"rsa 2048", filepath.Join(dir, "x2"), "rsa-2048", "pw", ErrUnsupportedKey},
		{"unknown", filepath.Join(dir, "x3"), "dsa", "pw", ErrUnsupportedKey},
		{"no name", "", "", "pw", ErrBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Generate(tc.out, tc.alg, []byte(tc.password)); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
	if b, _ := os.ReadFile(existing + ".pub"); string(b) != "keep me" {
		t.Fatalf("existing file changed: %q", b)
	}
	if _, err := os.Lstat(existing + ".key"); err == nil {
		t.Fatal("a .key was written although the .pub existed")
	}
	for _, n := range []string{"x1", "x2", "x3"} {
		if _, err := os.Lstat(filepath.Join(dir, n+".key")); err == nil {
			t.Fatalf("%s.key written by a refused Generate", n)
		}
	}
}

func TestLoadSignerErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "k")
	if _, err := Generate(name, "", []byte("right")); err != nil {
		t.Fatal(err)
	}
	write := func(file string, data []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, _ := os.ReadFile(name + ".key")
	block, _ := pem.Decode(keyPEM)

	// Authentic ciphertext that decrypts to something that is not a key.
	junk, err := encrypted.Encrypt([]byte("not pkcs8"), []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	// An envelope asking for an absurd amount of scrypt memory.
	greedy := bytes.Replace(block.Bytes, []byte(`"N":65536`), []byte(`"N":1073741824`), 1)
	if bytes.Equal(greedy, block.Bytes) {
		t.Fatal("fixture: scrypt parameters not found in the envelope")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaSmallDER, _ := x509.MarshalPKCS8PrivateKey(rsaSmall)

	tests := []struct {
		name string
		path string
		pass PassFunc
		err  error
	}{
		{"wrong password", name + ".key", staticPass("wrong"), ErrBadPassword},
		{"empty password", name + ".key", staticPass(""), ErrBadPassword},
		{"nil pass func", name + ".key", nil, ErrBadPassword},
		{"public key", name + ".pub", staticPass("right"), ErrBadKey},
		{"cosign type, junk plaintext", write("junk.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED COSIGN PRIVATE KEY", Bytes: junk})), staticPass("right"), ErrBadKey},
		{"greedy scrypt", write("greedy.key", pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: greedy})), staticPass("right"), ErrUnsupportedKey},
		{"not json", write("notjson.key", pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: []byte("xx")})), staticPass("right"), ErrBadKey},
		{"sec1", write("sec1.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})), nil, ErrUnsupportedKey},
		{"rsa 2048 pkcs8", write("rsa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaSmallDER})), nil, ErrUnsupportedKey},
		{"trailing block", write("two.key", append(bytes.Clone(keyPEM), keyPEM...)), staticPass("right"), ErrBadKey},
		{"missing", filepath.Join(dir, "missing.key"), nil, os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadSigner(tc.path, tc.pass)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Source != tc.path {
				t.Fatalf("error does not name %s: %v", tc.path, err)
			}
		})
	}

	passErr := errors.New("no terminal")
	if _, err := LoadSigner(name+".key", func(bool) ([]byte, error) { return nil, passErr }); !errors.Is(err, passErr) {
		t.Fatalf("PassFunc error not passed on: %v", err)
	}
}

func TestLoadSignerUnencryptedPKCS8(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	p := filepath.Join(t.TempDir(), "plain.key")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Public.Algorithm != "ecdsa-p384" {
		t.Fatalf("algorithm %s", s.Public.Algorithm)
	}
	sig, err := s.SignMessage(strings.NewReader("m"))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := s.Public.Verifier()
	if err := v.VerifySignature(bytes.NewReader(sig), strings.NewReader("m")); err != nil {
		t.Fatal(err)
	}
}
