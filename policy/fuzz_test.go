package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse feeds arbitrary policy text to Parse, with the key files of
// testdata/keys as the only readable files. Parse must never panic; when it
// accepts, the policy must satisfy every promise Parse makes.
func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile(fixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(okKeys + okRule))
	f.Add([]byte(okKeys + "bundles:\n  - {match: \"pay*\", signers: [release], threshold: 1, maxAge: 1h30m, channel: a/b}\n"))
	files := map[string][]byte{}
	entries, err := os.ReadDir("testdata/keys")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join("testdata", "keys", e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		files[p] = b
	}
	readFile := func(p string) ([]byte, error) {
		if b, ok := files[filepath.Clean(p)]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(fixture, data, readFile)
		if err != nil {
			var pe *Error
			if p != nil || !errors.Is(err, ErrInvalidPolicy) || !errors.As(err, &pe) {
				t.Fatalf("Parse returned %v, %v", p, err)
			}
			return
		}
		if len(p.Keys) == 0 || len(p.Rules) == 0 || len(p.KeyNames) != len(p.Keys) || !slices.IsSorted(p.KeyNames) {
			t.Fatalf("accepted an empty or inconsistent policy: %+v", p)
		}
		fps := map[string]bool{}
		for name, k := range p.Keys {
			if k == nil || fps[k.Fingerprint] || p.KeyName(k.Fingerprint) != name {
				t.Fatalf("key %s duplicated or unnamed", name)
			}
			fps[k.Fingerprint] = true
		}
		for i, r := range p.Rules {
			if r.Index != i || r.Threshold < 1 || r.Threshold > len(r.Signers) || r.MaxAge < 0 || r.Match == "" {
				t.Fatalf("rule %d accepted: %+v", i, r)
			}
			seen := map[string]bool{}
			for _, s := range r.Signers {
				if p.Keys[s] == nil || seen[s] {
					t.Fatalf("rule %d signer %q unknown or repeated", i, s)
				}
				seen[s] = true
			}
			// Evaluating with no signatures must fail.
			if _, err := r.Evaluate(p, Facts{Name: "x"}); !errors.Is(err, ErrPolicy) {
				t.Fatalf("rule %d passed a bundle without signatures: %v", i, err)
			}
		}
	})
}
