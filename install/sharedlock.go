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
	f, err := l.flockFile(false, true)
	if err != nil {
		return err
	}
	l.shared = f
	return nil
}

// flockFile opens DIR/.airlock/lock (creating it when missing and create
// is set), checks it is the regular file it was a moment before, and takes
// it exclusively or shared without waiting; a lock another process holds is
// a *LockedError naming the holder the file records.
func (l *layout) flockFile(exclusive, create bool) (*os.File, error) {
	p := filepath.Join(l.path, dirAirlock, fileLock)
	fi, err := l.air.Lstat(fileLock)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, &RootError{Path: p, Reason: "is not a regular file"}
	}
	if err != nil && !errorsIsNotExist(err) {
		return nil, err
	}
	flag, how := os.O_RDONLY, syscall.LOCK_SH
	if exclusive {
		flag, how = os.O_RDWR, syscall.LOCK_EX
	}
	if create {
		flag |= os.O_CREATE
	}
	f, err := l.air.OpenFile(fileLock, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || (fi != nil && !os.SameFile(fi, st)) {
		f.Close()
		return nil, &RootError{Path: p, Reason: "changed while airlock opened it"}
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			buf := make([]byte, 256)
			n, _ := f.ReadAt(buf, 0)
			return nil, &LockedError{Path: p, Holder: trimHolder(buf[:n])}
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}
