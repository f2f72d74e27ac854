package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// DefaultAlgorithm is the algorithm Generate uses when none is named.
const DefaultAlgorithm = "ecdsa-p256"

// GenerateAlgorithms returns the algorithm names Generate accepts, default first.
func GenerateAlgorithms() []string {
	return []string{DefaultAlgorithm, "ed25519", "rsa-3072", "rsa-4096"}
}

// Generate creates a key pair and writes name+".key" (mode 0600, PEM
// "ENCRYPTED SIGSTORE PRIVATE KEY": PKCS#8 encrypted with scrypt and NaCl
// secretbox exactly as cosign generate-key-pair does) and name+".pub" (mode
// 0644, PEM "PUBLIC KEY"). Each file is written atomically; the public key is
// written last, so a .pub never exists without its .key. Existing files are
// never overwritten (ErrExists). alg is "" or "ecdsa-p256" (the default),
// "ed25519", "rsa-3072" or "rsa-4096". An empty password is refused
// (ErrBadPassword). Both files are read back and checked before Generate
// returns the public key.
func Generate(name, alg string, password []byte) (*PublicKey, error) {
	keyPath, pubPath := name+".key", name+".pub"
	if name == "" {
		return nil, keyErr(keyPath, ErrBadKey, "no output name given")
	}
	if len(password) == 0 {
		return nil, keyErr(keyPath, ErrBadPassword, "an empty password is not allowed; the private key is always encrypted")
	}
	if alg == "" {
		alg = DefaultAlgorithm
	}
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "ecdsa-p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "rsa-3072":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, keyErr(keyPath, ErrUnsupportedKey, "algorithm %q (choose one of %v)", alg, GenerateAlgorithms())
	}
	if err != nil {
		return nil, &KeyError{Source: keyPath, Err: err}
	}
	if err := refuseExisting(keyPath, pubPath); err != nil {
		return nil, err
	}

	pw := bytes.Clone(password)
	sealed, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, func(bool) ([]byte, error) { return pw, nil })
	if err != nil {
		return nil, &KeyError{Source: keyPath, Err: err}
	}
	privPEM := cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, sealed)
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, &KeyError{Source: pubPath, Err: err}
	}
	want, err := newPublic(pubPath, priv.Public())
	if err != nil {
		return nil, err
	}

	if err := writeNew(keyPath, privPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return nil, err
	}

	// Read back what was written: the public key parses to the same key and
	// the private key opens with the password.
	got, err := LoadPublic(pubPath)
	if err != nil {
		return nil, err
	}
	s, err := LoadSigner(keyPath, func(bool) ([]byte, error) { return pw, nil })
	if err != nil {
		return nil, err
	}
	if got.Fingerprint != want.Fingerprint || s.Public.Fingerprint != want.Fingerprint {
		return nil, keyErr(pubPath, ErrBadKey, "read back a different key than was written")
	}
	return got, nil
}

// refuseExisting fails with ErrExists if any of paths exists (even as a
// dangling symlink).
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return keyErr(p, ErrExists, "refusing to overwrite it; choose another path or move the old key away")
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return &KeyError{Source: p, Err: err}
		}
	}
	return nil
}

// writeNew atomically writes data to a path that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := atomicfile.Create(path, perm)
	if err != nil {
		return &KeyError{Source: path, Err: err}
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return &KeyError{Source: path, Err: err}
	}
	// Checked again right before the rename to keep the window small.
	if err := refuseExisting(path); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return &KeyError{Source: path, Err: err}
	}
	return nil
}
