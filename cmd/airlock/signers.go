package main

import (
	"bytes"
	"context"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
)

// keySigner adapts a key file's signer to bundle.Signer. KMS or HSM signers
// would be further implementations of bundle.Signer.
type keySigner struct{ s *keys.Signer }

func (k keySigner) KeyID() string { return k.s.Public.Fingerprint }

func (k keySigner) Sign(_ context.Context, m []byte) ([]byte, error) {
	return k.s.SignMessage(bytes.NewReader(m))
}

// loadSigners opens each private key, asking for its password when needed.
func loadSigners(e *env, paths []string) ([]bundle.Signer, error) {
	var out []bundle.Signer
	for _, p := range paths {
		s, err := keys.LoadSigner(p, func(confirm bool) ([]byte, error) { return readPassword(e, false, p) })
		if err != nil {
			return nil, err
		}
		out = append(out, keySigner{s})
	}
	return out, nil
}
