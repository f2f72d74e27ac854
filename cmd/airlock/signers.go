package main

import (
	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
)

// loadSigners opens each private key, asking for its password when needed.
func loadSigners(e *env, paths []string) ([]bundle.Signer, error) {
	var out []bundle.Signer
	for _, p := range paths {
		s, err := keys.LoadSigner(p, func(confirm bool) ([]byte, error) { return readPassword(e, false, p) })
		if err != nil {
			return nil, err
		}
		out = append(out, s) // *keys.Signer is a bundle.Signer; KMS or HSM signers would be others
	}
	return out, nil
}
