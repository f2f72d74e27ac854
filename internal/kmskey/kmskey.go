// Package kmskey signs with keys held in a cloud or Vault KMS, through
// sigstore's KMS providers: awskms://, gcpkms://, azurekms:// and
// hashivault:// URIs, as cosign accepts them. A Signer implements
// bundle.Signer; every signature is checked against the key's own public
// key before it is returned. Credentials come from each provider's usual
// environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*, VAULT_*).
package kmskey

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	// The four providers register themselves with kms.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/airlock-dev/airlock/internal/keys"
)

// ErrKMS reports a KMS key that could not be used: an unknown scheme, a
// provider that refused, a public key airlock does not accept, or a
// signature that does not verify with the key's own public key.
var ErrKMS = errors.New("KMS key")

// Schemes are the URI schemes of the linked providers, e.g. "awskms://".
func Schemes() []string {
	return kms.SupportedProviders()
}

// IsURI reports whether ref names a KMS key of a linked provider.
func IsURI(ref string) bool {
	for _, s := range Schemes() {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// Signer is a KMS key.
type Signer struct {
	uri    string
	sv     signature.SignerVerifier
	public *keys.PublicKey
}

// Open connects to the KMS key at uri with SHA-256 (the hash airlock's
// signatures use for ECDSA and RSA keys).
func Open(ctx context.Context, uri string) (*Signer, error) {
	if !IsURI(uri) {
		return nil, fmt.Errorf("%w %s: not a URI of a linked provider (%s)", ErrKMS, uri, strings.Join(Schemes(), ", "))
	}
	sv, err := kms.Get(ctx, uri, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKMS, uri, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w %s: reading its public key: %v", ErrKMS, uri, err)
	}
	pk, err := keys.NewPublicKey(uri, pub)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrKMS, uri, err)
	}
	return &Signer{uri: uri, sv: sv, public: pk}, nil
}

// KeyID returns the fingerprint of the KMS key's public key.
func (s *Signer) KeyID() string { return s.public.Fingerprint }

// Public returns the public half of the key; its Source is the URI.
func (s *Signer) Public() *keys.PublicKey { return s.public }

// Sign signs message in the KMS and checks the signature with the key's
// public key, as a verifier of the bundle will.
func (s *Signer) Sign(ctx context.Context, message []byte) ([]byte, error) {
	sig, err := s.sv.SignMessage(bytes.NewReader(message), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w %s: signing: %v", ErrKMS, s.uri, err)
	}
	v, err := s.public.Verifier()
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKMS, s.uri, err)
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message)); err != nil {
		return nil, fmt.Errorf("%w %s: the KMS signature does not verify with the key's public key: %v", ErrKMS, s.uri, err)
	}
	return sig, nil
}
