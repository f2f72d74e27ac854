package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/airlock-dev/airlock/internal/sample"
)

// sampleChartArchive packages the sample release's chart with Helm's own
// packager and returns the .tgz bytes.
func sampleChartArchive(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := sample.WriteRelease(dir, "registry.example.com"); err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadDir(filepath.Join(dir, "charts", "demo-app"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chartRepoServer serves a classic chart repository on 127.0.0.1: an
// index.yaml listing demo-app 0.1.0 with digest, the archive, and the
// provenance file when prov is not nil.
func chartRepoServer(t *testing.T, archive, prov []byte, digest string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/stable/index.yaml", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "apiVersion: v1\nentries:\n  demo-app:\n  - name: demo-app\n    version: 0.2.0\n    urls: [demo-app-0.2.0.tgz]\n    digest: %s\n  - name: demo-app\n    version: 0.1.0\n    urls: [pkgs/demo-app-0.1.0.tgz]\n    digest: %q\ngenerated: \"2026-01-01T00:00:00Z\"\n", strings.Repeat("0", 64), digest)
	})
	mux.HandleFunc("/stable/pkgs/demo-app-0.1.0.tgz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive) })
	if prov != nil {
		mux.HandleFunc("/stable/pkgs/demo-app-0.1.0.tgz.prov", func(w http.ResponseWriter, r *http.Request) { w.Write(prov) })
	}
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func hexDigest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFetchChartFromClassicRepository(t *testing.T) {
	t.Parallel()
	archive := sampleChartArchive(t)
	prov := []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n...\n")
	srv := chartRepoServer(t, archive, prov, hexDigest(archive))
	host := strings.TrimPrefix(srv.URL, "http://")
	repos, err := NewChartRepos(ChartRepoOptions{InsecureHosts: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := repos.FetchChart(context.Background(), srv.URL+"/stable", "demo-app", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if string(dl.Archive) != string(archive) || string(dl.Provenance) != string(prov) || dl.Digest != "sha256:"+hexDigest(archive) || dl.URL != srv.URL+"/stable/pkgs/demo-app-0.1.0.tgz" {
		t.Fatalf("download: url %s digest %s, %d archive bytes, %d provenance bytes", dl.URL, dl.Digest, len(dl.Archive), len(dl.Provenance))
	}
}

func TestFetchChartRefusals(t *testing.T) {
	t.Parallel()
	archive := sampleChartArchive(t)
	cases := []struct {
		name, digest, version string
		insecure              bool
		want                  string
	}{
		{"digest mismatch", hexDigest([]byte("other")), "0.1.0", true, "the index says sha256:"},
		{"no digest", "", "0.1.0", true, "has no sha256 digest"},
		{"unknown version", hexDigest(archive), "9.9.9", true, "at versions 0.2.0, 0.1.0, not 9.9.9"},
		{"plain http not allowed", hexDigest(archive), "0.1.0", false, "--insecure-registry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := chartRepoServer(t, archive, nil, c.digest)
			var opts ChartRepoOptions
			if c.insecure {
				u, _ := url.Parse(srv.URL)
				opts.InsecureHosts = []string{u.Host}
			}
			repos, err := NewChartRepos(opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = repos.FetchChart(context.Background(), srv.URL+"/stable/", "demo-app", c.version)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
