// Package packtest gives tests the sample release (package sample) the way an
// operator receives it: pushed to an in-process registry, packed by package
// pack, signed by one generated key, with the 1-of-1 policy that trusts it.
package packtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/source"
)

// Release is the packed sample release.
type Release struct {
	Dir        string // the release's airlock.yaml, release.key/.pub and policy.yaml
	Bundle     string // Dir/demo.airlock
	Signer     Signer // the release key
	Policy     *policy.Policy
	PolicyPath string
}

// KeyPassword is the password of Dir/release.key.
const KeyPassword = "test-password"

// New packs the sample release signed by a new "release" key, with a policy
// that trusts bundle "demo" signed by it.
func New(t testing.TB) *Release {
	t.Helper()
	ctx := context.Background()
	src := testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(ctx, src.Host, imgs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := sample.WriteRelease(dir, src.Host); err != nil {
		t.Fatal(err)
	}
	spec, err := pack.LoadSpec(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewKey(t, dir, "release")
	out := filepath.Join(dir, "demo.airlock")
	if _, err := pack.Pack(ctx, spec, pack.Options{
		Output: out, Images: source.NewPuller(source.PullOptions{}), Signers: []bundle.Signer{s},
	}); err != nil {
		t.Fatal(err)
	}
	polPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(polPath, []byte("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: demo\n    signers: [release]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(polPath)
	if err != nil {
		t.Fatal(err)
	}
	return &Release{Dir: dir, Bundle: out, Signer: s, Policy: pol, PolicyPath: polPath}
}

// NewKey generates dir/NAME.key (password KeyPassword) and dir/NAME.pub and
// returns the key's signer.
func NewKey(t testing.TB, dir, name string) Signer {
	t.Helper()
	pw := []byte(KeyPassword)
	if _, err := keys.Generate(filepath.Join(dir, name), "ecdsa-p256", pw); err != nil {
		t.Fatal(err)
	}
	s, err := keys.LoadSigner(filepath.Join(dir, name+".key"), func(bool) ([]byte, error) { return pw, nil })
	if err != nil {
		t.Fatal(err)
	}
	return Signer{s}
}

// Signer adapts a key file's signer to bundle.Signer.
type Signer struct{ S *keys.Signer }

func (k Signer) KeyID() string { return k.S.Public.Fingerprint }

func (k Signer) Sign(_ context.Context, m []byte) ([]byte, error) {
	return k.S.SignMessage(bytes.NewReader(m))
}

func (k Signer) InProcess() bool { return true }
