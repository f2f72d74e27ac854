package registry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/registry"
)

// srvTimeout bounds how long a test waits for a Server to start or stop.
const srvTimeout = 15 * time.Second

// srvRunning is a Server started by a test.
type srvRunning struct {
	host string // 127.0.0.1:PORT
	stop func() // cancel Serve's ctx and wait for it to return nil
}

// srvQuietOnce lowers the distribution library's logging, which goes to the
// process-wide logrus logger (as cmd/airlock does for `airlock serve`).
var srvQuietOnce sync.Once

// srvStart runs a Server on 127.0.0.1:0 with opts until the test ends
// (or stop is called).
func srvStart(t *testing.T, opts registry.Options) srvRunning {
	t.Helper()
	srvQuietOnce.Do(func() { logrus.SetLevel(logrus.WarnLevel) })
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := registry.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, func(addr string) { ready <- addr }) }()
	var host string
	select {
	case host = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Serve returned before it was ready: %v", err)
	case <-time.After(srvTimeout):
		cancel()
		t.Fatalf("Serve not ready within %v", srvTimeout)
	}
	stopped := false
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		// Connections the clients dialed but never used count as new, not
		// idle, for the server, which waits up to 5 s for them to speak.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		remote.DefaultTransport.(*http.Transport).CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve after cancel: %v", err)
			}
		case <-time.After(srvTimeout):
			t.Fatalf("Serve did not return within %v of cancel", srvTimeout)
		}
	}
	t.Cleanup(stop)
	return srvRunning{host: host, stop: stop}
}

// srvPushSamples pushes the sample images to host and returns their root
// digests by "repo:tag".
func srvPushSamples(t *testing.T, host string, opts ...remote.Option) map[string]v1.Hash {
	t.Helper()
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), host, imgs, opts...); err != nil {
		t.Fatalf("push samples: %v", err)
	}
	out := map[string]v1.Hash{}
	for _, img := range imgs {
		var d v1.Hash
		if img.Index != nil {
			d, err = img.Index.Digest()
		} else {
			d, err = img.Image.Digest()
		}
		if err != nil {
			t.Fatal(err)
		}
		out[img.Ref()] = d
	}
	return out
}

// srvEmptyJSON is the OCI empty descriptor's content.
var srvEmptyJSON = []byte("{}")

const (
	srvEmptyType     = "application/vnd.oci.empty.v1+json"
	srvSBOMType      = "application/vnd.example.sbom.v1+json"
	srvSigConfigType = "application/vnd.example.signature.config.v1+json"
)

// srvReferrer builds an OCI 1.1 image manifest whose subject is subject,
// with config, an annotation "org.example.note" = note, and artifactType
// when it is not empty.
func srvReferrer(t *testing.T, subject v1.Descriptor, artifactType string, config v1.Descriptor, note string) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"config":        config,
		"layers": []v1.Descriptor{{
			MediaType: srvEmptyType, Digest: srvSHA256(srvEmptyJSON), Size: int64(len(srvEmptyJSON)),
		}},
		"subject":     subject,
		"annotations": map[string]string{"org.example.note": note},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func srvSHA256(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// srvRaw is a remote.Taggable of fixed bytes.
type srvRaw struct {
	body []byte
	mt   types.MediaType
}

func (r srvRaw) RawManifest() ([]byte, error)        { return r.body, nil }
func (r srvRaw) MediaType() (types.MediaType, error) { return r.mt, nil }

// srvDo sends one request and returns the response with its body read.
func srvDo(t *testing.T, client *http.Client, method, u string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp, b
}

// srvReferrersOf fetches the referrers index of repo@subject, with the query
// string q ("" for none).
func srvReferrersOf(t *testing.T, host, repo string, subject v1.Hash, q string) (*http.Response, v1.IndexManifest) {
	t.Helper()
	u := fmt.Sprintf("http://%s/v2/%s/referrers/%s%s", host, repo, subject, q)
	resp, body := srvDo(t, http.DefaultClient, http.MethodGet, u, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
		t.Errorf("GET %s: Content-Type %q", u, ct)
	}
	if !bytes.Contains(body, []byte(`"manifests":[`)) {
		t.Errorf("GET %s: manifests is not a JSON array: %s", u, body)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex {
		t.Errorf("GET %s: index header %d %q", u, idx.SchemaVersion, idx.MediaType)
	}
	return resp, idx
}

// TestServeRegistry pushes the sample images and two referrers, checks
// every read path (tag, digest, HEAD, Range, referrers, skopeo), restarts
// the server on the same directory and checks again.
func TestServeRegistry(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // created by New
	srv := srvStart(t, registry.Options{Data: dir})
	host := srv.host
	ctx := context.Background()

	roots := srvPushSamples(t, host)
	worker, err := name.NewTag(host + "/demo/worker:1.0")
	if err != nil {
		t.Fatal(err)
	}
	workerDesc, err := remote.Head(worker)
	if err != nil {
		t.Fatalf("HEAD worker: %v", err)
	}

	// Two referrers of demo/worker:1.0: one with artifactType (pushed with
	// remote.Put), one typed by its config (pushed with a raw PUT, to see
	// the OCI-Subject header).
	repo := worker.Context()
	if err := remote.WriteLayer(repo, static.NewLayer(srvEmptyJSON, srvEmptyType)); err != nil {
		t.Fatalf("push empty blob: %v", err)
	}
	sigConfig := []byte(`{"signer":"test"}`)
	if err := remote.WriteLayer(repo, static.NewLayer(sigConfig, srvSigConfigType)); err != nil {
		t.Fatalf("push config blob: %v", err)
	}
	subject := v1.Descriptor{MediaType: workerDesc.MediaType, Digest: workerDesc.Digest, Size: workerDesc.Size}
	emptyConfig := v1.Descriptor{MediaType: srvEmptyType, Digest: srvSHA256(srvEmptyJSON), Size: 2, Data: srvEmptyJSON}
	sbom := srvReferrer(t, subject, srvSBOMType, emptyConfig, "sbom")
	sbomDigest := srvSHA256(sbom)
	if err := remote.Put(repo.Digest(sbomDigest.String()), srvRaw{sbom, types.OCIManifestSchema1}); err != nil {
		t.Fatalf("push sbom referrer: %v", err)
	}
	sig := srvReferrer(t, subject, "", v1.Descriptor{MediaType: srvSigConfigType, Digest: srvSHA256(sigConfig), Size: int64(len(sigConfig))}, "sig")
	sigDigest := srvSHA256(sig)
	resp, body := srvDo(t, http.DefaultClient, http.MethodPut,
		fmt.Sprintf("http://%s/v2/demo/worker/manifests/%s", host, sigDigest),
		http.Header{"Content-Type": {string(types.OCIManifestSchema1)}}, sig)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT signature referrer: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("OCI-Subject"); got != workerDesc.Digest.String() {
		t.Errorf("OCI-Subject = %q, want %s", got, workerDesc.Digest)
	}
	// A manifest without subject gets no OCI-Subject header.
	resp, _ = srvDo(t, http.DefaultClient, http.MethodPut,
		fmt.Sprintf("http://%s/v2/demo/worker/manifests/plain", host),
		http.Header{"Content-Type": {string(types.OCIManifestSchema1)}},
		srvJSON(t, map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "config": emptyConfig, "layers": []any{}}))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("OCI-Subject") != "" {
		t.Errorf("PUT plain manifest: %d, OCI-Subject %q", resp.StatusCode, resp.Header.Get("OCI-Subject"))
	}

	want := map[v1.Hash]string{sbomDigest: srvSBOMType, sigDigest: srvSigConfigType}
	check := func(t *testing.T, host string) {
		// Pull by tag and by digest; validate reads every blob and checks
		// its digest.
		for ref, d := range roots {
			tag, err := name.NewTag(host + "/" + ref)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(tag)
			if err != nil {
				t.Fatalf("pull %s: %v", tag, err)
			}
			if desc.Digest != d {
				t.Errorf("%s resolves to %s, want %s", tag, desc.Digest, d)
			}
			byDigest := tag.Context().Digest(d.String())
			desc, err = remote.Get(byDigest)
			if err != nil {
				t.Fatalf("pull %s: %v", byDigest, err)
			}
			if desc.MediaType.IsIndex() {
				idx, err := desc.ImageIndex()
				if err != nil {
					t.Fatal(err)
				}
				err = validate.Index(idx)
				if err != nil {
					t.Errorf("validate %s: %v", byDigest, err)
				}
			} else {
				img, err := desc.Image()
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Image(img); err != nil {
					t.Errorf("validate %s: %v", byDigest, err)
				}
			}
		}

		// Referrers, through go-containerregistry's client and raw HTTP.
		repo := srvTag(t, host+"/demo/worker:1.0").Context()
		subj, err := name.NewDigest(host + "/demo/worker@" + workerDesc.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Referrers(subj)
		if err != nil {
			t.Fatalf("remote.Referrers: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		got := map[v1.Hash]string{}
		for _, d := range im.Manifests {
			got[d.Digest] = d.ArtifactType
			if d.MediaType != types.OCIManifestSchema1 || d.Size <= 0 || d.Annotations["org.example.note"] == "" {
				t.Errorf("referrer descriptor %+v", d)
			}
		}
		if len(got) != 2 || got[sbomDigest] != want[sbomDigest] || got[sigDigest] != want[sigDigest] {
			t.Errorf("referrers = %v, want %v", got, want)
		}
		resp, filtered := srvReferrersOf(t, host, "demo/worker", workerDesc.Digest, "?artifactType="+url.QueryEscape(srvSBOMType))
		if len(filtered.Manifests) != 1 || filtered.Manifests[0].Digest != sbomDigest || filtered.Manifests[0].Size != int64(len(sbom)) {
			t.Errorf("filtered referrers = %+v", filtered.Manifests)
		}
		if h := resp.Header.Get("OCI-Filters-Applied"); h != "artifactType" {
			t.Errorf("OCI-Filters-Applied = %q", h)
		}
		if _, none := srvReferrersOf(t, host, "demo/worker", roots["demo/api:1.0"], ""); len(none.Manifests) != 0 {
			t.Errorf("referrers of an image without any: %+v", none.Manifests)
		}
		if _, none := srvReferrersOf(t, host, "no/such-repo", workerDesc.Digest, ""); len(none.Manifests) != 0 {
			t.Errorf("referrers in a missing repository: %+v", none.Manifests)
		}
		// No referrers tag fallback was written: the registry answered the API.
		tags, err := remote.List(repo)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(tags)
		if !slices.Equal(tags, []string{"1.0", "plain"}) {
			t.Errorf("tags of demo/worker = %v", tags)
		}
	}
	check(t, host)

	t.Run("HEAD", func(t *testing.T) {
		u := fmt.Sprintf("http://%s/v2/demo/worker/manifests/1.0", host)
		resp, body := srvDo(t, http.DefaultClient, http.MethodHead, u,
			http.Header{"Accept": {string(types.OCIManifestSchema1)}}, nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Fatalf("HEAD manifest: %d, %d body bytes", resp.StatusCode, len(body))
		}
		if resp.Header.Get("Docker-Content-Digest") != workerDesc.Digest.String() || resp.ContentLength != workerDesc.Size {
			t.Errorf("HEAD manifest: digest %q length %d, want %s %d", resp.Header.Get("Docker-Content-Digest"), resp.ContentLength, workerDesc.Digest, workerDesc.Size)
		}
		layer := srvWorkerLayer(t, host)
		u = fmt.Sprintf("http://%s/v2/demo/worker/blobs/%s", host, layer.digest)
		resp, body = srvDo(t, http.DefaultClient, http.MethodHead, u, nil, nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(layer.data)) {
			t.Errorf("HEAD blob: %d, length %d, want %d", resp.StatusCode, resp.ContentLength, len(layer.data))
		}
		resp, _ = srvDo(t, http.DefaultClient, http.MethodHead, fmt.Sprintf("http://%s/v2/demo/worker/manifests/nope", host), nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD missing manifest: %d", resp.StatusCode)
		}
	})

	t.Run("Range", func(t *testing.T) {
		layer := srvWorkerLayer(t, host)
		u := fmt.Sprintf("http://%s/v2/demo/worker/blobs/%s", host, layer.digest)
		for _, rg := range []struct{ from, to int }{{0, 0}, {10, 99}, {len(layer.data) - 5, len(layer.data) - 1}} {
			resp, body := srvDo(t, http.DefaultClient, http.MethodGet, u,
				http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", rg.from, rg.to)}}, nil)
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("Range %d-%d: status %d", rg.from, rg.to, resp.StatusCode)
			}
			if !bytes.Equal(body, layer.data[rg.from:rg.to+1]) {
				t.Errorf("Range %d-%d: wrong bytes", rg.from, rg.to)
			}
			if want := fmt.Sprintf("bytes %d-%d/%d", rg.from, rg.to, len(layer.data)); resp.Header.Get("Content-Range") != want {
				t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
			}
		}
		resp, _ := srvDo(t, http.DefaultClient, http.MethodGet, u,
			http.Header{"Range": {fmt.Sprintf("bytes=%d-", len(layer.data)+10)}}, nil)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("Range past the end: %d", resp.StatusCode)
		}
	})

	t.Run("ReferrersErrors", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			status       int
		}{
			{http.MethodGet, "/v2/demo/worker/referrers/sha256:nothex", http.StatusBadRequest},
			{http.MethodGet, "/v2/demo/worker/referrers/1.0", http.StatusBadRequest},
			{http.MethodGet, "/v2/Demo/Worker/referrers/" + workerDesc.Digest.String(), http.StatusBadRequest},
			{http.MethodDelete, "/v2/demo/worker/referrers/" + workerDesc.Digest.String(), http.StatusMethodNotAllowed},
			{http.MethodHead, "/v2/demo/worker/referrers/" + workerDesc.Digest.String(), http.StatusOK},
		} {
			resp, _ := srvDo(t, http.DefaultClient, tc.method, "http://"+host+tc.path, nil, nil)
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			}
		}
	})

	t.Run("ReferrerDeleted", func(t *testing.T) {
		gone := srvReferrer(t, subject, "application/vnd.example.gone", emptyConfig, "gone")
		goneDigest := srvSHA256(gone)
		if err := remote.Put(repo.Digest(goneDigest.String()), srvRaw{gone, types.OCIManifestSchema1}); err != nil {
			t.Fatal(err)
		}
		if _, idx := srvReferrersOf(t, host, "demo/worker", workerDesc.Digest, ""); len(idx.Manifests) != 3 {
			t.Fatalf("referrers after a third push: %+v", idx.Manifests)
		}
		if err := remote.Delete(repo.Digest(goneDigest.String())); err != nil {
			t.Fatal(err)
		}
		if _, idx := srvReferrersOf(t, host, "demo/worker", workerDesc.Digest, ""); len(idx.Manifests) != 2 {
			t.Errorf("referrers after the delete: %+v", idx.Manifests)
		}
	})

	t.Run("Skopeo", func(t *testing.T) {
		skopeo := testkit.NewSkopeo(t)
		raw, err := skopeo.Raw(ctx, "docker://"+host+"/demo/api:1.0")
		if err != nil {
			t.Fatal(err)
		}
		if got := srvSHA256(raw); got != roots["demo/api:1.0"] {
			t.Errorf("skopeo inspect --raw: digest %s, want %s", got, roots["demo/api:1.0"])
		}
		out := filepath.Join(t.TempDir(), "out")
		if _, err := skopeo.Run(ctx, "copy", "--src-tls-verify=false",
			"--override-os", "linux", "--override-arch", "amd64",
			"docker://"+host+"/demo/worker:1.0", "dir:"+out); err != nil {
			t.Fatal(err)
		}
		m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := srvSHA256(m); got != roots["demo/worker:1.0"] {
			t.Errorf("skopeo copy: manifest digest %s, want %s", got, roots["demo/worker:1.0"])
		}
	})

	// Restart on the same directory: everything is still there.
	srv.stop()
	if _, err := http.Get("http://" + host + "/v2/"); err == nil {
		t.Errorf("GET /v2/ still answers after stop")
	}
	again := srvStart(t, registry.Options{Data: dir})
	t.Run("Restart", func(t *testing.T) { check(t, again.host) })
}

func srvJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// srvBlob is one stored blob and its bytes.
type srvBlob struct {
	digest v1.Hash
	data   []byte
}

// srvWorkerLayer returns the app layer of demo/worker:1.0, as stored.
func srvWorkerLayer(t *testing.T, host string) srvBlob {
	t.Helper()
	img, err := remote.Image(srvTag(t, host+"/demo/worker:1.0"))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	l := layers[len(layers)-1]
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 200 {
		t.Fatalf("layer of %d bytes is too small for the range checks", len(b))
	}
	return srvBlob{d, b}
}

func srvTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// TestServeTLS serves HTTPS with a self-signed certificate for 127.0.0.1:
// a client trusting it pushes and pulls; one that does not is refused.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := srvSelfSigned(t)
	srv := srvStart(t, registry.Options{Data: t.TempDir(), TLSCert: certFile, TLSKey: keyFile})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	defer tr.CloseIdleConnections() // before the server stops (t.Cleanup)

	roots := srvPushSamples(t, srv.host, remote.WithTransport(tr))
	tag := srvTag(t, srv.host+"/demo/worker:1.0")
	img, err := remote.Image(tag, remote.WithTransport(tr))
	if err != nil {
		t.Fatalf("pull over TLS: %v", err)
	}
	if d, _ := img.Digest(); d != roots["demo/worker:1.0"] {
		t.Errorf("pulled %s, want %s", d, roots["demo/worker:1.0"])
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate: %v", err)
	}
	client := &http.Client{Transport: tr}
	resp, _ := srvDo(t, client, http.MethodGet, "https://"+srv.host+"/v2/demo/worker/referrers/"+roots["demo/worker:1.0"].String(), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("referrers over TLS: %d", resp.StatusCode)
	}

	// A client that does not trust the certificate gets no answer.
	if _, err := http.Get("https://" + srv.host + "/v2/"); err == nil {
		t.Errorf("GET /v2/ with an untrusted certificate succeeded")
	}
	// Plain HTTP on the TLS port is not served.
	if resp, err := http.Get("http://" + srv.host + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS port answered 200")
		}
	}
}

// srvSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and its
// key, and returns their paths and a pool trusting the certificate.
func srvSelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "airlock test registry"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestNewServerListenAddress: loopback addresses are accepted; any other
// needs AllowRemote.
func TestNewServerListenAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		remote bool // refused without AllowRemote
	}{
		{"", false},
		{"127.0.0.1:0", false},
		{"127.0.0.2:5000", false},
		{"[::1]:5000", false},
		{"localhost:5000", false},
		{"LOCALHOST:5000", false},
		{"[::ffff:127.0.0.1]:5000", false},
		{"0.0.0.0:5000", true},
		{":5000", true},
		{"[::]:5000", true},
		{"192.168.1.10:5000", true},
		{"registry.example:5000", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			_, err := registry.New(registry.Options{Data: t.TempDir(), Addr: tc.addr})
			if !tc.remote {
				if err != nil {
					t.Fatalf("New(%q): %v", tc.addr, err)
				}
				return
			}
			if !errors.Is(err, registry.ErrRemoteListen) {
				t.Fatalf("New(%q) = %v, want ErrRemoteListen", tc.addr, err)
			}
			var oe *registry.OptionsError
			if !errors.As(err, &oe) || oe.Option != "Addr" || oe.Value != tc.addr || !strings.Contains(oe.Hint, "AllowRemote") {
				t.Errorf("error %#v does not name the address and the AllowRemote option (the CLI names the flag)", err)
			}
			if _, err := registry.New(registry.Options{Data: t.TempDir(), Addr: tc.addr, AllowRemote: true}); err != nil {
				t.Errorf("New(%q, AllowRemote): %v", tc.addr, err)
			}
		})
	}
}

// TestNewServerOptionErrors: bad options are refused before anything listens.
func TestNewServerOptionErrors(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := srvSelfSigned(t)
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		opts   registry.Options
		want   error
		option string
	}{
		{"no data", registry.Options{}, registry.ErrDataDir, "Data"},
		{"data is a file", registry.Options{Data: aFile}, registry.ErrDataDir, "Data"},
		{"data under a file", registry.Options{Data: filepath.Join(aFile, "sub")}, registry.ErrDataDir, "Data"},
		{"cert without key", registry.Options{Data: tmp, TLSCert: certFile}, registry.ErrOptions, "TLSKey"},
		{"key without cert", registry.Options{Data: tmp, TLSKey: keyFile}, registry.ErrOptions, "TLSCert"},
		{"key is not PEM", registry.Options{Data: tmp, TLSCert: certFile, TLSKey: aFile}, registry.ErrOptions, "TLSCert"},
		{"missing cert file", registry.Options{Data: tmp, TLSCert: filepath.Join(tmp, "nope"), TLSKey: keyFile}, registry.ErrOptions, "TLSCert"},
		{"address without port", registry.Options{Data: tmp, Addr: "127.0.0.1"}, registry.ErrOptions, "Addr"},
		{"empty port", registry.Options{Data: tmp, Addr: "127.0.0.1:"}, registry.ErrOptions, "Addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := registry.New(tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
			var oe *registry.OptionsError
			if !errors.As(err, &oe) || oe.Option != tc.option {
				t.Errorf("error %#v, want a OptionsError for %s", err, tc.option)
			}
		})
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(tmp, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		_, err := registry.New(registry.Options{Data: ro})
		if !errors.Is(err, registry.ErrDataDir) || !errors.Is(err, os.ErrPermission) {
			t.Errorf("read-only data directory: %v", err)
		}
	}
}

// TestServeAddressInUse: Serve reports a port it cannot bind.
func TestServeAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := registry.New(registry.Options{Data: t.TempDir(), Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), srvTimeout)
	defer cancel()
	called := false
	err = s.Serve(ctx, func(string) { called = true })
	if err == nil || called {
		t.Fatalf("Serve on a busy port: err %v, ready called %v", err, called)
	}
}

// TestServeGracefulShutdown: a request in flight when ctx ends completes;
// Serve then returns nil.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := registry.New(registry.Options{Data: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, func(a string) { ready <- a }) }()
	host := <-ready

	// Open an upload session, then PUT its content slowly. With "Expect:
	// 100-continue" the client sends the body only once the registry's
	// handler reads it, so the first write below returns only when the
	// request is in flight on the server.
	data := bytes.Repeat([]byte("airlock"), 1000)
	d := srvSHA256(data)
	resp, body := srvDo(t, http.DefaultClient, http.MethodPost, fmt.Sprintf("http://%s/v2/slow/upload/blobs/uploads/", host), nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, loc.String(), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = time.Minute
	defer tr.CloseIdleConnections()
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			res <- result{0, err}
			return
		}
		resp.Body.Close()
		res <- result{resp.StatusCode, nil}
	}()
	if _, err := pw.Write(data[:100]); err != nil {
		t.Fatal(err)
	}
	cancel() // shutdown begins with the upload in flight
	time.Sleep(200 * time.Millisecond)
	if _, err := pw.Write(data[100:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	select {
	case r := <-res:
		if r.err != nil || r.status != http.StatusCreated {
			t.Errorf("in-flight upload: %d %v", r.status, r.err)
		}
	case <-time.After(srvTimeout):
		t.Fatal("in-flight upload did not finish")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(srvTimeout):
		t.Fatal("Serve did not return")
	}
	// The blob is on disk: a new server serves it.
	srv := srvStart(t, registry.Options{Data: dir})
	resp, body = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/slow/upload/blobs/%s", srv.host, d), nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("blob after restart: %d, %d bytes", resp.StatusCode, len(body))
	}
}
