package safepath

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

func TestSetRefusesCollisions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		paths []string
	}{
		{"same path", []string{"etc/app.yaml", "etc/app.yaml"}},
		{"case", []string{"etc/app.yaml", "etc/App.YAML"}},
		{"case in a directory", []string{"Etc/app.yaml", "etc/app.yaml"}},
		{"NFC and NFD", []string{"etc/caf\u00e9", "etc/cafe\u0301"}},
		{"full case folding (German sharp s)", []string{"etc/stra\u00dfe", "etc/STRASSE"}},
		{"Kelvin sign and k", []string{"etc/\u212a", "etc/k"}},
		{"file, then a path inside it", []string{"models/m", "models/m/w.bin"}},
		{"path, then a file where its directory is", []string{"models/m/w.bin", "models/m"}},
		{"file inside a file, folded", []string{"Models/M", "models/m/w.bin"}},
		{"directory needed by a deeper path, folded", []string{"a/b/c/d", "A/B"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewSet()
			if err := s.Add(tc.paths[0]); err != nil {
				t.Fatal(err)
			}
			err := s.Add(tc.paths[1])
			var ce *CollisionError
			if !errors.As(err, &ce) || !errors.Is(err, ErrUnsafe) || ce.Path != tc.paths[1] || ce.Other != tc.paths[0] {
				t.Fatalf("Add(%q) after %q: err = %v", tc.paths[1], tc.paths[0], err)
			}
			t.Log(err)
		})
	}
}

func TestSetAcceptsDistinctPaths(t *testing.T) {
	t.Parallel()
	s := NewSet()
	for _, p := range []string{"etc/app.yaml", "etc/app.yml", "etc/app", "etc2/app.yaml", "models/m/a", "models/m/b/c", "models/mm", "e\u0301tc"} {
		if err := s.Add(p); err != nil {
			t.Fatalf("Add(%q): %v", p, err)
		}
	}
}

// TestSetIsLinear: 20,000 paths (10,000 directories deep and wide) are
// checked in well under a second; a pairwise check would take 2*10^8 steps.
func TestSetIsLinear(t *testing.T) {
	t.Parallel()
	s := NewSet()
	start := time.Now()
	for i := 0; i < 20000; i++ {
		if err := s.Add(fmt.Sprintf("dir%d/sub/file%d.bin", i%10000, i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("20,000 paths took %v", d)
	}
}

// TestKeyASCII: Key's ASCII shortcut gives what the Unicode path gives,
// for every ASCII byte in every position class.
func TestKeyASCII(t *testing.T) {
	s := NewSet()
	slow := func(p string) string { return norm.NFC.String(s.fold.String(norm.NFD.String(p))) }
	var all []byte
	for c := range 128 {
		all = append(all, byte(c))
	}
	for _, p := range []string{string(all), "Etc/App.YAML", "", "a/B/c", "KELVIN k", "ß-free ascii"[:6]} {
		if got, want := s.Key(p), slow(p); got != want {
			t.Errorf("Key(%q) = %q, want %q", p, got, want)
		}
	}
	// Non-ASCII still takes the Unicode path: the Kelvin sign folds to k.
	if got := s.Key("\u212a"); got != "k" {
		t.Errorf("Key(Kelvin sign) = %q, want k", got)
	}
}
