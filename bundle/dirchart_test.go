package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/safepath"
)

// rawDirItem builds a directory artifact without NewDirItem's checks, as a
// hostile writer could, so the reader's checks are what the test sees.
func rawDirItem(t *testing.T, files memFiles, target string, layers []LocalLayer) Item {
	t.Helper()
	rec := Artifact{Kind: KindDir, Source: "conf/", Target: target}
	ann := map[string]string{AnnotationKind: KindDir, AnnotationTarget: target}
	it, err := localItem(rec, ArtifactTypeDir, emptyConfig(), emptyJSON, layers, ann, nil)
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	return *it
}

func dirLayer(files memFiles, p, mode, body string) LocalLayer {
	l := files.layer(p, []byte(body), MediaTypeOctetStream)
	l.Mode = mode
	return l
}

func TestDirectoryRoundTrip(t *testing.T) {
	t.Parallel()
	files := memFiles{}
	it, err := NewDirItem("conf/", "etc/app", "", []LocalLayer{
		dirLayer(files, "a.conf", "0644", "a"),
		dirLayer(files, "bin/run.sh", "0755", "#!/bin/sh\n"),
		dirLayer(files, "sub/b.conf", "0644", "a"), // same content as a.conf: one blob
	})
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	b := writeTest(t, "d", "1.0.0", []Item{*it})
	if err := readAll(b); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dirs := InspectDirs(h, true)
	if len(dirs) != 1 || dirs[0].Files != 3 || dirs[0].Bytes != 12 || dirs[0].List[1].Path != "bin/run.sh" || dirs[0].List[1].Mode != "0755" {
		t.Fatalf("inspect: %+v", dirs)
	}
}

func TestDirectoryReaderRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		target string
		layers func(memFiles) []LocalLayer
	}{
		{"traversal", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "../../etc/passwd", "0644", "x")} }},
		{"absolute", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "/etc/passwd", "0644", "x")} }},
		{"dot element", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "a/./b", "0644", "x")} }},
		{"backslash", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, `a\..\b`, "0644", "x")} }},
		{"empty path", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "", "0644", "x")} }},
		{"duplicate", "etc/app", func(f memFiles) []LocalLayer {
			return []LocalLayer{dirLayer(f, "a", "0644", "x"), dirLayer(f, "a", "0644", "y")}
		}},
		{"unsorted", "etc/app", func(f memFiles) []LocalLayer {
			return []LocalLayer{dirLayer(f, "b", "0644", "x"), dirLayer(f, "a", "0644", "y")}
		}},
		{"file inside file", "etc/app", func(f memFiles) []LocalLayer {
			return []LocalLayer{dirLayer(f, "a", "0644", "x"), dirLayer(f, "a/b", "0644", "y")}
		}},
		{"setuid mode", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "a", "4755", "x")} }},
		{"no mode", "etc/app", func(f memFiles) []LocalLayer { return []LocalLayer{dirLayer(f, "a", "", "x")} }},
		{"no files", "etc/app", func(f memFiles) []LocalLayer { return nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := memFiles{}
			// The writer re-reads what it wrote with the reader, which
			// must refuse it; nothing is left at out.
			w, err := NewWriter("d", "1.0.0", time.Unix(1767225600, 0), []Item{rawDirItem(t, files, c.target, c.layers(files))})
			if err == nil {
				err = w.Sign(context.Background(), StatementOptions{}, nil)
			}
			out := filepath.Join(t.TempDir(), "d.airlock")
			if err == nil {
				_, err = w.WriteFile(context.Background(), out, WriteOptions{})
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
				t.Fatalf("write and re-read: %v, want a malformed bundle", err)
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Fatal("a refused bundle was left at the output path")
			}
		})
	}
}

func TestChartItem(t *testing.T) {
	t.Parallel()
	files := memFiles{}
	cfg := []byte(`{"name":"web","version":"1.2.3+build.1","apiVersion":"v2"}`)
	archive := files.layer("", []byte("not really gzip, the reader does not open it"), "")
	prov := files.layer("", []byte("-----BEGIN PGP SIGNED MESSAGE-----\n"), "")
	it, err := NewChartItem(Artifact{Name: "web", Version: "1.2.3+build.1", Source: "charts/web"}, cfg, archive, &prov, map[string]string{"org.opencontainers.image.title": "web"})
	if err != nil {
		t.Fatal(err)
	}
	if it.RefName != "charts/web:1.2.3_build.1" {
		t.Fatalf("ref name %q", it.RefName)
	}
	it.Open = files.open
	b := writeTest(t, "c", "1.0.0", []Item{*it})
	if err := readAll(b); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	a := h.Manifest.Artifacts[0]
	if a.Kind != KindChart || a.Info().ImagePolicy || a.Info().Placement != PlaceChart || a.Describe() != "chart web 1.2.3+build.1" {
		t.Fatalf("record %+v", a)
	}
	c, err := h.Content(0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ChartContent(a, c.Manifests[0].Data, c.Configs[0].Data)
	if err != nil || l.Provenance == nil || l.Chart.Digest != archive.Digest {
		t.Fatalf("content %+v %v", l, err)
	}

	// A record that disagrees with the chart's config is refused.
	if _, err := NewChartItem(Artifact{Name: "other", Version: "1.2.3+build.1"}, cfg, archive, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("name mismatch: %v", err)
	}
	if _, err := NewChartItem(Artifact{Name: "Web", Version: "1.2.3"}, []byte(`{"name":"Web","version":"1.2.3"}`), archive, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("upper-case name: %v", err)
	}
	if _, err := NewChartItem(Artifact{Name: "web", Version: "1.2.3"}, []byte(`{"name":"web","name":"x","version":"1.2.3"}`), archive, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate key in config: %v", err)
	}
}

// FuzzDirFiles: no manifest panics the directory check, and whatever it
// accepts installs only at safe, distinct paths under the target.
func FuzzDirFiles(f *testing.F) {
	files := memFiles{}
	it, err := NewDirItem("conf/", "etc/app", "", []LocalLayer{dirLayer(files, "a.conf", "0644", "a"), dirLayer(files, "sub/b.conf", "0755", "b")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(it.Graph.Manifests[0].Data)
	f.Add([]byte(`{"artifactType":"application/vnd.airlock.directory.v1","layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":1,"annotations":{"org.opencontainers.image.title":"../x","dev.airlock.mode":"0644"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a := Artifact{Kind: KindDir, Target: "etc/app"}
		out, err := DirFiles(a, raw)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, df := range out {
			if safepath.Check(a.Target+"/"+df.Path) != nil || seen[df.Path] || !ValidMode(df.Mode) {
				t.Fatalf("accepted an unsafe or repeated file %+v", df)
			}
			seen[df.Path] = true
		}
		for p := range seen {
			for d := parentOf(p); d != ""; d = parentOf(d) {
				if seen[d] {
					t.Fatalf("accepted %q inside the file %q", p, d)
				}
			}
		}
	})
}
