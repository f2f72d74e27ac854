//go:build cgo

package pkcs11key

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ThalesGroup/crypto11"

	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// token initialises a SoftHSM2 token and generates key pairs on it with
// crypto11, as an HSM administrator would: the private keys never exist
// outside the token.
func token(t *testing.T, gen func(*crypto11.Context)) *testkit.SoftHSM {
	t.Helper()
	h := testkit.NewSoftHSM(t, "airlock-test")
	c, err := crypto11.Configure(&crypto11.Config{Path: h.Module, TokenLabel: h.Token, Pin: h.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gen(c)
	return h
}

func genEC(t *testing.T, c *crypto11.Context, id, label string, curve elliptic.Curve) {
	t.Helper()
	if _, err := c.GenerateECDSAKeyPairWithLabel([]byte(id), []byte(label), curve); err != nil {
		t.Fatal(err)
	}
}

func TestSoftHSMSigns(t *testing.T) {
	h := token(t, func(c *crypto11.Context) {
		genEC(t, c, "1", "release", elliptic.P256())
		genEC(t, c, "2", "twin", elliptic.P256())
		genEC(t, c, "3", "twin", elliptic.P256())
		if _, err := c.GenerateRSAKeyPairWithLabel([]byte("4"), []byte("rsa"), 3072); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GenerateRSAKeyPairWithLabel([]byte("5"), []byte("rsa-small"), 2048); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	open := func(uri string, o Options) (*Signer, error) {
		u, err := ParseURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		return Open(u, o)
	}
	for _, c := range []struct{ object, alg string }{{"release", "ecdsa-p256"}, {"rsa", "rsa-3072"}} {
		s, err := open("pkcs11:token=airlock-test;object="+c.object, Options{ModulePath: h.Module, PIN: h.PIN})
		if err != nil {
			t.Fatalf("%s: %v", c.object, err)
		}
		if s.Public().Algorithm != c.alg {
			t.Errorf("%s: algorithm %s, want %s", c.object, s.Public().Algorithm, c.alg)
		}
		msg := []byte("DSSEv1 28 application/vnd.in-toto+json 2 {}")
		sig, err := s.Sign(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		// The signature verifies with the exported PEM, as a policy reads it.
		pemBytes, err := s.Public().PEM()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := keys.ParsePublic("exported.pub", pemBytes)
		if err != nil || pub.Fingerprint != s.KeyID() {
			t.Fatalf("exported key: %v %v", err, pub)
		}
		v, _ := pub.Verifier()
		if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
			t.Errorf("%s: signature does not verify: %v", c.object, err)
		}
		if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(append(msg, '!'))); err == nil {
			t.Errorf("%s: signature verifies another message", c.object)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// The PIN from a pin-source file; module from the URI.
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte(h.PIN+"\n"), 0o600)
	s, err := open("pkcs11:token=airlock-test;object=release;id=1?pin-source=file://"+pinFile+"&module-path="+h.Module, Options{PIN: "wrong"})
	if err != nil {
		t.Fatalf("pin-source: %v", err)
	}
	s.Close()

	for name, c := range map[string]struct {
		uri  string
		o    Options
		want error
	}{
		"wrong PIN":        {"pkcs11:token=airlock-test;object=release", Options{ModulePath: h.Module, PIN: "000000"}, ErrToken},
		"no PIN":           {"pkcs11:token=airlock-test;object=release", Options{ModulePath: h.Module}, ErrNoPIN},
		"no such token":    {"pkcs11:token=other;object=release", Options{ModulePath: h.Module, PIN: h.PIN}, ErrToken},
		"no such key":      {"pkcs11:token=airlock-test;object=missing", Options{ModulePath: h.Module, PIN: h.PIN}, ErrKey},
		"two keys match":   {"pkcs11:token=airlock-test;object=twin", Options{ModulePath: h.Module, PIN: h.PIN}, ErrKey},
		"weak RSA":         {"pkcs11:token=airlock-test;object=rsa-small", Options{ModulePath: h.Module, PIN: h.PIN}, keys.ErrUnsupportedKey},
		"no module":        {"pkcs11:token=airlock-test;object=release", Options{ModulePath: "/nonexistent/libpkcs11.so", PIN: h.PIN}, ErrModule},
		"missing pin file": {"pkcs11:token=airlock-test;object=release?pin-source=/nonexistent/pin", Options{ModulePath: h.Module}, ErrNoPIN},
	} {
		s, err := open(c.uri, c.o)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
			if s != nil {
				s.Close()
			}
			continue
		}
		var pe *Error
		var ke *keys.KeyError
		if !errors.As(err, &pe) && !errors.As(err, &ke) {
			t.Errorf("%s: error does not name the key: %v", name, err)
		}
	}
	// The twin selected by id as well is one key.
	s, err = open("pkcs11:token=airlock-test;object=twin;id=3", Options{ModulePath: h.Module, PIN: h.PIN})
	if err != nil {
		t.Fatalf("twin by id: %v", err)
	}
	s.Close()
}
