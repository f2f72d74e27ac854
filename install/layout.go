package install

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Names of what airlock owns in an install root.
const (
	dirAirlock      = ".airlock"
	dirReleases     = "releases"
	dirCurrent      = "current"
	fileState       = "state.json"
	fileLock        = "lock"
	stagingPrefix   = "staging-"
	stateTempPrefix = ".state.json.tmp-"
	linkTempInfix   = ".tmp-"
	// recordTempPrefix names the temporary file of a release record write
	// in DIR/releases/NAME/.records (airlock before it used stateTempPrefix
	// there, which recovery still removes).
	recordTempPrefix = ".record.json.tmp-"
	// fileStateAside prefixes a state.json Repair set aside:
	// state.json.corrupt-TIME.
	fileStateAside = fileState + ".corrupt-"
)

// ReleaseDir returns DIR/releases/NAME/VERSION.
func ReleaseDir(root, name, version string) string {
	return filepath.Join(root, dirReleases, name, version)
}

// CurrentLink returns DIR/current/NAME.
func CurrentLink(root, name string) string { return filepath.Join(root, dirCurrent, name) }

// StatePath returns DIR/.airlock/state.json.
func StatePath(root string) string { return filepath.Join(root, dirAirlock, fileState) }

// linkTarget is what DIR/current/NAME points at.
func linkTarget(name, version string) string { return "../" + dirReleases + "/" + name + "/" + version }

// layout is an opened install root. Each owned directory is opened as its
// own os.Root after checking it is a real directory, so nothing below it is
// reached through a link placed in the install root.
type layout struct {
	path string
	root *os.Root // DIR
	air  *os.Root // DIR/.airlock
	rel  *os.Root // DIR/releases
	cur  *os.Root // DIR/current
	lock *lockFile
	// shared is the lock file held with a shared lock (check), or nil.
	shared *os.File
	// stateDigest is the sha256 of state.json as readState last accepted
	// it or writeState last wrote it; "" when there was none.
	stateDigest string
	// rebuilt is set by Repair once it rebuilt the state from the records
	// (see recoverAudit).
	rebuilt bool
}

// precheck looks at DIR without changing anything: DIR, when it exists, is
// a directory and the directories airlock owns in it are not links.
func precheck(dir string) error {
	fi, err := os.Stat(dir)
	if errorsIsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &RootError{Path: dir, Reason: "is not a directory"}
	}
	for _, n := range []string{dirAirlock, dirReleases, dirCurrent} {
		fi, err := os.Lstat(filepath.Join(dir, n))
		if errorsIsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := ownedDirType(filepath.Join(dir, n), fi); err != nil {
			return err
		}
	}
	return nil
}

func ownedDirType(p string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &RootError{Path: p, Reason: "is a symbolic link"}
	}
	if !fi.IsDir() {
		return &RootError{Path: p, Reason: "is not a directory"}
	}
	return nil
}

// openLayout opens DIR and the directories airlock owns in it. With create,
// missing ones are made (mode 0755). Without, a missing DIR/.airlock is an
// error satisfying errors.Is(err, fs.ErrNotExist) (nothing installed), and
// a missing DIR/releases or DIR/current is left nil (see ensure).
func openLayout(dir string, create bool) (*layout, error) {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	l := &layout{path: dir, root: root}
	if l.air, err = openOwnedDir(root, dir, dirAirlock, create); err != nil {
		l.close()
		return nil, err
	}
	for _, d := range []struct {
		name string
		dst  **os.Root
	}{{dirReleases, &l.rel}, {dirCurrent, &l.cur}} {
		sub, err := openOwnedDir(root, dir, d.name, create)
		if errorsIsNotExist(err) && !create {
			continue
		}
		if err != nil {
			l.close()
			return nil, err
		}
		*d.dst = sub
	}
	return l, nil
}

// ensure creates DIR/releases and DIR/current when they are missing (under
// the lock, before repairs or changes).
func (l *layout) ensure() error {
	for _, d := range []struct {
		name string
		dst  **os.Root
	}{{dirReleases, &l.rel}, {dirCurrent, &l.cur}} {
		if *d.dst != nil {
			continue
		}
		sub, err := openOwnedDir(l.root, l.path, d.name, true)
		if err != nil {
			return err
		}
		*d.dst = sub
	}
	return nil
}

// openOwnedDir opens parent/name as an os.Root after checking, without
// following it, that it is a directory, and that what was opened is what
// was checked.
func openOwnedDir(parent *os.Root, parentPath, name string, create bool) (*os.Root, error) {
	full := filepath.Join(parentPath, name)
	fi, err := parent.Lstat(name)
	if errorsIsNotExist(err) && create {
		if err := parent.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		fi, err = parent.Lstat(name)
	}
	if err != nil {
		return nil, err
	}
	if err := ownedDirType(full, fi); err != nil {
		return nil, err
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	st, err := sub.Stat(".")
	if err != nil || !os.SameFile(fi, st) {
		sub.Close()
		return nil, &RootError{Path: full, Reason: "changed while airlock opened it"}
	}
	return sub, nil
}

// nameDir opens DIR/releases/NAME.
func (l *layout) nameDir(name string, create bool) (*os.Root, error) {
	if l.rel == nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(l.path, dirReleases), Err: fs.ErrNotExist}
	}
	return openOwnedDir(l.rel, filepath.Join(l.path, dirReleases), name, create)
}

func (l *layout) close() {
	if l.shared != nil {
		syscall.Flock(int(l.shared.Fd()), syscall.LOCK_UN)
		l.shared.Close()
		l.shared = nil
	}
	if l.lock != nil {
		l.lock.release()
		l.lock = nil
	}
	for _, r := range []*os.Root{l.cur, l.rel, l.air, l.root} {
		if r != nil {
			r.Close()
		}
	}
}

// lockFile is an flock(2) on DIR/.airlock/lock.
type lockFile struct{ f *os.File }

// acquireLock takes the lock without waiting and writes "pid N since TIME"
// into it. A held lock is a *LockedError naming the holder.
func (l *layout) acquireLock(now time.Time) error {
	f, err := l.flockFile(true, true)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("pid %d since %s\n", os.Getpid(), now.UTC().Format(time.RFC3339))), 0)
	}
	l.lock = &lockFile{f: f}
	return nil
}

func trimHolder(b []byte) string { return strings.TrimSpace(strings.ToValidUTF8(string(b), "?")) }

// release empties the lock file (so an idle root's bytes do not depend on
// who held it last) and unlocks it.
func (lf *lockFile) release() {
	lf.f.Truncate(0)
	syscall.Flock(int(lf.f.Fd()), syscall.LOCK_UN)
	lf.f.Close()
}

// syncDir fsyncs directory name of r, so renames and creations in it are durable.
func syncDir(r *os.Root, name string) error {
	d, err := r.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", filepath.Join(r.Name(), name), err)
	}
	return nil
}

// readDirNames lists the entries of directory name in r.
func readDirNames(r *os.Root, name string) ([]fs.DirEntry, error) {
	d, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

// randomSuffix is the random part of every temporary name airlock gives
// in the install root: 16 lowercase hex digits.
func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isTempName reports whether n is prefix followed by a suffix randomSuffix
// could have made: so recovery removes airlock's own temporary files and
// never a file someone else named alike.
func isTempName(n, prefix string) bool {
	s, ok := strings.CutPrefix(n, prefix)
	if !ok || len(s) != 16 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isLinkTempName reports whether n is the temporary name switchLink gives
// a new DIR/current/NAME link: ".NAME.tmp-" and a random suffix.
func isLinkTempName(n string) bool {
	i := strings.LastIndex(n, linkTempInfix)
	return i > 1 && n[0] == '.' && validName(n[1:i]) && isTempName(n[i:], linkTempInfix)
}

// isStagingName reports whether n is a staging directory name airlock gives.
func isStagingName(n string) bool { return isTempName(n, stagingPrefix) }

func errorsIsNotExist(err error) bool { return err != nil && errors.Is(err, fs.ErrNotExist) }

// parentDir returns the slash-separated parent of p, "" at the top.
func parentDir(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// statDir checks that p exists and is a directory (following p itself,
// which is the operator's choice of path).
func statDir(p string) (fs.FileInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &RootError{Path: p, Reason: "is not a directory"}
	}
	return fi, nil
}
