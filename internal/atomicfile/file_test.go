package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitAndAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("after Abort: %q", b)
	}
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("after WriteFile: %q", b)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
}

// TestRemoveStale: temporary files left by killed writers (no lock held)
// are removed, for the file and, with volumes, its numbered volumes; a
// temporary file being written, and other files, are left alone.
func TestRemoveStale(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "out.airlock")
	live, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	left := []string{".out.airlock.tmp-111", ".out.airlock.001.tmp-222", ".out.airlock.0012.tmp-333"}
	kept := []string{".other.airlock.tmp-444", "out.airlock.tmp-555", ".out.airlock.x.tmp-666"}
	for _, n := range append(append([]string{}, left...), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStale(p, false)
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != left[0] {
		t.Fatalf("RemoveStale(volumes=false) removed %v, %v; want %s only", removed, err, left[0])
	}
	removed, err = RemoveStale(p, true)
	if err != nil || len(removed) != 2 {
		t.Fatalf("RemoveStale(volumes=true) removed %v, %v; want the two volume leftovers", removed, err)
	}
	for _, n := range append(kept, filepath.Base(live.TempName())) {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}
