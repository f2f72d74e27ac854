package pack

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
)

// sampleChartDir writes the sample release and returns its directory; the
// chart is at charts/demo-app.
func sampleChartDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := sample.WriteRelease(dir, "registry.example.com"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chartOf returns the chart artifact of a bundle and its archive and
// provenance digests.
func chartOf(t *testing.T, path string) (bundle.Artifact, *bundle.ChartLayers) {
	t.Helper()
	h, err := bundle.ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range h.Manifest.Artifacts {
		if a.Kind == bundle.KindChart {
			c, err := h.Content(i)
			if err != nil {
				t.Fatal(err)
			}
			l, err := bundle.ChartContent(a, c.Manifests[0].Data, c.Configs[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			return a, l
		}
	}
	t.Fatal("no chart artifact")
	return bundle.Artifact{}, nil
}

func TestPackLocalChartDirectory(t *testing.T) {
	t.Parallel()
	dir := sampleChartDir(t)
	yaml := "name: t\nversion: 1.0.0\ncharts:\n  - source: charts/demo-app\n    name: demo-app\n"
	out1, err := packSpec(t, dir, yaml, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Touch every chart file: packaging stamps them with the bundle's
	// creation time, so the bundle is the same.
	later := time.Now().Add(time.Hour)
	filepath.Walk(filepath.Join(dir, "charts"), func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, later, later) })
	out2, err := packSpec(t, dir, yaml, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(out1)
	b2, _ := os.ReadFile(out2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("packing the same chart directory twice gave different bundles")
	}
	a, l := chartOf(t, out1)
	if a.Name != "demo-app" || a.Version != "0.1.0" || a.Source != "charts/demo-app" || l.Provenance != nil {
		t.Fatalf("record %+v layers %+v", a, l)
	}
}

func TestPackLocalChartArchiveWithProvenance(t *testing.T) {
	t.Parallel()
	dir := sampleChartDir(t)
	archive, _, err := localChart(filepath.Join(dir, "charts", "demo-app"), time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-app-0.1.0.tgz"), archive, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-app-0.1.0.tgz.prov"), []byte("-----BEGIN PGP SIGNED MESSAGE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := packSpec(t, dir, "name: t\nversion: 1.0.0\ncharts:\n  - source: demo-app-0.1.0.tgz\n    version: 0.1.0\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, l := chartOf(t, out)
	if l.Provenance == nil || l.Chart.Size != int64(len(archive)) {
		t.Fatalf("layers %+v", l)
	}
	// The archive is carried unchanged and still loads with Helm.
	if _, err := loader.LoadArchive(bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}

	_, err = packSpec(t, dir, "name: t\nversion: 1.0.0\ncharts:\n  - source: demo-app-0.1.0.tgz\n    version: 0.2.0\n", Options{})
	if err == nil || !strings.Contains(err.Error(), `the chart's version is "0.1.0", airlock.yaml says "0.2.0"`) {
		t.Fatalf("version mismatch: %v", err)
	}
}

func TestChartImagesFromTemplates(t *testing.T) {
	t.Parallel()
	dir := sampleChartDir(t)
	ch, err := loader.LoadDir(filepath.Join(dir, "charts", "demo-app"))
	if err != nil {
		t.Fatal(err)
	}
	spec := &Spec{Path: filepath.Join(dir, "airlock.yaml")}
	got, err := chartImages(spec, ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"registry.example.com/demo/api:1.0", "registry.example.com/demo/worker:1.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("default values: %v, want %v", got, want)
	}
	// Values files are merged over the defaults in order.
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("registry: mirror.site:5000\nworker:\n  image: demo/worker:2.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("api:\n  image: demo/api:3.0\n"), 0o644)
	got, err = chartImages(spec, ch, []string{"a.yaml", "b.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"mirror.site:5000/demo/api:3.0", "mirror.site:5000/demo/worker:2.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("with values: %v, want %v", got, want)
	}
	// A template that does not render is an error naming it.
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("api: null\n"), 0o644)
	if _, err := chartImages(spec, ch, []string{"bad.yaml"}); err == nil || !strings.Contains(err.Error(), "deployment.yaml") {
		t.Fatalf("bad values: %v", err)
	}
}

func TestParseSpecCharts(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"name: a\nversion: 1.0.0\ncharts: [{}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{source: x, repo: 'https://c.example.com', name: a, version: 1.0.0}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{repo: 'https://c.example.com', name: a}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{repo: 'ftp://c.example.com', name: a, version: 1.0.0}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{source: 'oci://r.example.com/charts/a'}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{source: x, name: Bad_Name}]\n",
		"name: a\nversion: 1.0.0\ncharts: [{source: x, images: {values: [v.yaml]}}]\n",
	} {
		if _, err := ParseSpec("airlock.yaml", []byte(bad)); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	if _, err := ParseSpec("airlock.yaml", []byte("name: a\nversion: 1.0.0\ncharts:\n  - source: oci://r.example.com/charts/a:1.2.3\n  - repo: https://c.example.com/stable\n    name: b\n    version: 2.0.0\n    images: {fromChart: true, values: [v.yaml]}\n")); err != nil {
		t.Fatal(err)
	}
}

func TestPackChartMissingDependency(t *testing.T) {
	t.Parallel()
	dir := sampleChartDir(t)
	p := filepath.Join(dir, "charts", "demo-app", "Chart.yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, []byte("dependencies:\n  - name: redis\n    version: 20.6.2\n    repository: https://charts.example.com\n")...), 0o644)
	_, err := packSpec(t, dir, "name: t\nversion: 1.0.0\ncharts:\n  - source: charts/demo-app\n", Options{})
	if err == nil || !strings.Contains(err.Error(), "depends on redis, which it does not contain; run helm dependency build") {
		t.Fatalf("err = %v", err)
	}
}
