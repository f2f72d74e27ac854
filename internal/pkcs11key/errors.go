package pkcs11key

import (
	"fmt"

	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrBadURI reports a "pkcs11:" URI that is malformed or asks for
	// something airlock does not do (a usage error).
	ErrBadURI = errclass.New(errclass.Usage, "invalid PKCS#11 URI")
	// ErrNoPIN reports that no PIN was given for the token.
	ErrNoPIN = errclass.New(errclass.CouldNotRun, "no PKCS#11 PIN")
	// ErrModule reports a PKCS#11 module that cannot be loaded.
	ErrModule = errclass.New(errclass.CouldNotRun, "PKCS#11 module not usable")
	// ErrToken reports a token that is missing or refuses the login.
	ErrToken = errclass.New(errclass.CouldNotRun, "PKCS#11 token not usable")
	// ErrKey reports no key, several keys, or an unusable key for the URI.
	ErrKey = errclass.New(errclass.CouldNotRun, "PKCS#11 key not usable")
)

// Error names the key (its URI, which never holds a PIN) a problem was
// found with.
type Error struct {
	URI string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("key %s: %v", e.URI, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

func wrap(uri string, sentinel error, format string, args ...any) error {
	return &Error{URI: uri, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}
