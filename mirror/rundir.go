package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Run directories. Every run keeps what it spools in one directory,
// TMP/airlock-mirror-<random>, and holds an exclusive flock(2) on the file
// "lock" in it for as long as it runs (the kernel drops the lock when the
// process ends, however it ends). A new run removes every run directory
// whose lock it can take, after moving the resumable upload sessions it
// holds into its own, so a killed run leaves nothing behind for longer
// than until the next run, and its uploads can still be resumed.

const (
	runDirPattern = "airlock-mirror-"
	runLockName   = "lock"
	// staleUnlocked is the age after which a run directory without a lock
	// file (one made by an older airlock, or a run killed while creating
	// it) is removed.
	staleUnlocked = time.Hour
	// sessionMaxAge is how long an upload session is kept for a later run:
	// a week, the age at which distribution purges unfinished uploads.
	sessionMaxAge = 7 * 24 * time.Hour
)

// runDir is this run's directory, locked.
type runDir struct {
	path     string
	sessions string // resumable upload sessions
	lock     *os.File
}

// openRunDir creates and locks a run directory in tmp ("" means the system
// temporary directory) and cleans up after runs that ended.
func openRunDir(tmp string) (*runDir, []string, error) {
	if tmp == "" {
		tmp = os.TempDir()
	}
	dir, err := os.MkdirTemp(tmp, runDirPattern)
	if err != nil {
		return nil, nil, fmt.Errorf("temporary directory: %w", err)
	}
	r := &runDir{path: dir, sessions: filepath.Join(dir, "sessions")}
	if err := os.Mkdir(r.sessions, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("temporary directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, runLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("lock the temporary directory %s: %w", dir, err)
	}
	fmt.Fprintf(f, "pid %d since %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	r.lock = f
	removed := r.cleanup(tmp)
	return r, removed, nil
}

// cleanup removes the run directories in tmp whose owner is gone and
// returns their paths.
func (r *runDir) cleanup(tmp string) []string {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), runDirPattern) {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		if p == r.path {
			continue
		}
		gone, held := ownerGone(p, e)
		if !gone {
			continue
		}
		r.adoptSessions(filepath.Join(p, "sessions"))
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
		if held != nil {
			held.Close() // the directory is gone: release its lock
		}
	}
	return removed
}

// ownerGone reports whether the run that made dir has ended: its lock can
// be taken (held is then the locked file, to be closed once the directory
// is removed, so that two cleaners do not race), or, without a lock file,
// the directory is older than staleUnlocked.
func ownerGone(dir string, e os.DirEntry) (gone bool, held *os.File) {
	f, err := os.OpenFile(filepath.Join(dir, runLockName), os.O_RDWR, 0)
	if err != nil {
		fi, ierr := e.Info()
		return os.IsNotExist(err) && ierr == nil && time.Since(fi.ModTime()) > staleUnlocked, nil
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return false, nil
	}
	return true, f
}

// adoptSessions moves the upload sessions of a dead run into this one;
// sessions older than sessionMaxAge are dropped.
func (r *runDir) adoptSessions(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) > sessionMaxAge {
			continue
		}
		dst := filepath.Join(r.sessions, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		_ = os.Rename(filepath.Join(dir, e.Name()), dst)
	}
}

// close removes the run directory, keeping nothing but unfinished upload
// sessions: when there are some, the directory stays (unlocked) for the
// next run to adopt them.
func (r *runDir) close() {
	entries, _ := os.ReadDir(r.sessions)
	keep := false
	for _, e := range entries {
		keep = keep || !strings.HasPrefix(e.Name(), ".")
	}
	if keep {
		names, _ := os.ReadDir(r.path)
		for _, n := range names {
			if n.Name() != "sessions" && n.Name() != runLockName {
				os.RemoveAll(filepath.Join(r.path, n.Name()))
			}
		}
	} else {
		os.RemoveAll(r.path)
	}
	r.lock.Close()
}
