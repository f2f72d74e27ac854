package safepath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Overlaps reports whether a and b name the same path or one lies inside the
// other (a file target "etc/app" and another target "etc/app/x" cannot both
// exist). It is the pairwise test pack's spec check ran for every pair of
// targets before Targets; it stays here as the oracle.
func Overlaps(a, b string) bool {
	if a == b {
		return true
	}
	return strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/")
}

// firstOverlapping is the pairwise check that Targets replaces, kept as the
// oracle: the first of paths, in order, that Overlaps p.
func firstOverlapping(paths []string, p string) (string, bool) {
	for _, q := range paths {
		if Overlaps(q, p) {
			return q, true
		}
	}
	return "", false
}

// setOracle is the pairwise form of Set.Add: the first accepted path whose
// key (case folded, NFC) equals p's, lies above p's, or lies below it, with
// the reason Set gives.
func setOracle(s *Set, accepted []string, p string) (other, reason string, bad bool) {
	kp := s.Key(p)
	for _, q := range accepted {
		kq := s.Key(q)
		switch {
		case kq == kp && q == p:
			return q, "is the same path as", true
		case kq == kp:
			return q, "differs only in case or Unicode normalisation from", true
		case strings.HasPrefix(kp, kq+"/"):
			return q, "lies inside the file", true
		case strings.HasPrefix(kq, kp+"/"):
			return q, "must be a directory for", true
		}
	}
	return "", "", false
}

// pathElems are the pieces random paths are made of: names that differ
// only in case (also outside ASCII: sharp s, the Kelvin sign), in Unicode
// normalisation (é precomposed and decomposed), prefixes of each other
// ("a", "ab"), and pieces that make a path unclean (empty, ".", "..").
var pathElems = []string{"a", "A", "ab", "b", "B", "é", "e\u0301", "E\u0301", "ß", "SS", "ss", "\u212a", "k", "K", "x.yaml", "", ".", ".."}

// randomPaths returns n paths of one to four elements from pathElems; when
// unclean, some have a leading or trailing slash or an empty element.
func randomPaths(r *rand.Rand, n int, unclean bool) []string {
	out := make([]string, n)
	for i := range out {
		elems := make([]string, 1+r.IntN(4))
		for j := range elems {
			for {
				elems[j] = pathElems[r.IntN(len(pathElems))]
				if unclean || (elems[j] != "" && elems[j] != "." && elems[j] != "..") {
					break
				}
			}
		}
		p := strings.Join(elems, "/")
		if unclean {
			switch r.IntN(6) {
			case 0:
				p += "/"
			case 1:
				p = "/" + p
			}
		}
		out[i] = p
	}
	return out
}

// checkTargets adds paths to a Targets in order, as pack's spec check does
// (a path that overlaps is reported and not added), and compares every
// answer with the pairwise oracle.
func checkTargets(t *testing.T, paths []string, addAll bool) {
	t.Helper()
	ts := NewTargets()
	var added []string
	for _, p := range paths {
		got, gotOK := ts.Overlapping(p)
		want, wantOK := firstOverlapping(added, p)
		if got != want || gotOK != wantOK {
			t.Fatalf("after %q, Overlapping(%q) = %q, %v; the pairwise check says %q, %v", added, p, got, gotOK, want, wantOK)
		}
		if !gotOK || addAll {
			ts.Add(p)
			added = append(added, p)
		}
	}
}

// checkSet adds paths to a Set in order and compares every result with the
// pairwise oracle: the same refusals, naming the same other path, for the
// same reason.
func checkSet(t *testing.T, paths []string) {
	t.Helper()
	s := NewSet()
	var accepted []string
	for _, p := range paths {
		other, reason, bad := setOracle(s, accepted, p)
		err := s.Add(p)
		var ce *CollisionError
		switch {
		case !bad && err != nil:
			t.Fatalf("after %q, Add(%q) = %v; the pairwise check accepts it", accepted, p, err)
		case bad && (!errors.As(err, &ce) || ce.Path != p || ce.Other != other || ce.Reason != reason):
			t.Fatalf("after %q, Add(%q) = %v; the pairwise check says %q %s %q", accepted, p, err, p, reason, other)
		case !bad:
			accepted = append(accepted, p)
		}
	}
}

// TestTargetsMatchesPairwise compares Targets with the pairwise check on
// random path lists, clean and unclean (trailing slashes, leading slashes,
// empty elements), adding only paths that overlap nothing (as pack does) and
// adding every path.
func TestTargetsMatchesPairwise(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 1))
	for range 3000 {
		paths := randomPaths(r, 1+r.IntN(25), r.IntN(2) == 0)
		checkTargets(t, paths, false)
		checkTargets(t, paths, true)
	}
}

// TestSetMatchesPairwise compares Set with the pairwise check (after case
// folding and NFC) on random lists of clean paths.
func TestSetMatchesPairwise(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 2))
	for range 3000 {
		var paths []string
		for _, p := range randomPaths(r, 1+r.IntN(25), false) {
			if Check(p) == nil {
				paths = append(paths, p)
			}
		}
		checkSet(t, paths)
	}
}

func TestTargetsCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		added []string
		p     string
		want  string // "" for none
	}{
		{[]string{"etc/app.yaml"}, "etc/app.yaml", "etc/app.yaml"},
		{[]string{"models/m"}, "models/m/w.bin", "models/m"},
		{[]string{"models/m/a", "models/m/b"}, "models/m", "models/m/a"},
		{[]string{"models/m/b", "x", "models/m/a"}, "models/m", "models/m/b"},
		{[]string{"a/b/c", "a"}, "a/b", "a/b/c"},                         // an inside path added before the outer one
		{[]string{"a"}, "ab", ""},                                        // a prefix, not a directory
		{[]string{"Etc/app"}, "etc/app", ""},                             // bytes, not folded (Set folds)
		{[]string{"etc/caf\u00e9"}, "etc/cafe\u0301", ""},                // bytes, not normalised
		{[]string{"a/"}, "a//b", "a/"},                                   // unclean paths compare as Overlaps does
		{[]string{"a/b/"}, "a", "a/b/"},                                  //
		{[]string{"x/y", "x/y"}, "x/y/z", "x/y"},                         // a path added twice
		{[]string{"/etc"}, "", "/etc"},                                   // "" + "/" is a prefix of "/etc"
		{[]string{"p/q", "p"}, "p/q/r", "p/q"},                           // two paths above it: the first added
		{[]string{"p", "p/q"}, "p/q/r", "p"},                             //
		{[]string{"deep/a/b/c/d", "deep/a/x"}, "deep/a", "deep/a/b/c/d"}, //
	}
	for _, c := range cases {
		ts := NewTargets()
		for _, p := range c.added {
			ts.Add(p)
		}
		got, ok := ts.Overlapping(c.p)
		want, wantOK := firstOverlapping(c.added, c.p)
		if got != c.want || ok != (c.want != "") || got != want || ok != wantOK {
			t.Errorf("after %q, Overlapping(%q) = %q, %v; want %q (pairwise: %q, %v)", c.added, c.p, got, ok, c.want, want, wantOK)
		}
	}
}

// TestTargetsIsLinear: 40,000 targets, 400 per directory, are checked
// against each other in well under a second; pairwise that is 8*10^8 steps.
func TestTargetsIsLinear(t *testing.T) {
	t.Parallel()
	ts := NewTargets()
	start := time.Now()
	for i := range 40000 {
		p := fmt.Sprintf("etc/svc%03d/app%05d.yaml", i%100, i)
		if other, ok := ts.Overlapping(p); ok {
			t.Fatalf("%q overlaps %q", p, other)
		}
		ts.Add(p)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("40,000 targets took %v", d)
	}
}

// FuzzTargets compares Targets and Set with their pairwise oracles on the
// lines of the input, taken as paths in order.
func FuzzTargets(f *testing.F) {
	f.Add("etc/app\netc/app/x\netc\nEtc/APP\netc/caf\u00e9\netc/cafe\u0301\na/\na//b\n/x\n\n")
	f.Add("models/m/a\nmodels/m/b\nmodels/m\nmodels\nmodels/M/a")
	f.Fuzz(func(t *testing.T, s string) {
		paths := strings.Split(s, "\n")
		if len(paths) > 64 {
			paths = paths[:64]
		}
		checkTargets(t, paths, false)
		checkTargets(t, paths, true)
		var clean []string
		for _, p := range paths {
			if Check(p) == nil {
				clean = append(clean, p)
			}
		}
		checkSet(t, clean)
	})
}
