package source_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/source"
)

// faultyRegistry is a proxy on 127.0.0.1 in front of a registry that
// serves the blob at path through fault: the real bytes in, what the client
// gets out. fault may also cut the connection (it returns the bytes to
// send and whether to die after them).
func faultyRegistry(t *testing.T, upstream, path string, fault func([]byte) ([]byte, bool)) string {
	t.Helper()
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != path {
			proxy.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get("http://" + upstream + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		real, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		send, die := fault(real)
		// The length promised is the real one: a registry that dies
		// mid-layer has announced the whole blob.
		w.Header().Set("Content-Length", strconv.Itoa(len(real)))
		w.Header().Set("Docker-Content-Digest", resp.Header.Get("Docker-Content-Digest"))
		w.WriteHeader(http.StatusOK)
		w.Write(send)
		if die {
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestPackFromFaultyRegistry packs an image from a registry that, for one
// layer, sends other bytes of the right length, or dies half-way through
// it: pack fails naming the image and the layer, leaves nothing at the
// output or in its temporary directory, and the first case is an
// integrity error.
func TestPackFromFaultyRegistry(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	imgs := sampleImages(t)
	worker := imgs[1]
	if err := sample.Push(t.Context(), reg.Host, []sample.Image{worker}); err != nil {
		t.Fatal(err)
	}
	m, err := worker.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		layer int
		fault func([]byte) ([]byte, bool)
		is    error
	}{
		{"wrong bytes for the shared base layer", 0, func(b []byte) ([]byte, bool) {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0x40
			return b, false
		}, checked.ErrDigestMismatch},
		{"dies mid-layer", 1, func(b []byte) ([]byte, bool) { return b[:len(b)/2], true }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			layer := m.Layers[c.layer].Digest.String()
			host := faultyRegistry(t, reg.Host, "/v2/"+worker.Repo+"/blobs/"+layer, c.fault)
			ref := host + "/" + worker.Ref()
			dir, tmp, outDir := t.TempDir(), t.TempDir(), t.TempDir()
			yaml := "name: demo\nversion: 1.0.0\nimages:\n  - ref: " + ref + "\n"
			if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			spec, err := pack.LoadSpec(filepath.Join(dir, "airlock.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(outDir, "demo.airlock")
			_, err = pack.Pack(t.Context(), spec, pack.Options{
				Output: out, TempDir: tmp, Created: time.Unix(1767225600, 0),
				Images: source.NewPuller(source.PullOptions{}),
			})
			if err == nil {
				t.Fatal("pack succeeded")
			}
			t.Log(err)
			var se *pack.SourceError
			if !errors.As(err, &se) || se.Artifact != "image "+ref {
				t.Errorf("the error does not name image %s: %v", ref, err)
			}
			if !strings.Contains(err.Error(), layer) {
				t.Errorf("the error does not name layer %s: %v", layer, err)
			}
			if c.is != nil && (!errors.Is(err, c.is) || !errors.Is(err, bundle.ErrIntegrity)) {
				t.Errorf("the error is not an integrity error (%v): %v", c.is, err)
			}
			for _, d := range []string{outDir, tmp} {
				if left, _ := os.ReadDir(d); len(left) != 0 {
					t.Errorf("%d entries left in %s after a failed pack", len(left), d)
				}
			}
		})
	}
}
