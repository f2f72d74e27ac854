package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// TestExitCodeFromClass: the exit code follows the class each package gave
// its error where it was made, through any wrapping; there is no list of
// sentinels to keep in sync here.
func TestExitCodeFromClass(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"malformed bundle", &bundle.EntryError{Entry: "index.json", Err: bundle.ErrMalformed}, exitRejected},
		{"integrity", fmt.Errorf("reading: %w", bundle.ErrIntegrity), exitRejected},
		{"statement", bundle.ErrStatement, exitRejected},
		{"verification failure", &verify.Failure{Stage: "signatures", Err: errors.New("bad")}, exitRejected},
		{"untrusted", fmt.Errorf("%w: no key", verify.ErrUntrusted), exitRejected},
		{"policy violation", &policy.Violation{Check: policy.CheckExpires, Detail: "expired"}, exitRejected},
		{"replay", &install.FreshnessError{Name: "demo", Err: install.ErrReplay}, exitRejected},
		{"drift", fmt.Errorf("check: %w", install.ErrDrift), exitRejected},
		{"invalid policy file", &policy.Error{File: "p.yaml", Msg: "bad"}, exitError},
		{"invalid airlock.yaml", &pack.SpecError{File: "airlock.yaml", Msg: "bad"}, exitError},
		// A source serving wrong bytes stops the pack: no bundle was judged.
		{"source integrity", &pack.SourceError{Artifact: "image x", Err: bundle.ErrIntegrity}, exitError},
		{"locked root", install.ErrLocked, exitError},
		{"plain I/O", errors.New("open x: no such file"), exitError},
		{"usage", usagef("unexpected argument %q", "x"), exitUsage},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exit %d, want %d (%v)", c.name, got, c.want, c.err)
		}
	}
}
