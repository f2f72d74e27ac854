package install

import (
	"os"
	"syscall"
)

// available returns the bytes an unprivileged user may still write on the
// file system of directory name in r (statfs f_bavail * f_bsize).
func available(r *os.Root, name string) (int64, error) {
	d, err := r.Open(name)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(d.Fd()), &st); err != nil {
		return 0, err
	}
	n := uint64(st.Bavail) * uint64(st.Bsize)
	if n > 1<<62 {
		n = 1 << 62
	}
	return int64(n), nil
}
