package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"unicode"
)

// MaxLen is the longest target accepted, in bytes.
const MaxLen = 1024

// ErrUnsafe reports a target that could escape the install root or is ambiguous.
var ErrUnsafe = errors.New("unsafe target path")

// Error names the target and why it was refused.
type Error struct {
	Target string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("target %q: %s (use a relative path with forward slashes inside the install root, e.g. etc/app/config.yaml)", e.Target, e.Reason)
}

func (e *Error) Unwrap() error { return ErrUnsafe }

// Check accepts only clean, relative, slash-separated paths that stay inside
// the root: no "..", no absolute paths, no backslashes, no empty or "."
// elements, no control characters, at most MaxLen bytes.
func Check(target string) error {
	bad := func(reason string) error { return &Error{Target: target, Reason: reason} }
	switch {
	case target == "" || target == ".":
		return bad("empty")
	case len(target) > MaxLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxLen))
	case strings.HasPrefix(target, "/"):
		return bad("absolute")
	case strings.ContainsRune(target, '\\'):
		return bad("contains a backslash")
	case strings.IndexFunc(target, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0:
		return bad("contains a control character or invalid UTF-8")
	case path.Clean(target) != target:
		return bad("not clean (no trailing slash, //, ./ or ..)")
	}
	for _, elem := range strings.Split(target, "/") {
		if elem == ".." {
			return bad("contains ..")
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(target)) {
		return bad("not a local path")
	}
	return nil
}

// Kind names a file type for messages: "file", "directory", "symbolic link",
// "device", "named pipe", "socket" or "special file".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
