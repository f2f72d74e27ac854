package install_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/airlock-dev/airlock/install"
)

func TestCheckFindsDrift(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("do not read"), 0o600)
	r1 := filepath.Join(root, "releases", "demo", "1.0.0")
	r2 := filepath.Join(root, "releases", "demo", "2.0.0")
	os.WriteFile(filepath.Join(r2, "etc", "app.yaml"), []byte("changed"), 0o640)                  // modified
	os.Remove(filepath.Join(r2, "bin", "run.sh"))                                                 // missing
	os.Chmod(filepath.Join(r2, "share", "copy.bin"), 0o4755)                                      // mode (setuid)
	os.WriteFile(filepath.Join(r2, "models", "m", "new.bin"), nil, 0o644)                         // extra file
	os.MkdirAll(filepath.Join(r2, "plugins", "x"), 0o755)                                         // extra directory
	os.Remove(filepath.Join(r2, "models", "m", "config.json"))                                    // replaced by a link:
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(r2, "models", "m", "config.json")) // type, not followed
	os.RemoveAll(filepath.Join(r1, "models", "m", "tokenizer"))                                   // a directory replaced
	os.Symlink(outside, filepath.Join(r1, "models", "m", "tokenizer"))                            // by a link: not followed
	os.Remove(filepath.Join(root, "current", "demo"))                                             // link drift
	os.Symlink("../releases/demo/1.0.0", filepath.Join(root, "current", "demo"))

	rep, err := install.Check(context.Background(), root)
	var de *install.DriftError
	if !errors.As(err, &de) || !errors.Is(err, install.ErrDrift) {
		t.Fatalf("err = %v", err)
	}
	got := map[string][]string{}
	for _, rc := range rep.Releases {
		for _, f := range rc.Findings {
			got[rc.Version] = append(got[rc.Version], f.Kind+" "+f.Path)
		}
		sort.Strings(got[rc.Version])
	}
	want := map[string][]string{
		"1.0.0": {"extra models/m/tokenizer", "type models/m/tokenizer"},
		"2.0.0": {"extra models/m/new.bin", "extra plugins", "link " + filepath.Join(root, "current", "demo"), "missing bin/run.sh", "mode share/copy.bin", "modified etc/app.yaml", "type models/m/config.json"},
	}
	for v, w := range want {
		if len(got[v]) != len(w) {
			t.Fatalf("%s: findings %q, want %q", v, got[v], w)
		}
		for i := range w {
			if got[v][i] != w[i] {
				t.Fatalf("%s: findings %q, want %q", v, got[v], w)
			}
		}
	}
	if rep.Findings != 9 {
		t.Fatalf("findings = %d", rep.Findings)
	}
	// Check changes nothing.
	before := snapshot(t, root)
	install.Check(context.Background(), root)
	if d := diffSnap(before, snapshot(t, root)); d != "" {
		t.Fatalf("check changed the root:\n%s", d)
	}
	// An empty or missing root: nothing to check.
	if rep, err := install.Check(context.Background(), t.TempDir()); err != nil || len(rep.Releases) != 0 {
		t.Fatalf("empty root: %+v %v", rep, err)
	}
	if _, err := install.Check(context.Background(), filepath.Join(root, "nope")); err == nil {
		t.Fatal("missing root accepted")
	}
}

// TestReleasesRemovedBehindAirlocksBack: the operator deleted DIR/releases.
// Check reports every release missing; status still answers.
func TestReleasesRemovedBehindAirlocksBack(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	os.RemoveAll(filepath.Join(root, "releases"))
	os.RemoveAll(filepath.Join(root, "current"))
	rep, err := install.Check(context.Background(), root)
	if !errors.Is(err, install.ErrDrift) || rep.Findings != 2 {
		t.Fatalf("check: %+v %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(root, "releases")); !os.IsNotExist(err) {
		t.Fatal("check created a directory")
	}
	st, err := install.ReadStatus(context.Background(), root)
	if err != nil || st.Bundles[0].Current != "1.0.0" {
		t.Fatalf("status: %+v %v", st, err)
	}
}
