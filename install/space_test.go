package install_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/airlock-dev/airlock/install"
)

// failingWriter fails with ENOSPC once more than room bytes were written in
// total, like a disk that fills up.
type failingWriter struct {
	w    io.Writer
	room *int64
}

func (f failingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > *f.room {
		n := int(*f.room)
		*f.room = 0
		f.w.Write(p[:n])
		return n, &os.PathError{Op: "write", Path: "staged file", Err: syscall.ENOSPC}
	}
	*f.room -= int64(len(p))
	return f.w.Write(p)
}

// TestDiskFullWhileStagingInjected fills the "disk" after 100 KiB of staged
// bytes: a clear error, staging removed, current and state untouched.
func TestDiskFullWhileStagingInjected(t *testing.T) {
	t.Parallel()
	root, canary := badRoot(t)
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	room := int64(100 << 10)
	expectUnchanged(t, root, canary, false, install.ErrNoSpace, func() error {
		_, err := installFile(t, root, v2, loadPolicy(t, "default"), func(o *install.Options) {
			o.WrapWriter = func(w io.Writer) io.Writer { return failingWriter{w: w, room: &room} }
		})
		var ne *install.NoSpaceError
		if !errors.As(err, &ne) || ne.Target == "" || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("want a *NoSpaceError naming the file: %v", err)
		}
		return err
	})
	// Once there is room again, the install completes.
	mustInstall(t, root, v2)
}

// mountTmpfs mounts a tmpfs of size at dir, when running as root where
// mount works; otherwise it skips.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (TestDiskFullWhileStagingInjected covers this path)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// TestDiskFullOnTmpfs installs onto a real 1 MiB file system: a release
// larger than the free space is refused before anything is written, naming
// need and availability; a disk that fills up during staging gives a clear
// error, removes the staging, and leaves current and the state untouched.
func TestDiskFullOnTmpfs(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	mountTmpfs(t, mnt, "1m")
	root := filepath.Join(mnt, "root")
	canary := t.TempDir()
	os.WriteFile(filepath.Join(canary, "x"), []byte("canary"), 0o644)
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))

	big := pack(t, release{version: "2.0.0", seq: 20, big: 2 << 20})
	expectUnchanged(t, root, canary, false, install.ErrNoSpace, func() error {
		_, err := installFile(t, root, big, loadPolicy(t, "default"))
		var ne *install.NoSpaceError
		if !errors.As(err, &ne) || ne.Target != "" || ne.Need <= ne.Available || ne.Available <= 0 {
			t.Errorf("want the pre-check's *NoSpaceError with need and availability: %v", err)
		}
		return err
	})

	// Fits at the start; a filler takes the rest once the first file is staged.
	fits := pack(t, release{version: "2.0.0", seq: 20, big: 300 << 10})
	filler := filepath.Join(mnt, "filler")
	expectUnchanged(t, root, canary, false, install.ErrNoSpace, func() error {
		filled := false
		_, err := installFile(t, root, fits, loadPolicy(t, "default"), func(o *install.Options) {
			o.Failpoint = func(name string) {
				if name == install.FailpointStaged && !filled {
					filled = true
					fillDisk(t, filler)
				}
			}
		})
		var ne *install.NoSpaceError
		if !errors.As(err, &ne) || ne.Target == "" || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("want a *NoSpaceError naming the file being staged: %v", err)
		}
		return err
	})
	os.Remove(filler)
	mustInstall(t, root, fits)
}

func fillDisk(t *testing.T, p string) {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
