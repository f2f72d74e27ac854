package benchmark

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// benchPassword encrypts the generated signing keys. It is passed to airlock
// in AIRLOCK_PASSWORD.
const benchPassword = "AIRLOCK_PASSWORD=airlock-benchmark-password"

// signingKeyNames are the encrypted keys signingKeys generates.
var signingKeyNames = []string{"k1", "k2", "k3"}

// plainKeyName is the unencrypted key: signing with it costs no scrypt, so
// comparing it with an encrypted key separates key loading from the rest.
const plainKeyName = "plain"

// policyFile is the trust policy signingKeys writes: bundles of any name
// need a signature by k1.
const policyFile = "policy.yaml"

const benchPolicy = `keys:
  k1: { publicKey: k1.pub }
bundles:
  - match: "*"
    signers: [k1]
    threshold: 1
`

// signingKeys makes dir/k1, k2 and k3 (.key and .pub) with
// `airlock key generate`, an unencrypted ECDSA P-256 key dir/plain.key in
// PKCS#8 (which airlock sign reads without a password), and dir/policy.yaml
// trusting k1. It returns dir.
func signingKeys(dir, bin string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, name := range signingKeyNames {
		if _, err := run(context.Background(), dir, []string{benchPassword}, bin, "key", "generate", "--output", filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, plainKeyName+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, policyFile), []byte(benchPolicy), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// keyPath returns the private key file of name in the key directory.
func keyPath(dir, name string) string { return filepath.Join(dir, name+".key") }

// packTo packs the release in src into out with airlock pack -q and extra
// flags, reproducibly and valid until benchExpires.
func packTo(ctx context.Context, bin, src, out string, extra ...string) (measurement, error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return measurement{}, err
	}
	args := append([]string{"pack", "-q", "--expires", benchExpires, "-f", filepath.Join(src, "airlock.yaml"), "-o", out}, extra...)
	m, err := run(ctx, src, []string{sourceDateEpoch}, bin, args...)
	if err != nil {
		return m, fmt.Errorf("packing %s: %w", src, err)
	}
	return m, nil
}
