package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// File is a temporary file that becomes Path on Commit.
type File struct {
	*os.File
	path string
	done bool
}

// Create opens a temporary file next to path. Write to it, then call Commit to
// move it into place or Abort to remove it. Abort after Commit does nothing, so
// `defer f.Abort()` is the normal pattern. The temporary file is locked
// (flock) while it is open, so that RemoveStale can tell it from one left
// by a process that was killed.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return nil, err
	}
	// Best effort: a file system without locks only loses the sweeping.
	_ = syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &File{File: tmp, path: path}, nil
}

// TempName returns the path of the temporary file.
func (f *File) TempName() string { return f.File.Name() }

// Commit flushes the file to stable storage, renames it to its final path and
// syncs the directory.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	f.done = true
	tmp := f.File.Name()
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file unless the file was committed.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// SyncDir fsyncs a directory so that a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// tempInfix is what Create puts between the final name and the random
// part of a temporary file's name.
const tempInfix = ".tmp-"

// RemoveStale removes the temporary files Create made for path, or with
// volumes also for the numbered files path.001, path.002, ..., that no
// live process holds: those a killed process left behind. It returns the
// files removed. A temporary file still being written is locked by its
// writer and left alone.
func RemoveStale(path string, volumes bool) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "."+base)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if volumes && len(name) > 4 && name[0] == '.' {
			// .NNN before the infix: a volume's temporary file.
			i := 1
			for i < len(name) && name[i] >= '0' && name[i] <= '9' {
				i++
			}
			if i >= 4 {
				name = name[i:]
			}
		}
		if !strings.HasPrefix(name, tempInfix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if stale, err := unlocked(p); err != nil || !stale {
			continue
		}
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// unlocked reports whether no process holds the lock on file p.
func unlocked(p string) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil
	}
	return true, nil
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
