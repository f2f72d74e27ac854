package install

import (
	"io/fs"
	"path/filepath"
)

// linkIs reports whether DIR/current/NAME is a link pointing at VERSION.
func (l *layout) linkIs(name, version string) bool {
	if l.cur == nil {
		return false
	}
	t, err := l.cur.Readlink(name)
	return err == nil && t == linkTarget(name, version)
}

// switchLink points DIR/current/NAME at releases/NAME/VERSION atomically:
// a new link under a temporary name, renamed over the old one, then an
// fsync of DIR/current. Anything at DIR/current/NAME but a link is refused.
func (l *layout) switchLink(name, version string) error {
	if err := l.ensure(); err != nil {
		return err
	}
	fi, err := l.cur.Lstat(name)
	if err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return &RootError{Path: filepath.Join(l.path, dirCurrent, name), Reason: "is not a symbolic link"}
	}
	if err != nil && !errorsIsNotExist(err) {
		return err
	}
	tmp := "." + name + linkTempInfix + randomSuffix()
	if err := l.cur.Symlink(linkTarget(name, version), tmp); err != nil {
		return err
	}
	if err := l.cur.Rename(tmp, name); err != nil {
		l.cur.Remove(tmp)
		return err
	}
	return syncDir(l.cur, ".")
}
