package verify

import (
	"github.com/airlock-dev/airlock/bundle"
)

// overall reports a verification pass to a bundle.Overall progress: the
// body's bytes as they are read, and each artifact once every body blob it
// needs has been read. Nil when the progress has no overall view.
type overall struct {
	ov        bundle.Overall
	waiting   map[string][]int // body blob digest -> artifacts needing it
	remaining []int            // per artifact: body blobs not read yet
}

// newOverall plans the body of h; call it once trust is decided.
func newOverall(p bundle.Progress, h *bundle.Head) *overall {
	ov := bundle.OverallOf(p)
	if ov == nil {
		return nil
	}
	o := &overall{ov: ov, waiting: map[string][]int{}, remaining: make([]int, len(h.Manifest.Artifacts))}
	body := map[string]bool{}
	var bytes int64
	for _, d := range h.Body {
		body[d.Digest] = true
		bytes += d.Size
	}
	ov.Plan(bytes, len(h.Manifest.Artifacts))
	for i := range h.Manifest.Artifacts {
		c, err := h.Content(i)
		if err == nil {
			seen := map[string]bool{}
			for _, l := range c.Layers {
				if body[l.Digest] && !seen[l.Digest] {
					seen[l.Digest] = true
					o.waiting[l.Digest] = append(o.waiting[l.Digest], i)
					o.remaining[i]++
				}
			}
		}
		if o.remaining[i] == 0 {
			ov.ArtifactDone()
		}
	}
	return o
}

// read reports n body bytes read.
func (o *overall) read(n int) {
	if o != nil {
		o.ov.Moved(int64(n))
	}
}

// blobDone reports a body blob read to its end.
func (o *overall) blobDone(digest string) {
	if o == nil {
		return
	}
	for _, i := range o.waiting[digest] {
		if o.remaining[i]--; o.remaining[i] == 0 {
			o.ov.ArtifactDone()
		}
	}
	delete(o.waiting, digest)
}
