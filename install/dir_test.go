package install_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	packer "github.com/airlock-dev/airlock/pack"
)

// packDirRelease writes an unsigned bundle carrying one directory tree.
func packDirRelease(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for rel, body := range map[string]string{"conf/a.conf": "a\n", "conf/sub/b.conf": "b\n", "conf/sub/c.conf": "c\n"} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := packer.ParseSpec(filepath.Join(dir, "airlock.yaml"), []byte("name: demo\nversion: 3.0.0\nfiles:\n  - {source: conf/, target: etc/conf/}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dir.airlock")
	if _, err := packer.Pack(context.Background(), spec, packer.Options{Output: out, Created: created, Statement: bundle.StatementOptions{Sequence: 30}}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBadDirectoryBundles: a signed bundle whose directory names a path
// outside its target, or a file twice, or a setuid mode, is refused before
// anything is written; the root, the state and a canary outside stay as
// they were.
func TestBadDirectoryBundles(t *testing.T) {
	t.Parallel()
	unsigned := packDirRelease(t)
	setLayer := func(ms map[int]map[string]any, m *bundle.Manifest, i int, key, value string) {
		layers(ms[artifactIndex(m, bundle.KindDir, "etc/conf")])[i]["annotations"].(map[string]any)[key] = value
	}
	cases := []struct {
		name string
		edit func(m *bundle.Manifest, ms map[int]map[string]any)
	}{
		{"path with ..", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setLayer(ms, m, 0, bundle.AnnotationTitle, "../../../../canary/etc/app.yaml")
		}},
		{"absolute path", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setLayer(ms, m, 0, bundle.AnnotationTitle, "/etc/passwd")
		}},
		{"same path twice", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setLayer(ms, m, 2, bundle.AnnotationTitle, "sub/b.conf")
		}},
		{"setuid mode", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setLayer(ms, m, 1, bundle.AnnotationMode, "4755")
		}},
		{"target escapes", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindDir, "etc/conf"), "../etc")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			b := craft(t, unsigned, tc.edit)
			expectUnchanged(t, root, canary, true, bundle.ErrMalformed, func() error {
				_, err := installFile(t, root, b, loadPolicy(t, "default"))
				return err
			})
		})
	}
}

// TestInstallDirectory: the tree is installed with its modes and recorded
// file by file, so Check covers each file.
func TestInstallDirectory(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	b := craft(t, packDirRelease(t), func(*bundle.Manifest, map[int]map[string]any) {})
	res, err := installFile(t, root, b, loadPolicy(t, "default"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 {
		t.Fatalf("installed %d files, want 3", res.Files)
	}
	for _, p := range []string{"a.conf", "sub/b.conf", "sub/c.conf"} {
		if _, err := os.Stat(filepath.Join(res.ReleaseDir, "etc", "conf", filepath.FromSlash(p))); err != nil {
			t.Fatal(err)
		}
	}
}
