package install_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/install"
)

// FuzzState feeds arbitrary bytes as DIR/.airlock/state.json to status and
// check: they never panic, and refuse anything but a consistent state with
// ErrState. Seeds: a real state and edits of it.
func FuzzState(f *testing.F) {
	root := f.TempDir()
	mustInstall(f, root, pack(f, release{version: "1.0.0", seq: 10}))
	real, err := os.ReadFile(filepath.Join(root, ".airlock", "state.json"))
	if err != nil {
		f.Fatal(err)
	}
	s := string(real)
	f.Add(real)
	f.Add([]byte(`{"schemaVersion":1,"bundles":{}}`))
	f.Add([]byte(`{"schemaVersion":1,"bundles":{"demo":null}}`))
	f.Add([]byte(strings.Replace(s, `"1.0.0"`, `".."`, -1)))
	f.Add([]byte(strings.Replace(s, `"etc/app.yaml"`, `"/etc/passwd"`, 1)))
	f.Add([]byte(strings.Replace(s, `"0640"`, `"4755"`, 1)))
	f.Add([]byte(strings.Replace(s, `"highestSequence": 10`, `"highestSequence": 18446744073709551615`, 1)))
	f.Add([]byte(s + "trailing"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, d := range []string{".airlock", "releases", "current"} {
			os.Mkdir(filepath.Join(dir, d), 0o755)
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
