package pack

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestPackRemovesWhatKilledPacksLeft: beside its output, pack removes the
// working directories and partial bundles (and volumes) of packs that were
// killed, and leaves a running pack's alone.
func TestPackRemovesWhatKilledPacksLeft(t *testing.T) {
	t.Parallel()
	src, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "app.yaml"), []byte("a: 1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte("name: s\nversion: 1.0.0\nfiles:\n  - source: app.yaml\n    target: etc/app.yaml\n"), 0o644)
	dead := filepath.Join(out, tempPrefix+"dead")
	live := filepath.Join(out, tempPrefix+"live")
	for _, d := range []string{dead, live} {
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, tempLock), nil, 0o600)
		os.WriteFile(filepath.Join(d, "spool"), make([]byte, 1<<20), 0o600)
	}
	held, err := os.Open(filepath.Join(live, tempLock))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	partial := []string{".s.airlock.tmp-1", ".s.airlock.002.tmp-2"}
	for _, n := range partial {
		os.WriteFile(filepath.Join(out, n), make([]byte, 1<<20), 0o644)
	}
	spec, err := LoadSpec(filepath.Join(src, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pack(context.Background(), spec, Options{Output: filepath.Join(out, "s.airlock"), Created: time.Unix(1767225600, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range append([]string{dead}, partial...) {
		if _, err := os.Stat(filepath.Join(out, filepath.Base(gone))); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(live, "spool")); err != nil {
		t.Errorf("the running pack's directory was touched: %v", err)
	}
}
