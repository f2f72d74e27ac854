package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/keys"
)

const fixture = "testdata/policy.yaml"

// fixtureFiles serves the key files under testdata and nothing else.
func fixtureFiles(extra map[string][]byte) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if b, ok := extra[filepath.ToSlash(p)]; ok {
			return b, nil
		}
		if !strings.HasPrefix(filepath.ToSlash(p), "testdata/keys/") {
			return nil, fs.ErrNotExist
		}
		return os.ReadFile(p)
	}
}

func loadFixture(t *testing.T) *Policy {
	t.Helper()
	p, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFixture(t *testing.T) {
	t.Parallel()
	p := loadFixture(t)
	data, _ := os.ReadFile(fixture)
	sum := sha256.Sum256(data)
	if p.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %s", p.Digest)
	}
	if strings.Join(p.KeyNames, ",") != "ops,release,security" {
		t.Fatalf("KeyNames %v", p.KeyNames)
	}
	algs := map[string]string{"release": "ecdsa-p256", "security": "ed25519", "ops": "rsa-3072"}
	for name, alg := range algs {
		k := p.Keys[name]
		if k == nil || k.Algorithm != alg {
			t.Fatalf("key %s: %+v", name, k)
		}
		if p.KeyName(k.Fingerprint) != name {
			t.Fatalf("KeyName(%s) = %q", k.Fingerprint, p.KeyName(k.Fingerprint))
		}
	}
	if p.KeyName("sha256:0000") != "" {
		t.Fatal("KeyName of an unknown fingerprint")
	}
	r := p.Rules[0]
	if r.Index != 0 || r.Match != "payments" || r.Threshold != 2 || r.Channel != "prod" ||
		r.MaxAge != 30*24*time.Hour || r.AllowDowngrade || !r.Require.SBOMForEveryImage ||
		strings.Join(r.Require.Platforms, ",") != "linux/amd64" || strings.Join(r.Signers, ",") != "release,security,ops" {
		t.Fatalf("rule 0: %+v", r)
	}
	if p.Rules[1].MaxAge != 36*time.Hour || p.Rules[2].Index != 2 {
		t.Fatalf("rules: %+v", p.Rules)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, ErrInvalidPolicy) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing policy: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), MaxPolicySize/2+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("oversized policy: %v", err)
	}
	if _, err := Parse("big.yaml", bytes.Repeat([]byte("#"), MaxPolicySize+1), fixtureFiles(nil)); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("oversized policy bytes: %v", err)
	}
}

// TestLoadGeneratedKeys writes a policy next to freshly generated keys.
func TestLoadGeneratedKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	fps := map[string]string{}
	for name, alg := range map[string]string{"alice": "ecdsa-p256", "bob": "ed25519", "carol": "ecdsa-p256"} {
		k, err := keys.Generate(filepath.Join(dir, "keys", name), alg, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		fps[name] = k.Fingerprint
	}
	policy := `keys:
  alice: {publicKey: keys/alice.pub}
  bob: {publicKey: keys/bob.pub}
  carol: {publicKey: ` + filepath.Join(dir, "keys", "carol.pub") + `}
bundles:
  - match: "*"
    signers: [alice, bob, carol]
    threshold: 2
`
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, fp := range fps {
		if p.Keys[name].Fingerprint != fp || p.KeyName(fp) != name {
			t.Fatalf("key %s: %s, want %s", name, p.Keys[name].Fingerprint, fp)
		}
	}
}

func TestMatchOrder(t *testing.T) {
	t.Parallel()
	p := loadFixture(t)
	for name, want := range map[string]int{"payments": 0, "payments-eu": 1, "payments-": 1, "paymentsx": 2, "billing": 2, "": 2} {
		r, err := p.Match(name)
		if err != nil || r.Index != want {
			t.Fatalf("Match(%q) = %+v, %v; want rule %d", name, r, err, want)
		}
		if r != &p.Rules[want] {
			t.Fatalf("Match(%q) returned a copy", name)
		}
	}

	data := `keys: {release: {publicKey: keys/release.pub}}
bundles:
  - {match: "pay[a-m]ents", signers: [release], threshold: 1}
  - {match: "web-?", signers: [release], threshold: 1}
`
	p2, err := Parse(fixture, []byte(data), fixtureFiles(nil))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"payments": 0, "web-1": 1} {
		if r, err := p2.Match(name); err != nil || r.Index != want {
			t.Fatalf("Match(%q) = %+v, %v", name, r, err)
		}
	}
	for _, name := range []string{"billing", "paynents", "web-12", "web-", "PAYMENTS"} {
		r, err := p2.Match(name)
		var v *Violation
		if r != nil || !errors.Is(err, ErrNoRule) || !errors.Is(err, ErrPolicy) || !errors.As(err, &v) || v.Check != CheckMatch || !strings.Contains(v.Detail, name) {
			t.Fatalf("Match(%q) = %+v, %v; want a denial naming it", name, r, err)
		}
	}
	var nilPolicy *Policy
	if _, err := nilPolicy.Match("x"); !errors.Is(err, ErrNoRule) {
		t.Fatalf("nil policy: %v", err)
	}
}
