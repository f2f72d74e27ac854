package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PassFunc returns the password of a private key; confirm is true when a key
// is being created and the password should be asked twice. It has the same
// shape as sigstore's cryptoutils.PassFunc.
type PassFunc = cryptoutils.PassFunc

// Signer is a loaded private key ready to sign.
type Signer struct {
	// Signer signs the exact message bytes given to SignMessage: ECDSA with
	// SHA-256 (ASN.1 DER signatures), RSA PKCS#1 v1.5 with SHA-256, or pure
	// Ed25519, the same choices Verifier makes for the public key.
	signature.Signer
	// Public is the matching public key; its Source is the private key's path.
	Public *PublicKey
}

// KeyID returns the fingerprint of the public key ("sha256:<hex>"), the key
// id bundle signatures carry. With Sign it makes *Signer a bundle.Signer.
func (s *Signer) KeyID() string { return s.Public.Fingerprint }

// Sign signs message exactly as given.
func (s *Signer) Sign(_ context.Context, message []byte) ([]byte, error) {
	return s.SignMessage(bytes.NewReader(message))
}

// InProcess reports that the key signs in this process (no token or KMS
// sees the request), so bundle.Sign may sign while it still checks the head.
func (s *Signer) InProcess() bool { return true }

// LoadSigner reads a private key file: "ENCRYPTED SIGSTORE PRIVATE KEY" or
// "ENCRYPTED COSIGN PRIVATE KEY" (cosign's scrypt + NaCl secretbox format) or
// an unencrypted PKCS#8 "PRIVATE KEY". pass is asked for the password of an
// encrypted key (confirm=false); it may be nil for an unencrypted key. A
// wrong password is a *KeyError naming path and wrapping ErrBadPassword. The
// key must be of a type ParsePublic accepts.
func LoadSigner(path string, pass PassFunc) (*Signer, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	block, err := decodeOnePEM(path, data)
	if err != nil {
		return nil, err
	}
	var der []byte
	switch block.Type {
	case pemPrivate:
		der = block.Bytes
	case pemEncryptedSigstr, pemEncryptedCosign:
		if der, err = decrypt(path, block.Bytes, pass); err != nil {
			return nil, err
		}
	case pemPublic:
		return nil, keyErr(path, ErrBadKey, "a public key where a private key is expected; give the .key file")
	case "EC PRIVATE KEY", "RSA PRIVATE KEY":
		return nil, keyErr(path, ErrUnsupportedKey, "a %q block; airlock reads cosign's encrypted format or unencrypted PKCS#8 (convert it with: cosign import-key-pair --key %s)", block.Type, path)
	case "ENCRYPTED PRIVATE KEY":
		return nil, keyErr(path, ErrUnsupportedKey, "an encrypted PKCS#8 key; airlock reads cosign's encrypted format (convert it with: openssl pkcs8 -in %s -out plain.pem && cosign import-key-pair --key plain.pem, then delete plain.pem)", path)
	default:
		return nil, keyErr(path, ErrBadKey, "PEM block %q, want %q", block.Type, pemEncryptedSigstr)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, keyErr(path, ErrBadKey, "%v", err)
	}
	return newSigner(path, priv)
}

// newSigner wraps an accepted private key in the signer for its type.
func newSigner(source string, priv crypto.PrivateKey) (*Signer, error) {
	var (
		pubKey crypto.PublicKey
		s      signature.Signer
		err    error
	)
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		pubKey = k.Public()
		s, err = signature.LoadECDSASigner(k, crypto.SHA256)
	case *rsa.PrivateKey:
		pubKey = k.Public()
		s, err = signature.LoadRSAPKCS1v15Signer(k, crypto.SHA256)
	case ed25519.PrivateKey:
		pubKey = k.Public()
		s, err = signature.LoadED25519Signer(k)
	default:
		return nil, keyErr(source, ErrUnsupportedKey, "%s private keys are not accepted", keyKind(priv))
	}
	if err != nil {
		return nil, keyErr(source, ErrBadKey, "%v", err)
	}
	pub, err := newPublic(source, pubKey)
	if err != nil {
		return nil, err
	}
	return &Signer{Signer: s, Public: pub}, nil
}

// sealedKey is the JSON envelope of cosign's encrypted key format, checked
// before decryption so that a failure to decrypt can only mean a wrong
// password (or a ciphertext altered after it was written).
type sealedKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N, R, P int
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// decrypt opens cosign's encrypted private key format.
func decrypt(path string, sealed []byte, pass PassFunc) ([]byte, error) {
	var env sealedKey
	if err := json.Unmarshal(sealed, &env); err != nil {
		return nil, keyErr(path, ErrBadKey, "encrypted key is not cosign's JSON envelope: %v", err)
	}
	switch {
	case env.KDF.Name != "scrypt":
		return nil, keyErr(path, ErrUnsupportedKey, "key derivation %q, want scrypt", env.KDF.Name)
	case env.Cipher.Name != "nacl/secretbox":
		return nil, keyErr(path, ErrUnsupportedKey, "cipher %q, want nacl/secretbox", env.Cipher.Name)
	case len(env.Cipher.Nonce) != 24 || len(env.KDF.Salt) == 0 || len(env.Ciphertext) == 0:
		return nil, keyErr(path, ErrBadKey, "encrypted key envelope lacks a nonce, salt or ciphertext")
	case !knownScrypt(env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P):
		return nil, keyErr(path, ErrUnsupportedKey, "scrypt parameters N=%d r=%d p=%d are not one of cosign's", env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P)
	}
	if pass == nil {
		return nil, keyErr(path, ErrBadPassword, "the key is encrypted and no password was given")
	}
	pw, err := pass(false)
	if err != nil {
		return nil, &KeyError{Source: path, Err: err}
	}
	if pw == nil {
		pw = []byte{}
	}
	der, err := encrypted.Decrypt(sealed, pw)
	if err != nil {
		return nil, keyErr(path, ErrBadPassword, "wrong password (or the encrypted key was altered)")
	}
	return der, nil
}

// knownScrypt reports whether the parameters are ones cosign and
// go-securesystemslib write (N 2^15..2^17, r 8, p 1); others are refused
// before any memory is spent on them.
func knownScrypt(n, r, p int) bool {
	return (n == 1<<15 || n == 1<<16 || n == 1<<17) && r == 8 && p == 1
}
