package registry

import (
	"testing"
)

// TestParseRange: what `serve --bundle` does with each kind of Range
// header (serve.md lists the same): one range of the bytes unit is
// honoured, whitespace around its numbers included (`bytes=10 -20` used to
// be ignored and the whole blob sent, where serve --data answers 206);
// malformed and multiple ranges are ignored (the whole blob, 200).
func TestParseRange(t *testing.T) {
	const size = 1000
	const (
		whole = iota
		part
		unsatisfiable
	)
	for _, c := range []struct {
		h      string
		want   int
		off, n int64
	}{
		{"bytes=10-20", part, 10, 11},
		{"bytes=10 -20", part, 10, 11},
		{"bytes=10- 20", part, 10, 11},
		{"bytes= 10-20", part, 10, 11},
		{"bytes=10-20 ", part, 10, 11},
		{" bytes=10-20", part, 10, 11},
		{"Bytes=0-5", part, 0, 6},
		{"BYTES=0-5", part, 0, 6},
		{"bytes=990-", part, 990, 10},
		{"bytes=-10", part, 990, 10},
		{"bytes=-5000", part, 0, 1000},
		{"bytes=0-5000", part, 0, 1000},
		{"bytes=0-18446744073709551616", part, 0, 1000},
		{"bytes=-18446744073709551616", part, 0, 1000},
		{"bytes=999-999", part, 999, 1},
		{"bytes=1000-", unsatisfiable, 0, 0},
		{"bytes=18446744073709551616-", unsatisfiable, 0, 0},
		{"bytes=5-3", unsatisfiable, 0, 0},
		{"bytes=-0", unsatisfiable, 0, 0},
		{"bytes=abc", whole, 0, 0},
		{"bytes=--5", whole, 0, 0},
		{"bytes=-", whole, 0, 0},
		{"bytes=+5-10", whole, 0, 0},
		{"bytes=5-+10", whole, 0, 0},
		{"bytes=1 0-20", whole, 0, 0},
		{"bytes=", whole, 0, 0},
		{"bytes 0-5", whole, 0, 0},
		{"items=1-2", whole, 0, 0},
		{"bytes=0-0,5-5", whole, 0, 0},
		{"bytes=0-0, 5-5", whole, 0, 0},
		{"bytes=2000-3000,5-5", whole, 0, 0},
	} {
		off, n, ok, satisfiable := parseRange(c.h, size)
		got := whole
		switch {
		case !satisfiable:
			got = unsatisfiable
		case ok:
			got = part
		}
		if got != c.want || got == part && (off != c.off || n != c.n) {
			t.Errorf("%q: kind %d [%d+%d], want kind %d [%d+%d]", c.h, got, off, n, c.want, c.off, c.n)
		}
	}
	if _, _, ok, satisfiable := parseRange("bytes=0-5", 0); ok || satisfiable {
		t.Errorf("a range of an empty blob: ok %v satisfiable %v, want 416", ok, satisfiable)
	}
}

// FuzzParseRange: whatever the header, a range honoured lies inside the
// blob and is not empty.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=10-20", "bytes=-5", "bytes=5-", "Bytes= 1 - 2 ", "bytes=0-0,1-1", "bytes=99999999999999999999-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		off, n, ok, satisfiable := parseRange(h, size)
		if ok && (!satisfiable || off < 0 || n < 1 || off > size-n) {
			t.Fatalf("%q of %d: [%d+%d] ok %v satisfiable %v", h, size, off, n, ok, satisfiable)
		}
	})
}
