package diskspace

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/airlock-dev/airlock/internal/meter"
)

// ErrNoSpace is matched by every *Error.
var ErrNoSpace = errors.New("no space left")

// Error is a write that ran out of space (ENOSPC) or quota (EDQUOT).
type Error struct {
	// Op is what was being written, for example "staging blob sha256:...".
	Op string
	// Path is the file being written.
	Path string
	// Need is about how many bytes the operation needs in that directory
	// (the caller's estimate); <= 0 when unknown.
	Need int64
	// Available is the free space left in the directory after the failure
	// (statfs), -1 when it could not be read.
	Available int64
	// Err is the cause.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("no space left in %s while %s", filepath.Dir(e.Path), e.Op)
	if e.Need > 0 {
		s += fmt.Sprintf(": it needs about %s there", meter.Bytes(e.Need))
	}
	if e.Available >= 0 {
		s += fmt.Sprintf(", %s is free", meter.Bytes(e.Available))
	}
	return s + fmt.Sprintf(" (%v); free space there or write elsewhere", e.Err)
}

func (e *Error) Unwrap() []error { return []error{ErrNoSpace, e.Err} }

// Check returns err unchanged unless it is ENOSPC or EDQUOT, which it
// returns as an *Error naming op, path and need.
func Check(err error, op, path string, need int64) error {
	if err == nil || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Path: path, Need: need, Available: Available(filepath.Dir(path)), Err: err}
}

// Available is the free space an unprivileged user may use in dir
// (f_bavail * f_bsize), -1 when it cannot be read.
func Available(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	n := uint64(st.Bavail) * uint64(st.Bsize)
	if n > 1<<62 {
		n = 1 << 62
	}
	return int64(n)
}
