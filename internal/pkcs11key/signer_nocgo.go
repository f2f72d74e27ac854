//go:build !cgo

package pkcs11key

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/keys"
)

// DefaultModulePath is the PKCS#11 library loaded when neither the URI's
// module-path nor Options.ModulePath names one: SoftHSM2 as Debian and
// Ubuntu install it (package softhsm2).
const DefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// Options says how to reach the token; see the cgo build.
type Options struct {
	ModulePath string
	PIN        string
}

// Signer signs with a key in a PKCS#11 token; this build cannot (no cgo).
type Signer struct{}

// errNoCgo says why PKCS#11 keys are unavailable in this build.
var errNoCgo = errors.New("this airlock was built without cgo (CGO_ENABLED=0), and PKCS#11 keys need cgo to load the token's module; use a build with cgo")

// Open fails: PKCS#11 needs cgo.
func Open(u *URI, _ Options) (*Signer, error) {
	return nil, &Error{URI: u.String(), Err: fmt.Errorf("%w: %w", ErrModule, errNoCgo)}
}

// KeyID is never reached in this build.
func (s *Signer) KeyID() string { return "" }

// Public is never reached in this build.
func (s *Signer) Public() *keys.PublicKey { return nil }

// Sign fails: PKCS#11 needs cgo.
func (s *Signer) Sign(context.Context, []byte) ([]byte, error) { return nil, errNoCgo }

// Close does nothing.
func (s *Signer) Close() error { return nil }
