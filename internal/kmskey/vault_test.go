package kmskey

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/keys"
)

// transit is a stand-in for Vault's transit secrets engine on 127.0.0.1,
// speaking the two calls sigstore's hashivault provider makes: read a key's
// public half, sign a SHA-256 digest. (No Vault server is packaged for the
// test machines; the provider code under test is the real one.)
type transit struct {
	key   *ecdsa.PrivateKey
	signs *ecdsa.PrivateKey // the key that actually signs (a lying KMS when not key)
}

func (v *transit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/release":
		der, _ := x509.MarshalPKIXPublicKey(&v.key.PublicKey)
		p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"latest_version": 1, "keys": map[string]any{"1": map[string]any{"public_key": p, "name": "P-256"}},
		}})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/transit/sign/release/sha2-256":
		var body struct {
			Input     string `json:"input"`
			Prehashed bool   `json:"prehashed"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || !body.Prehashed {
			http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
			return
		}
		digest, err := base64.StdEncoding.DecodeString(body.Input)
		if err != nil || len(digest) != sha256.Size {
			http.Error(w, `{"errors":["bad input"]}`, http.StatusBadRequest)
			return
		}
		sig, _ := ecdsa.SignASN1(rand.Reader, v.signs, digest)
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig)}})
	default:
		http.Error(w, `{"errors":["not found"]}`, http.StatusNotFound)
	}
}

// TestHashiVaultKey signs through the real hashivault provider against a
// transit endpoint on loopback: the key id is the fingerprint of the
// Vault key's public half, the signature verifies with it, and a KMS that
// answers with another key's signature is refused.
func TestHashiVaultKey(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := &transit{key: key, signs: key}
	srv := httptest.NewServer(v)
	defer srv.Close()
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "test-token")
	ctx := context.Background()

	s, err := Open(ctx, "hashivault://release")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := keys.Fingerprint(&key.PublicKey)
	if s.KeyID() != want || s.Public().Algorithm != "ecdsa-p256" {
		t.Fatalf("key id %s (%s), want %s", s.KeyID(), s.Public().Algorithm, want)
	}
	msg := []byte("DSSEv1 28 application/vnd.in-toto+json 2 {}")
	sig, err := s.Sign(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(&key.PublicKey, d[:], sig) {
		t.Fatal("the signature does not verify with the Vault key")
	}

	v.signs = other
	if _, err := s.Sign(ctx, msg); !errors.Is(err, ErrKMS) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a signature by another key: %v, want ErrKMS naming the failed check", err)
	}
}

// TestHashiVaultWithoutAddress: without VAULT_ADDR the provider says so,
// before any request.
func TestHashiVaultWithoutAddress(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("BAO_ADDR", "")
	if _, err := Open(context.Background(), "hashivault://release"); !errors.Is(err, ErrKMS) || !strings.Contains(err.Error(), "VAULT_ADDR") {
		t.Fatalf("Open without VAULT_ADDR: %v", err)
	}
}
