package pack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
)

// writeTree writes files (slash path -> content) under dir; a path ending
// in "*" is written executable (the star is dropped).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "*") {
			p, mode = strings.TrimSuffix(p, "*"), 0o755
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// packSpec writes airlock.yaml into dir and packs it; it returns the
// bundle path, or the error.
func packSpec(t *testing.T, dir, yaml string, opts Options) (string, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadSpec(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(t.TempDir(), "out.airlock")
	opts.Output = out
	if opts.Created.IsZero() {
		opts.Created = time.Unix(1767225600, 0)
	}
	_, err = Pack(context.Background(), spec, opts)
	return out, err
}

// dirFiles reads the head of a bundle and returns its directory artifact's files.
func dirFiles(t *testing.T, path string) (bundle.Artifact, []bundle.DirFile) {
	t.Helper()
	h, err := bundle.ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range h.Manifest.Artifacts {
		if a.Kind == bundle.KindDir {
			files, err := bundle.DirFiles(a, h.Blobs[a.Digest])
			if err != nil {
				t.Fatal(err)
			}
			return a, files
		}
	}
	t.Fatal("no directory artifact")
	return bundle.Artifact{}, nil
}

func TestPackDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"config/app.yaml":          "a: 1\n",
		"config/conf.d/10-x.conf":  "x\n",
		"config/conf.d/20-y.conf":  "y\n",
		"config/conf.d/same.conf":  "x\n", // same content as 10-x.conf
		"config/bin/reload.sh*":    "#!/bin/sh\n",
		"config/notes.bak":         "old\n",
		"config/.git/HEAD":         "ref\n",
		"config/deep/a/b/c/d.json": "{}",
	})
	yaml := "name: t\nversion: 1.0.0\nfiles:\n  - source: config/\n    target: etc/payments/\n    exclude: ['*.bak', .git]\n"
	out, err := packSpec(t, dir, yaml, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, files := dirFiles(t, out)
	if a.Target != "etc/payments" || a.Source != "config/" || a.Mode != "" {
		t.Fatalf("record %+v", a)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path+" "+f.Mode)
	}
	want := []string{"app.yaml 0644", "bin/reload.sh 0755", "conf.d/10-x.conf 0644", "conf.d/20-y.conf 0644", "conf.d/same.conf 0644", "deep/a/b/c/d.json 0644"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("files\n got %v\nwant %v", got, want)
	}
	// Reproducible: the same tree packs to the same bytes.
	out2, err := packSpec(t, dir, yaml, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(out)
	b2, _ := os.ReadFile(out2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("packing the same directory twice gave different bundles")
	}

	// include keeps only matching files; mode applies to all of them.
	out, err = packSpec(t, dir, "name: t\nversion: 1.0.0\nfiles:\n  - source: config\n    target: etc/p\n    mode: \"0600\"\n    include: ['*.conf', bin/*]\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, files = dirFiles(t, out)
	if a.Mode != "0600" || len(files) != 4 {
		t.Fatalf("include: %+v %+v", a, files)
	}
	for _, f := range files {
		if f.Mode != "0600" {
			t.Fatalf("mode: %+v", f)
		}
	}
}

func TestPackDirectoryRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T, src string)
		extra string
		want  string
	}{
		{"symlink", func(t *testing.T, src string) {
			if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
		}, "", "link is a symbolic link"},
		{"symlink outside with followSymlinks", func(t *testing.T, src string) {
			if err := os.Symlink("/etc/hostname", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
		}, "    followSymlinks: true\n", "outside the source directory"},
		{"fifo", func(t *testing.T, src string) {
			if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", "pipe is a named pipe"},
		{"empty after exclude", func(t *testing.T, src string) {}, "    exclude: ['*']\n", "holds no files"},
		{"include on a file", nil, "", "apply only to a directory source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"src/a.txt": "a"})
			source := "src"
			if c.setup != nil {
				c.setup(t, filepath.Join(dir, "src"))
			} else {
				source, c.extra = "src/a.txt", "    include: ['*.txt']\n"
			}
			_, err := packSpec(t, dir, "name: t\nversion: 1.0.0\nfiles:\n  - source: "+source+"\n    target: etc/x\n"+c.extra, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if !errors.Is(err, ErrSource) {
				t.Fatalf("err %v is not ErrSource", err)
			}
		})
	}
}

func TestPackDirectoryFollowsLinksInside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"src/real/a.txt": "a"})
	if err := os.Symlink("real/a.txt", filepath.Join(dir, "src", "alias.txt")); err != nil {
		t.Fatal(err)
	}
	out, err := packSpec(t, dir, "name: t\nversion: 1.0.0\nfiles:\n  - source: src\n    target: etc/x\n    followSymlinks: true\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, files := dirFiles(t, out)
	if len(files) != 2 || files[0].Path != "alias.txt" || files[0].Digest != files[1].Digest {
		t.Fatalf("files %+v", files)
	}
}

func TestParseSpecDirectoryAndPlatforms(t *testing.T) {
	t.Parallel()
	s, err := ParseSpec("airlock.yaml", []byte("name: a\nversion: 1.0.0\nplatforms: [linux/amd64]\nfiles:\n  - source: conf/\n    target: etc/a/\n    include: ['*.yaml']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Files[0].target() != "etc/a" || s.Platforms[0] != "linux/amd64" {
		t.Fatalf("parsed %+v", s)
	}
	for _, bad := range []string{
		"name: a\nversion: 1.0.0\nplatforms: [linux]\nfiles: [{source: a, target: b}]\n",
		"name: a\nversion: 1.0.0\nfiles: [{source: a, target: b, include: ['[']}]\n",
		"name: a\nversion: 1.0.0\nfiles: [{source: a, target: b/}, {source: c, target: b/x}]\n",
	} {
		if _, err := ParseSpec("airlock.yaml", []byte(bad)); !errors.Is(err, ErrSpec) {
			t.Errorf("%q: err = %v, want ErrSpec", bad, err)
		}
	}
}
