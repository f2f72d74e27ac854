// Package suggest finds the known word a mistyped one was probably meant to
// be, for "did you mean" hints on commands, flags and file fields.
package suggest

import "strings"

// Nearest returns the candidate closest to word by edit distance
// (case-insensitive), or "" when none is close enough to be a likely typo:
// at most 2 edits, and fewer than half of word's length. Ties go to the
// earlier candidate.
func Nearest(word string, candidates []string) string {
	w := strings.ToLower(word)
	best, bestD := "", -1
	for _, c := range candidates {
		d := distance(w, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > 2 || 2*bestD >= len([]rune(w)) {
		return ""
	}
	return best
}

// distance is the optimal-string-alignment edit distance between a and b
// (insertions, deletions, substitutions and swaps of two neighbours each
// count one), in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
