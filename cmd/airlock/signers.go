package main

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/kmskey"
	"github.com/airlock-dev/airlock/internal/pkcs11key"
)

// Environment variables for keys held in a PKCS#11 token.
const (
	// pkcs11PINEnv supplies the token's user PIN when the URI has no pin-source.
	pkcs11PINEnv = "AIRLOCK_PKCS11_PIN"
	// pkcs11ModuleEnv names the PKCS#11 library when the URI has no module-path.
	pkcs11ModuleEnv = "AIRLOCK_PKCS11_MODULE"
)

// openedKey is a private key ready to sign, wherever it is held.
type openedKey struct {
	signer bundle.Signer
	public *keys.PublicKey
	close  func() error
}

// openKey opens one --key value: a "pkcs11:" URI (RFC 7512) names a key in
// a token; an awskms://, gcpkms://, azurekms:// or hashivault:// URI a key
// in that KMS (sigstore's providers, as cosign accepts them); anything else
// is a private key file, whose password is asked for when needed.
func openKey(ctx context.Context, e *env, ref string) (*openedKey, error) {
	if kmskey.IsURI(ref) {
		s, err := kmskey.Open(ctx, ref)
		if err != nil {
			return nil, err
		}
		return &openedKey{signer: s, public: s.Public(), close: func() error { return nil }}, nil
	}
	if pkcs11key.IsURI(ref) {
		u, err := pkcs11key.ParseURI(ref)
		if err != nil {
			return nil, err
		}
		pin := e.getenv(pkcs11PINEnv)
		if pin == "" && u.PINSource == "" {
			if pin, err = promptPIN(e, ref); err != nil {
				return nil, err
			}
		}
		s, err := pkcs11key.Open(u, pkcs11key.Options{ModulePath: e.getenv(pkcs11ModuleEnv), PIN: pin})
		if err != nil {
			return nil, err
		}
		return &openedKey{signer: s, public: s.Public(), close: s.Close}, nil
	}
	s, err := keys.LoadSigner(ref, func(confirm bool) ([]byte, error) { return readPassword(e, false, ref) })
	if err != nil {
		return nil, err
	}
	return &openedKey{signer: s, public: s.Public, close: func() error { return nil }}, nil
}

// promptPIN asks for a token PIN on a terminal, or says how to give one.
func promptPIN(e *env, what string) (string, error) {
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) || !e.stderrTTY {
		return "", fmt.Errorf("%w: key %s: set %s, add pin-source=FILE to the URI, or run on a terminal", pkcs11key.ErrNoPIN, what, pkcs11PINEnv)
	}
	fmt.Fprintf(e.stderr, "PIN for %s: ", what)
	pin, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the PIN: %w", err)
	}
	if len(pin) == 0 {
		return "", fmt.Errorf("%w: key %s: the PIN is empty", pkcs11key.ErrNoPIN, what)
	}
	return string(pin), nil
}

// loadSigners opens each --key value (see openKey). The returned function
// releases tokens; call it when signing is done, also after an error.
func loadSigners(ctx context.Context, e *env, refs []string) ([]bundle.Signer, func(), error) {
	var (
		out    []bundle.Signer
		closes []func() error
	)
	release := func() {
		for _, c := range closes {
			_ = c()
		}
	}
	for _, ref := range refs {
		k, err := openKey(ctx, e, ref)
		if err != nil {
			release()
			return nil, func() {}, err
		}
		out = append(out, k.signer)
		closes = append(closes, k.close)
	}
	return out, release, nil
}
