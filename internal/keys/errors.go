package keys

import (
	"errors"
	"fmt"
)

var (
	// ErrBadKey reports a file that is not a well-formed key of the kind
	// expected: not PEM, several PEM blocks, trailing data, a private key
	// where a public key belongs, or DER that does not parse.
	ErrBadKey = errors.New("not a valid key file")
	// ErrUnsupportedKey reports a well-formed key airlock does not accept:
	// RSA under 3072 bits, DSA, curves other than P-256/P-384/P-521, X25519,
	// certificates, or an algorithm name Generate does not know.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrBadPassword reports a wrong, missing or empty password.
	ErrBadPassword = errors.New("bad password")
	// ErrExists reports that Generate would overwrite an existing file.
	ErrExists = errors.New("key file already exists")
)

// KeyError names the key file (or other source) a problem was found in.
type KeyError struct {
	Source string // path, or another name the caller gave the bytes
	Err    error  // wraps one of the sentinels, or an I/O error
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %s: %v", e.Source, e.Err) }

func (e *KeyError) Unwrap() error { return e.Err }

// keyErr builds a *KeyError whose cause wraps sentinel.
func keyErr(source string, sentinel error, format string, args ...any) error {
	return &KeyError{Source: source, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}
