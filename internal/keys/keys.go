package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
)

// MaxKeyFileSize bounds every key file airlock reads (64 KiB); a real key is
// well under 4 KiB.
const MaxKeyFileSize = 64 << 10

// MinRSABits is the smallest RSA modulus accepted (3072 bits).
const MinRSABits = 3072

// PEM block types airlock reads and writes.
const (
	pemPublic          = "PUBLIC KEY"
	pemPrivate         = "PRIVATE KEY"
	pemEncryptedSigstr = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign = "ENCRYPTED COSIGN PRIVATE KEY"
)

// PublicKey is a parsed, accepted public key.
type PublicKey struct {
	// Key is *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey.
	Key crypto.PublicKey
	// Fingerprint is "sha256:" + hex(sha256(DER SubjectPublicKeyInfo)): the key
	// id airlock shows and counts. It is computed from the re-encoded key, so
	// two encodings of the same key have the same fingerprint.
	Fingerprint string
	// Algorithm is "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519" or
	// "rsa-<bits>" such as "rsa-3072".
	Algorithm string
	// Source is the path the key was read from, for messages.
	Source string
}

// Fingerprint returns "sha256:" + the hex SHA-256 of the DER
// SubjectPublicKeyInfo of pub. It does not judge whether the key is accepted.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %T: %v", ErrUnsupportedKey, pub, err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// algorithm names an accepted key, or says why it is not accepted.
func algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "", fmt.Errorf("%w: empty ECDSA key", ErrBadKey)
		}
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256", nil
		case elliptic.P384():
			return "ecdsa-p384", nil
		case elliptic.P521():
			return "ecdsa-p521", nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s (use P-256, P-384 or P-521)", ErrUnsupportedKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", fmt.Errorf("%w: empty RSA key", ErrBadKey)
		}
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits (at least %d are needed; generate ecdsa-p256, ed25519 or rsa-3072)", ErrUnsupportedKey, bits, MinRSABits)
		}
		return fmt.Sprintf("rsa-%d", bits), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(k))
		}
		return "ed25519", nil
	case nil:
		return "", fmt.Errorf("%w: no key", ErrBadKey)
	}
	return "", fmt.Errorf("%w: %s keys are not accepted (use ECDSA P-256/P-384/P-521, Ed25519 or RSA of at least %d bits)", ErrUnsupportedKey, keyKind(pub), MinRSABits)
}

// keyKind describes a key type for messages, with a familiar name where
// there is one.
func keyKind(key any) string {
	switch t := fmt.Sprintf("%T", key); t {
	case "*dsa.PublicKey", "*dsa.PrivateKey":
		return "DSA"
	case "*ecdh.PublicKey", "*ecdh.PrivateKey":
		return "ECDH (X25519 or NIST ECDH)"
	default:
		return t
	}
}

// newPublic checks pub and builds a PublicKey for it.
func newPublic(source string, pub crypto.PublicKey) (*PublicKey, error) {
	alg, err := algorithm(pub)
	if err != nil {
		return nil, &KeyError{Source: source, Err: err}
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return nil, &KeyError{Source: source, Err: err}
	}
	return &PublicKey{Key: pub, Fingerprint: fp, Algorithm: alg, Source: source}, nil
}

// decodeOnePEM returns the single PEM block in data. Anything but optional
// whitespace around exactly one block is an error: text before it, a second
// block, trailing bytes or PEM headers.
func decodeOnePEM(source string, data []byte) (*pem.Block, error) {
	if len(data) > MaxKeyFileSize {
		return nil, keyErr(source, ErrBadKey, "larger than %d bytes", MaxKeyFileSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, keyErr(source, ErrBadKey, "empty file")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, keyErr(source, ErrBadKey, "does not start with a PEM block (-----BEGIN ...)")
	}
	if n := bytes.Count(trimmed, []byte("-----BEGIN ")); n != 1 {
		return nil, keyErr(source, ErrBadKey, "%d PEM blocks; put exactly one key in a file", n)
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, keyErr(source, ErrBadKey, "damaged PEM block (header, footer or base64)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, keyErr(source, ErrBadKey, "data after the PEM block")
	}
	if len(block.Headers) != 0 {
		return nil, keyErr(source, ErrBadKey, "PEM headers are not expected in a %s block", block.Type)
	}
	return block, nil
}

// ParsePublic parses one PEM "PUBLIC KEY" block (DER SubjectPublicKeyInfo),
// as written by cosign generate-key-pair and by airlock. Accepted: ECDSA
// P-256/P-384/P-521, Ed25519, RSA of at least 3072 bits. Anything else (RSA
// 2048, DSA, X25519, a certificate, a private key, text or blocks around the
// key, an empty file) is a *KeyError naming source and wrapping
// ErrUnsupportedKey or ErrBadKey.
func ParsePublic(source string, pemBytes []byte) (*PublicKey, error) {
	block, err := decodeOnePEM(source, pemBytes)
	if err != nil {
		return nil, err
	}
	switch {
	case block.Type == pemPublic:
	case block.Type == "CERTIFICATE":
		return nil, keyErr(source, ErrUnsupportedKey, "a certificate, not a public key; extract the key with: openssl x509 -in %s -pubkey -noout", source)
	case block.Type == "RSA PUBLIC KEY":
		return nil, keyErr(source, ErrUnsupportedKey, "a PKCS#1 RSA public key; convert it with: openssl rsa -RSAPublicKey_in -in %s -pubout", source)
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, keyErr(source, ErrBadKey, "a private key where a public key is expected; give the .pub file (and keep the private key secret)")
	default:
		return nil, keyErr(source, ErrBadKey, "PEM block %q, want %q", block.Type, pemPublic)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, keyErr(source, ErrBadKey, "%v", err)
	}
	return newPublic(source, pub)
}

// readBounded reads at most MaxKeyFileSize bytes of path.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &KeyError{Source: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, &KeyError{Source: path, Err: err}
	}
	if len(data) > MaxKeyFileSize {
		return nil, keyErr(path, ErrBadKey, "larger than %d bytes", MaxKeyFileSize)
	}
	return data, nil
}

// LoadPublic reads (at most MaxKeyFileSize bytes) and parses the public key
// file at path; see ParsePublic.
func LoadPublic(path string) (*PublicKey, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	return ParsePublic(path, data)
}

// Verifier returns a sigstore signature.Verifier whose algorithm is fixed by
// the key type alone, never by a signature: ECDSA (any accepted curve) ->
// ECDSA with SHA-256 over an ASN.1 DER signature, as cosign does (raw
// r||s is refused with ErrSignatureEncoding); RSA -> PKCS#1 v1.5 with SHA-256;
// Ed25519 -> pure Ed25519. The key is checked again, so a PublicKey built
// by hand cannot smuggle in a key ParsePublic would refuse.
func (k *PublicKey) Verifier() (signature.Verifier, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: no key", ErrBadKey)
	}
	if _, err := algorithm(k.Key); err != nil {
		return nil, &KeyError{Source: k.Source, Err: err}
	}
	var (
		v   signature.Verifier
		err error
	)
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		v, err = signature.LoadECDSAVerifier(pub, crypto.SHA256)
		if err == nil {
			v = derECDSAVerifier{v} // one encoding: ASN.1 DER
		}
	case *rsa.PublicKey:
		v, err = signature.LoadRSAPKCS1v15Verifier(pub, crypto.SHA256)
	case ed25519.PublicKey:
		v, err = signature.LoadED25519Verifier(pub)
	}
	if err != nil || v == nil {
		return nil, keyErr(k.Source, ErrUnsupportedKey, "no verifier: %v", err)
	}
	return v, nil
}
