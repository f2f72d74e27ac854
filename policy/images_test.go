package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readFS reads key files from testdata and the trusted root from memory.
func readFS(root []byte) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if strings.HasSuffix(p, "root.json") {
			if root == nil {
				return nil, fs.ErrNotExist
			}
			return root, nil
		}
		return os.ReadFile(p)
	}
}

func TestImageRules(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "policy.yaml")
	yaml := okKeys + okRule + `    images:
      - match: "registry.k8s.io/**"
        keyless: { issuer: https://accounts.google.com, subject: krel-trust@k8s-releng-prod.iam.gserviceaccount.com, trustedRoot: roots/root.json }
      - match: "registry.example/payments/*"
        keyless: { issuer: https://token.actions.githubusercontent.com, subjectRegExp: "https://github\\.com/example/.*", trustedRoot: roots/root.json }
`
	p, err := Parse(path, []byte(yaml), readFS([]byte(`{"x":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	r := &p.Rules[0]
	if len(r.Images) != 2 || r.Images[0].Keyless.RootDigest != "sha256:5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22" {
		t.Fatalf("images %+v", r.Images)
	}
	// keys names policy keys.
	kp, err := Parse(path, []byte(okKeys+okRule+"    images:\n      - { match: \"**\", keys: [security, release] }\n"), readFS(nil))
	if err != nil || len(kp.Rules[0].Images[0].PublicKeys) != 2 || kp.Rules[0].Images[0].Keys[0] != "security" {
		t.Fatalf("keys rule: %v", err)
	}
	// A root pinned by digest alone is taken from the bundle.
	pinned, err := Parse(path, []byte(okKeys+okRule+"    images:\n      - { match: \"**\", keyless: { issuer: i, subject: s, trustedRootSHA256: \"sha256:5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22\" } }\n"), readFS(nil))
	if err != nil || pinned.Rules[0].Images[0].Keyless.Root != nil || pinned.Rules[0].Images[0].Keyless.RootDigest == "" {
		t.Fatalf("pinned root: %v", err)
	}
	for ref, want := range map[string]int{
		"registry.k8s.io/kube-apiserver:v1.31.0":      0,
		"registry.k8s.io/sig/deep/image@sha256:00":    0,
		"registry.example/payments/api:1.0":           1,
		"registry.example/payments/team/api:1.0":      -1, // * stays inside one segment
		"registry.k8s.io.evil.example/kube-apiserver": -1,
		"other/registry.k8s.io/x":                     -1,
	} {
		got := -1
		if ir := r.ImageRuleFor(ref); ir != nil {
			got = ir.Index
		}
		if got != want {
			t.Errorf("%s: rule %d, want %d", ref, got, want)
		}
	}

	for name, c := range map[string]struct {
		images string
		root   []byte
		field  string
	}{
		"no match":         {`      - keyless: { issuer: i, subject: s, trustedRoot: root.json }`, []byte("{}"), "bundles[0].images[0].match"},
		"no keyless":       {`      - match: "a/**"`, []byte("{}"), "bundles[0].images[0].keyless"},
		"no issuer":        {`      - { match: "a/**", keyless: { subject: s, trustedRoot: root.json } }`, []byte("{}"), "bundles[0].images[0].keyless.issuer"},
		"both subjects":    {`      - { match: "a/**", keyless: { issuer: i, subject: s, subjectRegExp: s, trustedRoot: root.json } }`, []byte("{}"), "bundles[0].images[0].keyless"},
		"bad regexp":       {`      - { match: "a/**", keyless: { issuer: i, subjectRegExp: "(", trustedRoot: root.json } }`, []byte("{}"), "bundles[0].images[0].keyless.subjectRegExp"},
		"no root":          {`      - { match: "a/**", keyless: { issuer: i, subject: s } }`, []byte("{}"), "bundles[0].images[0].keyless.trustedRoot"},
		"unreadable root":  {`      - { match: "a/**", keyless: { issuer: i, subject: s, trustedRoot: root.json } }`, nil, "bundles[0].images[0].keyless.trustedRoot"},
		"unknown key":      {`      - { match: "a/**", keys: [nobody] }`, nil, "bundles[0].images[0].keys[0]"},
		"key twice":        {`      - { match: "a/**", keys: [release, release] }`, nil, "bundles[0].images[0].keys[1]"},
		"keys and keyless": {`      - { match: "a/**", keys: [release], keyless: { issuer: i, subject: s, trustedRoot: root.json } }`, []byte("{}"), "bundles[0].images[0].keyless"},
		"bad pin":          {`      - { match: "a/**", keyless: { issuer: i, subject: s, trustedRootSHA256: "sha256:AB" } }`, nil, "bundles[0].images[0].keyless.trustedRootSHA256"},
		"file not the pin": {`      - { match: "a/**", keyless: { issuer: i, subject: s, trustedRoot: root.json, trustedRootSHA256: "sha256:0000000000000000000000000000000000000000000000000000000000000000" } }`, []byte("{}"), "bundles[0].images[0].keyless.trustedRootSHA256"},
	} {
		_, err := Parse(path, []byte(okKeys+okRule+"    images:\n"+c.images+"\n"), readFS(c.root))
		var pe *Error
		if !errors.As(err, &pe) || (c.field != "" && pe.Field != c.field) {
			t.Errorf("%s: %v (want an error on %s)", name, err, c.field)
		}
	}
}
