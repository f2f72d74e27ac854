package pack

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// tempPrefix names the working directory of a pack, beside the output.
const tempPrefix = ".airlock-pack-"

// tempLock is the file in a pack's working directory that the pack holds
// locked (flock) while it runs; the lock goes with the process.
const tempLock = "lock"

// lockTemp locks the working directory dir for the life of this pack and
// returns what releases it.
func lockTemp(dir string) func() {
	f, err := os.OpenFile(filepath.Join(dir, tempLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return func() {}
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	return func() { f.Close() }
}

// removeStale removes what packs that were killed left behind: working
// directories in parent that no running pack holds, and temporary bundle
// files (or volumes) for output. A pack that is running holds its lock and
// is left alone; a directory without a lock file is left alone too.
func removeStale(parent, output string, log *slog.Logger) {
	entries, err := os.ReadDir(parent)
	if err == nil {
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
				continue
			}
			dir := filepath.Join(parent, e.Name())
			if stale(filepath.Join(dir, tempLock)) && os.RemoveAll(dir) == nil {
				log.Info("removed the working directory of a pack that did not finish", "dir", dir)
			}
		}
	}
	if output == "" {
		return
	}
	removed, _ := atomicfile.RemoveStale(output, true)
	for _, p := range removed {
		log.Info("removed a partial bundle of a pack that did not finish", "file", p)
	}
}

// stale reports whether the lock file p exists and no process holds it.
func stale(p string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
