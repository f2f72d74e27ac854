package diskspace

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cause := &fs.PathError{Op: "write", Path: dir + "/blob", Err: syscall.ENOSPC}
	err := Check(fmt.Errorf("copy: %w", cause), "staging blob sha256:ab", dir+"/blob", 5<<20)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ENOSPC not classified: %v", err)
	}
	for _, s := range []string{dir, "staging blob sha256:ab", "5.0 MiB"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
	if e.Available < 0 {
		t.Errorf("free space of %s unknown", dir)
	}
	if err := Check(fmt.Errorf("x: %w", syscall.EDQUOT), "op", dir+"/f", 0); !errors.Is(err, ErrNoSpace) {
		t.Errorf("EDQUOT not classified: %v", err)
	}
	other := errors.New("short read")
	if err := Check(other, "op", dir+"/f", 1); err != other {
		t.Errorf("other error changed: %v", err)
	}
	if Check(nil, "op", "p", 1) != nil {
		t.Error("nil became an error")
	}
}
