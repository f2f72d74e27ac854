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
