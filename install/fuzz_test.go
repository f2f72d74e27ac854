package install_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/install"
)

// FuzzState feeds arbitrary bytes as DIR/.airlock/state.json to status and
// check: they never panic, and refuse anything but a consistent state with
// ErrState. Seeds: testdata/fuzz/FuzzState (a state two real installs
// wrote, with its signed envelopes) and edits of it. The setup packs and
// installs nothing (each fuzz worker runs it), and every run reuses one
// root per worker, rebuilt empty, so the time goes to the inputs.
func FuzzState(f *testing.F) {
	seed, err := os.ReadFile("testdata/fuzz/FuzzState/two-releases-installed")
	if err != nil {
		f.Fatal(err)
	}
	// The corpus file holds a Go-quoted []byte; take the state back out.
	raw := strings.TrimSuffix(strings.TrimPrefix(string(seed), "go test fuzz v1\n[]byte("), ")\n")
	s, err := strconv.Unquote(raw)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"schemaVersion":1,"bundles":{"demo":null}}`))
	f.Add([]byte(strings.Replace(s, `"1.0.0"`, `".."`, -1)))
	f.Add([]byte(strings.Replace(s, `"etc/app.yaml"`, `"/etc/passwd"`, 1)))
	f.Add([]byte(strings.Replace(s, `"0640"`, `"4755"`, 1)))
	f.Add([]byte(strings.Replace(s, `"highestSequence": 20`, `"highestSequence": 18446744073709551615`, 1)))
	f.Add([]byte(s + "trailing"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Start from an empty root (the lock file may stay).
		for _, d := range []string{".airlock", "releases", "current"} {
			p := filepath.Join(dir, d)
			ents, err := os.ReadDir(p)
			if errors.Is(err, fs.ErrNotExist) {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if d == ".airlock" && e.Name() == "lock" {
					continue
				}
				if err := os.RemoveAll(filepath.Join(p, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, ".airlock", "state.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, serr := install.ReadStatus(context.Background(), dir)
		_, cerr := install.Check(context.Background(), dir)
		if serr != nil && !errors.Is(serr, install.ErrState) {
			t.Fatalf("status: %v", serr)
		}
		if (serr == nil) != (cerr == nil || errors.Is(cerr, install.ErrDrift)) {
			t.Fatalf("status and check disagree: %v / %v", serr, cerr)
		}
	})
}
