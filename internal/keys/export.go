package keys

import (
	"crypto"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// NewPublicKey checks pub (the same rules as ParsePublic: ECDSA
// P-256/P-384/P-521, Ed25519, RSA of at least MinRSABits) and builds a
// PublicKey for it; source names where the key came from (a URI for a key
// held in hardware or a KMS), for messages.
func NewPublicKey(source string, pub crypto.PublicKey) (*PublicKey, error) {
	return newPublic(source, pub)
}

// PEM returns the key as one PEM "PUBLIC KEY" block (DER
// SubjectPublicKeyInfo), the form ParsePublic, policies and cosign read.
func (k *PublicKey) PEM() ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: no key", ErrBadKey)
	}
	if _, err := algorithm(k.Key); err != nil {
		return nil, &KeyError{Source: k.Source, Err: err}
	}
	out, err := cryptoutils.MarshalPublicKeyToPEM(k.Key)
	if err != nil {
		return nil, keyErr(k.Source, ErrUnsupportedKey, "%v", err)
	}
	return out, nil
}

// WritePublic writes k as a PEM public key file at path, atomically and
// only if path does not exist yet (ErrExists otherwise), then reads it back
// and checks the fingerprint.
func WritePublic(path string, k *PublicKey) (*PublicKey, error) {
	data, err := k.PEM()
	if err != nil {
		return nil, err
	}
	if err := refuseExisting(path); err != nil {
		return nil, err
	}
	if err := writeNew(path, data, 0o644); err != nil {
		return nil, err
	}
	got, err := LoadPublic(path)
	if err != nil {
		return nil, err
	}
	if got.Fingerprint != k.Fingerprint {
		return nil, keyErr(path, ErrBadKey, "read back a different key than was written")
	}
	return got, nil
}
