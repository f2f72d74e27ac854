package bundle

import (
	"io"

	"github.com/airlock-dev/airlock/internal/meter"
)

// Progress receives progress from long operations. Implementations must be
// safe for concurrent use. A nil Progress reports nothing.
type Progress interface {
	// Start announces a unit of work (a blob, a phase) of total bytes.
	Start(id, label string, total int64)
	// Add reports n more bytes done for id.
	Add(id string, n int64)
	// Done marks id finished.
	Done(id string)
}

// WithProgress reports the bytes read from r to p under id; a nil p
// returns r unchanged.
func WithProgress(r io.Reader, p Progress, id string) io.Reader {
	if p == nil {
		return r
	}
	return &meter.Reader{R: r, OnRead: func(n int) { p.Add(id, int64(n)) }}
}

// Overall is an optional extension of Progress for an overall view of a
// long operation (one bar with bytes, artifacts and an estimate of the time
// left). Libraries announce the work with Plan as soon as they know it and
// report it settled with Moved and ArtifactDone; Plan may be called by
// several libraries of one run (verify and mirror), and the totals add up.
// Implementations must be safe for concurrent use.
type Overall interface {
	Progress
	// Plan adds bytes and artifacts to the work of the run.
	Plan(bytes int64, artifacts int)
	// Moved reports n more planned bytes done.
	Moved(n int64)
	// ArtifactDone reports one more planned artifact done.
	ArtifactDone()
}

// OverallOf returns p as an Overall, or nil when p is nil or does not
// implement it.
func OverallOf(p Progress) Overall {
	o, _ := p.(Overall)
	return o
}
