package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/airlock-dev/airlock/internal/keys"
)

// passwordEnv names the environment variable that supplies a key password
// when no terminal is available (CI, scripts); cosignPasswordEnv is cosign's,
// read when passwordEnv is unset, since cosign users have it set for the
// same key files.
const (
	passwordEnv       = "AIRLOCK_PASSWORD"
	cosignPasswordEnv = "COSIGN_PASSWORD"
)

// readPassword returns the password of a private key: $AIRLOCK_PASSWORD when
// it is set and not empty, else $COSIGN_PASSWORD when set and not empty;
// otherwise, when stdin and stderr are terminals, a
// prompt on stderr naming what (asked twice when confirm is true, for a new
// key); otherwise an error saying how to supply one. An empty password is
// refused.
func readPassword(e *env, confirm bool, what string) ([]byte, error) {
	for _, name := range []string{passwordEnv, cosignPasswordEnv} {
		if p := e.getenv(name); p != "" {
			return []byte(p), nil
		}
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) || !e.stderrTTY {
		return nil, fmt.Errorf("%w: no password: set %s (or %s) or run on a terminal", keys.ErrBadPassword, passwordEnv, cosignPasswordEnv)
	}
	fmt.Fprintf(e.stderr, "Password for %s: ", what)
	pw, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	if len(pw) == 0 {
		return nil, fmt.Errorf("%w: the password is empty", keys.ErrBadPassword)
	}
	if confirm {
		fmt.Fprintf(e.stderr, "Repeat the password for %s: ", what)
		again, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading the password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.Join(keys.ErrBadPassword, errors.New("the two passwords differ; nothing was written"))
		}
	}
	return pw, nil
}

// passFunc adapts readPassword to keys.PassFunc for keys.LoadSigner.
func passFunc(e *env, what string) keys.PassFunc {
	return func(confirm bool) ([]byte, error) { return readPassword(e, confirm, what) }
}
