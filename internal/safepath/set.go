package safepath

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Set collects install paths and refuses one that would land on the same
// file as another on some filesystem: equal after Unicode case folding and
// NFC normalisation (case-insensitive or normalising filesystems: macOS, SMB
// and NTFS shares), or equal to a directory another path needs. It works in
// time linear in the total length of the paths. The zero value is not
// usable; call NewSet.
type Set struct {
	fold  cases.Caser
	files map[string]string // folded path -> the path as added
	dirs  map[string]string // folded directory -> a path that needs it
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{fold: cases.Fold(), files: map[string]string{}, dirs: map[string]string{}}
}

// Key is the form two paths share when a case-insensitive, normalising
// filesystem would treat them as one: NFC(fold(NFD(p))).
func (s *Set) Key(p string) string {
	for i := range len(p) {
		if p[i] >= utf8.RuneSelf {
			return norm.NFC.String(s.fold.String(norm.NFD.String(p)))
		}
	}
	// ASCII: normalisation changes nothing and folding is lower-casing
	// (TestKeyASCII), without the transformers' cost.
	return strings.ToLower(p)
}

// CollisionError names two paths that cannot both be installed.
type CollisionError struct {
	Path, Other string
	Reason      string
}

func (e *CollisionError) Error() string {
	nonASCII := func(s string) bool { return fmt.Sprintf("%q", s) != fmt.Sprintf("%+q", s) }
	if e.Path != e.Other && (nonASCII(e.Path) || nonASCII(e.Other)) {
		// Show the code points: the two may look the same.
		return fmt.Sprintf("target %+q %s %+q", e.Path, e.Reason, e.Other)
	}
	return fmt.Sprintf("target %q %s %q", e.Path, e.Reason, e.Other)
}

func (e *CollisionError) Unwrap() error { return ErrUnsafe }

// Add records p, a path that passed Check, as a file. It fails with a
// *CollisionError when p equals a recorded file or directory (after
// folding), or when a directory p needs is a recorded file.
func (s *Set) Add(p string) error {
	k := s.Key(p)
	if other, ok := s.files[k]; ok {
		reason := "is the same path as"
		if other != p {
			reason = "differs only in case or Unicode normalisation from"
		}
		return &CollisionError{Path: p, Other: other, Reason: reason}
	}
	if other, ok := s.dirs[k]; ok {
		return &CollisionError{Path: p, Other: other, Reason: "must be a directory for"}
	}
	for i := len(k) - 1; i > 0; i-- {
		if k[i] != '/' {
			continue
		}
		d := k[:i]
		if other, ok := s.files[d]; ok {
			return &CollisionError{Path: p, Other: other, Reason: "lies inside the file"}
		}
		if _, ok := s.dirs[d]; ok {
			break // its parents were recorded with it
		}
	}
	s.files[k] = p
	for i := strings.IndexByte(k, '/'); i >= 0; {
		if _, ok := s.dirs[k[:i]]; !ok {
			s.dirs[k[:i]] = p
		}
		j := strings.IndexByte(k[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil
}
