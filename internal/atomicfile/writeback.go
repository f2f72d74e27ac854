package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much is written before the kernel is asked to start
// writing it to disk.
const writebackChunk = 64 << 20

// Writeback wraps f so that, every 64 MiB, the kernel starts writing the
// new bytes to disk (sync_file_range, SYNC_FILE_RANGE_WRITE) without
// waiting. The final Sync then has little left to do, and large writes do
// not pile up dirty pages. It is a hint: errors are left to Sync.
type Writeback struct {
	f       *os.File
	written int64
	started int64
}

// NewWriteback returns a Writeback writing to f from its current offset 0.
func NewWriteback(f *os.File) *Writeback { return &Writeback{f: f} }

// Write implements io.Writer.
func (w *Writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackChunk {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.started, w.written-w.started, unix.SYNC_FILE_RANGE_WRITE)
		w.started = w.written
	}
	return n, err
}
