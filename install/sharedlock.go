package install

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// acquireShared takes DIR/.airlock/lock shared, without waiting: readers
// (check) share it, writers (install, rollback, prune, status repairs) take
// it exclusively, so a reader never sees a maintenance run half done. A lock
// held by a writer is a *LockedError. The lock file is created when it is
// missing and the user may; a user who may not create it gets an error
// wrapping fs.ErrPermission. The file's content is left alone.
func (l *layout) acquireShared() error {
	p := filepath.Join(l.path, dirAirlock, fileLock)
	fi, err := l.air.Lstat(fileLock)
	if err == nil && !fi.Mode().IsRegular() {
		return &RootError{Path: p, Reason: "is not a regular file"}
	}
	var f *os.File
	switch {
	case err == nil:
		f, err = l.air.OpenFile(fileLock, os.O_RDONLY, 0)
	case errorsIsNotExist(err):
		f, err = l.air.OpenFile(fileLock, os.O_RDONLY|os.O_CREATE, 0o644)
	}
	if err != nil {
		return fmt.Errorf("open lock %s: %w", p, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || (fi != nil && !os.SameFile(fi, st)) {
		f.Close()
		return &RootError{Path: p, Reason: "changed while airlock opened it"}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			buf := make([]byte, 256)
			n, _ := f.ReadAt(buf, 0)
			return &LockedError{Path: p, Holder: trimHolder(buf[:n])}
		}
		return fmt.Errorf("lock %s: %w", p, err)
	}
	l.shared = f
	return nil
}
