//go:build cgo

package pkcs11key

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/airlock-dev/airlock/internal/keys"
)

// DefaultModulePath is the PKCS#11 library loaded when neither the URI's
// module-path nor Options.ModulePath names one: SoftHSM2 as Debian and
// Ubuntu install it (package softhsm2).
const DefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// maxPINFile bounds a pin-source file.
const maxPINFile = 4096

// Options says how to reach the token. The zero value loads
// DefaultModulePath and expects the URI to name a pin-source.
type Options struct {
	// ModulePath is the PKCS#11 library when the URI has no module-path;
	// empty means DefaultModulePath.
	ModulePath string
	// PIN is the user PIN when the URI has no pin-source.
	PIN string
}

// Signer signs with a private key held in a PKCS#11 token. It is a
// bundle.Signer; Close logs out and unloads the module.
type Signer struct {
	uri    string
	signer crypto11.Signer
	ctx    *crypto11.Context
	public *keys.PublicKey
	hash   crypto.Hash
}

// Open loads the module, logs in to the token the URI selects and finds
// exactly one key pair matching its object and id. The key must be ECDSA
// (P-256, P-384, P-521) or RSA of at least keys.MinRSABits: signatures are
// ECDSA with SHA-256 (ASN.1 DER) or RSA PKCS#1 v1.5 with SHA-256, the
// choices keys.PublicKey.Verifier makes for the same public key, so a
// token's signature verifies wherever a key file's does.
func Open(u *URI, o Options) (*Signer, error) {
	name := u.String()
	module := u.ModulePath
	if module == "" {
		module = o.ModulePath
	}
	if module == "" {
		module = DefaultModulePath
	}
	if st, err := os.Stat(module); err != nil || !st.Mode().IsRegular() {
		return nil, wrap(name, ErrModule, "%s is not a readable library file (install the token's PKCS#11 module, or name it with module-path= in the URI)", module)
	}
	pin := o.PIN
	if u.PINSource != "" {
		p, err := readPIN(u.PINSource)
		if err != nil {
			return nil, wrap(name, ErrNoPIN, "pin-source %s: %v", u.PINSource, err)
		}
		pin = p
	}
	if pin == "" {
		return nil, wrap(name, ErrNoPIN, "give the token's user PIN")
	}
	cfg := &crypto11.Config{Path: module, TokenLabel: u.Token, TokenSerial: u.Serial, SlotNumber: u.SlotID, Pin: pin}
	c11, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, configureError(name, module, err)
	}
	s, err := find(c11, u)
	if err != nil {
		c11.Close()
		return nil, wrap(name, ErrKey, "%v", err)
	}
	pub, err := keys.NewPublicKey(name, s.Public())
	if err != nil {
		c11.Close()
		return nil, err
	}
	switch pub.Key.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
	default:
		c11.Close()
		return nil, wrap(name, ErrKey, "a %s key; airlock signs with ECDSA or RSA keys in a token", pub.Algorithm)
	}
	return &Signer{uri: name, signer: s, ctx: c11, public: pub, hash: crypto.SHA256}, nil
}

// find returns the one key pair the URI selects.
func find(c11 *crypto11.Context, u *URI) (crypto11.Signer, error) {
	found, err := c11.FindKeyPairs(u.ID, []byte(u.Object))
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no key pair with %s on the token (a private key needs a CKA_ID and a public key with the same CKA_ID)", selection(u))
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d key pairs match %s; add id= or object= so the URI names one", len(found), selection(u))
}

func selection(u *URI) string {
	var parts []string
	if u.Object != "" {
		parts = append(parts, fmt.Sprintf("object=%q", u.Object))
	}
	if len(u.ID) != 0 {
		parts = append(parts, fmt.Sprintf("id=%x", u.ID))
	}
	return strings.Join(parts, " and ")
}

// configureError says which step of reaching the token failed.
func configureError(name, module string, err error) error {
	var p11 pkcs11.Error
	switch {
	case errors.As(err, &p11) && (p11 == pkcs11.CKR_PIN_INCORRECT || p11 == pkcs11.CKR_PIN_INVALID || p11 == pkcs11.CKR_PIN_LEN_RANGE):
		return wrap(name, ErrToken, "the token refused the PIN (%v)", err)
	case errors.As(err, &p11) && p11 == pkcs11.CKR_PIN_LOCKED:
		return wrap(name, ErrToken, "the PIN is locked (%v)", err)
	case strings.Contains(err.Error(), "could not find PKCS#11 token"):
		return wrap(name, ErrToken, "no such token in module %s (list tokens with: pkcs11-tool --module %s --list-slots)", module, module)
	case strings.Contains(err.Error(), "failed to create module context"):
		return wrap(name, ErrModule, "loading %s: %v", module, err)
	}
	return wrap(name, ErrToken, "%v", err)
}

// readPIN reads a pin-source file: the PIN is its content up to the first
// line break.
func readPIN(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxPINFile {
		return "", fmt.Errorf("larger than %d bytes", maxPINFile)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return string(bytes.TrimSuffix(line, []byte("\r"))), nil
}

// KeyID returns the fingerprint of the token's public key ("sha256:<hex>").
func (s *Signer) KeyID() string { return s.public.Fingerprint }

// Public returns the public half of the token's key; its Source is the URI.
func (s *Signer) Public() *keys.PublicKey { return s.public }

// Sign hashes message with SHA-256 and has the token sign the digest, then
// checks the signature with the public key before returning it, so a token
// that signs with another key (or returns garbage) is caught here.
func (s *Signer) Sign(ctx context.Context, message []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(message)
	sig, err := s.signer.Sign(rand.Reader, digest[:], s.hash)
	if err != nil {
		return nil, wrap(s.uri, ErrKey, "signing: %v", err)
	}
	v, err := s.public.Verifier()
	if err != nil {
		return nil, err
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message)); err != nil {
		return nil, wrap(s.uri, ErrKey, "the token's signature does not verify with its own public key: %v", err)
	}
	return sig, nil
}

// Close releases the token session and unloads the module when no other
// Signer uses it.
func (s *Signer) Close() error { return s.ctx.Close() }
