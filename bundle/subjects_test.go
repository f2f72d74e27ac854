package bundle

import (
	"math/rand/v2"
	"testing"
)

// hasSubjectPairwise is the pass over every artifact that subjectIndex
// replaces, kept as the oracle.
func hasSubjectPairwise(all []Artifact, a Artifact) bool {
	for _, o := range all {
		if o.Kind == KindImage && o.Ref == a.Subject && o.Digest == a.SubjectDigest {
			return true
		}
		if a.Kind == KindAttachment && o.Kind == KindChart && o.Source != "" && o.Source == a.Subject && o.Digest == a.SubjectDigest {
			return true
		}
	}
	return false
}

// TestSubjectIndexMatchesPairwise compares subjectIndex with the pairwise
// search on random artifact lists whose refs, sources and digests collide
// often, across kinds.
func TestSubjectIndexMatchesPairwise(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 3))
	kinds := []string{KindImage, KindChart, KindAttachment, KindSBOM, KindFile}
	names := []string{"", "r.io/a:1", "r.io/b:1", "oci://r.io/charts/c:1"}
	digests := []string{"", "sha256:aa", "sha256:bb"}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for range 2000 {
		all := make([]Artifact, 1+r.IntN(8))
		for i := range all {
			all[i] = Artifact{Kind: pick(kinds), Ref: pick(names), Source: pick(names), Subject: pick(names), SubjectDigest: pick(digests)}
			all[i].Digest = pick(digests)
		}
		idx := newSubjectIndex(all)
		for _, a := range all {
			if got, want := idx.has(a), hasSubjectPairwise(all, a); got != want {
				t.Fatalf("artifacts %+v: has(%+v) = %v, pairwise %v", all, a, got, want)
			}
		}
	}
}
