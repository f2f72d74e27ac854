package pack

import "github.com/airlock-dev/airlock/bundle"

// packProgress is the Progress pack hands to the writer when the caller's
// progress has an overall view: every byte written settles in the overall
// bar, and an artifact is done once the last body
// blob it brought is written.
type packProgress struct {
	bundle.Progress
	ov   bundle.Overall
	left map[string]int // artifact (BodyBlob.Label) -> body blobs not written yet
}

// newPackProgress plans writing of the body (pulls stream into it); it
// returns prog itself when prog has no overall view.
func newPackProgress(prog bundle.Progress, m *bundle.Manifest, body []*bundle.BodyBlob) bundle.Progress {
	ov := bundle.OverallOf(prog)
	if ov == nil {
		return prog
	}
	pp := &packProgress{Progress: prog, ov: ov, left: map[string]int{}}
	for _, b := range body {
		pp.left[b.Label]++
	}
	artifacts := len(m.Artifacts)
	ov.Plan(m.Totals.BodyBytes, artifacts)
	for range max(artifacts-len(pp.left), 0) {
		ov.ArtifactDone() // everything of it is in the head
	}
	return pp
}

// Add settles n bytes in the overall view too.
func (pp *packProgress) Add(id string, n int64) {
	pp.Progress.Add(id, n)
	pp.ov.Moved(n)
}

// written is bundle.WriteOptions.Written: a body blob is in the bundle.
func (pp *packProgress) written(b *bundle.BodyBlob) {
	if pp.left[b.Label]--; pp.left[b.Label] == 0 {
		pp.ov.ArtifactDone()
	}
}
