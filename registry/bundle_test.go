package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/pack/packtest"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/registry"
)

// testFrameSize is the smallest frame size the format allows, so that the
// sample's larger blobs (the model's weights) span several frames.
const testFrameSize = bundle.MinFrameSize

// bundleFixture is the sample release packed and signed by one key, with
// the policy that trusts it.
type bundleFixture struct {
	dir    string
	bundle string // as pack wrote it
	signer bundle.Signer
	policy *policy.Policy
}

func newBundleFixture(t *testing.T) *bundleFixture {
	t.Helper()
	r := packtest.New(t)
	return &bundleFixture{dir: r.Dir, bundle: r.Bundle, signer: r.Signer, policy: r.Policy}
}

// headBlobs serves manifests and configs to bundle.Walk from a head.
type headBlobs map[string][]byte

func (h headBlobs) Manifest(_ context.Context, d bundle.Descriptor) ([]byte, error) { return h.get(d) }
func (h headBlobs) Config(_ context.Context, d bundle.Descriptor) ([]byte, error)   { return h.get(d) }
func (h headBlobs) get(d bundle.Descriptor) ([]byte, error) {
	if b, ok := h[d.Digest]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s not in the head", d.Digest)
}

// rewrite writes the bundle at src again to out with opts (frame size,
// volumes), signed by the fixture's key. tamper, when set, may replace a
// body blob's bytes; the writer is then told they are checked already, so
// it writes them as given (a bundle whose frames match its frame index but
// whose blob does not match its digest).
func (f *bundleFixture) rewrite(t *testing.T, out string, opts bundle.WriteOptions, tamper func(d bundle.Descriptor, b []byte) []byte) {
	t.Helper()
	ctx := context.Background()
	a, err := bundle.OpenArchive(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.Head()
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(h.IndexBytes, &idx); err != nil {
		t.Fatal(err)
	}
	var items []bundle.Item
	for i, art := range h.Manifest.Artifacts {
		g, err := bundle.Walk(ctx, art.Descriptor, h.Blobs[art.Digest], headBlobs(h.Blobs), nil)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, bundle.Item{
			Record: art, RefName: idx.Manifests[i].Annotations[bundle.AnnotationRefName], Graph: g, Verified: tamper != nil,
			Open: func(ctx context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
				rc, err := a.Open(ctx, d.Digest, 0, -1)
				if err != nil || tamper == nil {
					return rc, err
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return nil, err
				}
				return io.NopCloser(bytes.NewReader(tamper(d, b))), nil
			},
		})
	}
	w, err := bundle.NewWriter(h.Manifest.Name, h.Manifest.Version, h.Manifest.Created, items)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(ctx, bundle.StatementOptions{Sequence: h.Statement.Predicate.Sequence}, []bundle.Signer{f.signer}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteFile(ctx, out, opts); err != nil {
		t.Fatal(err)
	}
}

// serveBundle opens path for random access and serves it on a free port.
func serveBundle(t *testing.T, path string) (srvRunning, *bundle.Archive) {
	t.Helper()
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return srvStart(t, registry.Options{Bundle: a}), a
}

// modelWeights returns the descriptor of the model's largest file.
func modelWeights(t *testing.T, h *bundle.Head) bundle.Descriptor {
	t.Helper()
	var best bundle.Descriptor
	for _, d := range h.Body {
		if d.Size > best.Size {
			best = d
		}
	}
	if best.Size <= 2*testFrameSize {
		t.Fatalf("the largest body blob has %d bytes; the tests need one over two frames", best.Size)
	}
	return best
}

// mirrorToServer mirrors the bundle at path into a new read-write Server
// (the one `airlock serve --data` runs) and returns that server.
func (f *bundleFixture) mirrorToServer(t *testing.T, path string) srvRunning {
	t.Helper()
	site := srvStart(t, registry.Options{Data: t.TempDir()})
	to, err := mirror.ParseTarget(site.host, true)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := registryhttp.New(registryhttp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := mirror.Mirror(context.Background(), r, mirror.MirrorOptions{To: to, Policy: f.policy, TempDir: t.TempDir(), Transport: tr}); err != nil {
		t.Fatalf("mirror: %v", err)
	}
	return site
}

// quietLogrus silences, for the test, the process-wide logrus logger
// through which the read-write registry logs every 404 a pusher's HEAD
// gets as an error.
func quietLogrus(t *testing.T) {
	prevOut := logrus.StandardLogger().Out
	logrus.SetOutput(io.Discard)
	t.Cleanup(func() { logrus.SetOutput(prevOut) })
}

// getBlob GETs a blob with optional Range header and returns the response
// and the body read to its end (or to the error).
func getBlob(t *testing.T, host, repo, digest, rng string) (*http.Response, []byte, error) {
	t.Helper()
	var headers map[string]string
	if rng != "" {
		headers = map[string]string{"Range": rng}
	}
	return blobRequest(t, http.MethodGet, host, repo, digest, headers)
}

// TestServeBundlePull serves a bundle cut into 64 KiB frames and pulls
// every placed artifact by tag and by digest with go-containerregistry,
// checking every blob, and compares the namespace (catalog, tags, digests)
// with what `airlock mirror` creates from the same bundle.
func TestServeBundlePull(t *testing.T) {
	quietLogrus(t)
	f := newBundleFixture(t)
	framed := filepath.Join(t.TempDir(), "demo.airlock")
	f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
	srv, a := serveBundle(t, framed)
	h := a.Head()
	if len(h.Frames.Frames) < 4 {
		t.Fatalf("only %d frames", len(h.Frames.Frames))
	}

	// The same bundle mirrored into a read-write Server.
	site := f.mirrorToServer(t, framed)

	catalog := func(host string) []string {
		reg, err := name.NewRegistry(host, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		repos, err := remote.Catalog(context.Background(), reg)
		if err != nil {
			t.Fatalf("catalog of %s: %v", host, err)
		}
		// The site state is mirror's own bookkeeping, not bundle content.
		return slices.DeleteFunc(repos, func(s string) bool { return strings.HasSuffix(s, "airlock-state") })
	}
	served, mirrored := catalog(srv.host), catalog(site.host)
	if !slices.Equal(served, mirrored) {
		t.Fatalf("repositories served %v, mirrored %v", served, mirrored)
	}
	for _, want := range []string{"demo/api", "demo/worker", "demo/legacy", "models/tiny-classifier", "charts/demo-app"} {
		if !slices.Contains(served, want) {
			t.Errorf("repository %s not served (have %v)", want, served)
		}
	}
	for _, repo := range served {
		sr, _ := name.NewRepository(srv.host+"/"+repo, name.Insecure)
		mr, _ := name.NewRepository(site.host+"/"+repo, name.Insecure)
		st, err := remote.List(sr)
		if err != nil {
			t.Fatalf("tags of %s: %v", sr, err)
		}
		mt, err := remote.List(mr)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st, mt) {
			t.Errorf("%s: tags served %v, mirrored %v", repo, st, mt)
		}
		for _, tag := range st {
			sd, err := remote.Get(sr.Tag(tag))
			if err != nil {
				t.Fatalf("pull %s:%s: %v", sr, tag, err)
			}
			md, err := remote.Get(mr.Tag(tag))
			if err != nil {
				t.Fatal(err)
			}
			if sd.Digest != md.Digest || !bytes.Equal(sd.Manifest, md.Manifest) || sd.MediaType != md.MediaType {
				t.Errorf("%s:%s: served %s %s, mirrored %s %s", repo, tag, sd.MediaType, sd.Digest, md.MediaType, md.Digest)
			}
			// By digest, and every blob of the graph checked.
			byDigest, err := remote.Get(sr.Digest(sd.Digest.String()))
			if err != nil || byDigest.Digest != sd.Digest {
				t.Fatalf("pull %s@%s: %v", sr, sd.Digest, err)
			}
			checkGraph(t, sr, byDigest)
		}
	}
}

// checkGraph reads every blob under an image or index through
// go-containerregistry, which checks each against its digest.
func checkGraph(t *testing.T, repo name.Repository, d *remote.Descriptor) {
	t.Helper()
	if d.MediaType.IsIndex() {
		idx, err := d.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			child, err := remote.Get(repo.Digest(m.Digest.String()))
			if err != nil {
				t.Fatalf("child %s: %v", m.Digest, err)
			}
			checkGraph(t, repo, child)
		}
		return
	}
	img, err := d.Image()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatalf("%s@%s config: %v", repo, d.Digest, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			dg, _ := l.Digest()
			t.Fatalf("%s@%s layer %s: %v", repo, d.Digest, dg, err)
		}
	}
}

// TestServeBundleRangeReferrersReadOnly checks Range requests across
// frames, the referrers API with and without an artifactType filter, and
// that every write is refused.
func TestServeBundleRangeReferrersReadOnly(t *testing.T) {
	f := newBundleFixture(t)
	framed := filepath.Join(t.TempDir(), "demo.airlock")
	f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
	srv, a := serveBundle(t, framed)
	h := a.Head()
	w := modelWeights(t, h)
	const repo = "models/tiny-classifier"

	resp, whole, err := getBlob(t, srv.host, repo, w.Digest, "")
	if err != nil || resp.StatusCode != http.StatusOK || int64(len(whole)) != w.Size {
		t.Fatalf("GET whole blob: %v %v, %d bytes", err, resp, len(whole))
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(whole)); got != w.Digest {
		t.Fatalf("whole blob hashes to %s", got)
	}
	for _, c := range []struct {
		rng      string
		from, to int64 // inclusive
	}{
		{fmt.Sprintf("bytes=100-%d", 100+testFrameSize+7), 100, 100 + testFrameSize + 7}, // across a frame boundary
		{fmt.Sprintf("bytes=%d-", w.Size-10), w.Size - 10, w.Size - 1},
		{"bytes=-5", w.Size - 5, w.Size - 1},
		{fmt.Sprintf("bytes=0-%d", w.Size+100), 0, w.Size - 1},
	} {
		resp, part, err := getBlob(t, srv.host, repo, w.Digest, c.rng)
		if err != nil {
			t.Fatalf("%s: %v", c.rng, err)
		}
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: status %d", c.rng, resp.StatusCode)
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, w.Size); resp.Header.Get("Content-Range") != want {
			t.Errorf("%s: Content-Range %q, want %q", c.rng, resp.Header.Get("Content-Range"), want)
		}
		if !bytes.Equal(part, whole[c.from:c.to+1]) {
			t.Errorf("%s: %d bytes differ from the blob's", c.rng, len(part))
		}
	}
	for _, rng := range []string{fmt.Sprintf("bytes=%d-", w.Size), "bytes=500-0"} {
		if resp, _, _ := getBlob(t, srv.host, repo, w.Digest, rng); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", w.Size) {
			t.Errorf("%s: %d %q, want 416", rng, resp.StatusCode, resp.Header.Get("Content-Range"))
		}
	}
	// A blob of another repository is not served here.
	if resp, _, _ := getBlob(t, srv.host, "demo/api", w.Digest, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("model blob from demo/api: %d, want 404", resp.StatusCode)
	}

	// Referrers: each SBOM of the sample is attached to its image.
	var api, sbom string
	for _, art := range h.Manifest.Artifacts {
		if art.Kind == bundle.KindImage && strings.HasSuffix(art.Ref, "/demo/api:1.0") {
			api = art.Digest
		}
	}
	for _, art := range h.Manifest.Artifacts {
		if art.Kind == bundle.KindSBOM && art.SubjectDigest == api {
			sbom = art.Digest
		}
	}
	if api == "" || sbom == "" {
		t.Fatalf("sample: api %q, its SBOM %q", api, sbom)
	}
	apiRef, _ := name.NewDigest(srv.host+"/demo/api@"+api, name.Insecure)
	idx, err := remote.Referrers(apiRef)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != sbom || im.Manifests[0].ArtifactType == "" {
		t.Fatalf("referrers of demo/api: %+v, want the SBOM %s with its artifact type", im.Manifests, sbom)
	}
	sbomType := im.Manifests[0].ArtifactType
	if _, err := remote.Get(apiRef.Context().Digest(sbom)); err != nil {
		t.Errorf("pull the referrer: %v", err)
	}
	for _, c := range []struct {
		filter string
		n      int
	}{{sbomType, 1}, {"application/x-none", 0}} {
		resp, err := http.Get("http://" + srv.host + "/v2/demo/api/referrers/" + api + "?artifactType=" + url.QueryEscape(c.filter))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Manifests []json.RawMessage `json:"manifests"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || len(got.Manifests) != c.n || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("artifactType=%s: %v, %d referrers (want %d), OCI-Filters-Applied %q", c.filter, err, len(got.Manifests), c.n, resp.Header.Get("OCI-Filters-Applied"))
		}
	}

	// Writes: ggcr's push fails, and each write method is 405 UNSUPPORTED.
	dst, _ := name.NewTag(srv.host+"/demo/api:pushed", name.Insecure)
	if err := remote.Write(dst, empty.Image); err == nil {
		t.Error("push into the bundle server succeeded")
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v2/demo/api/blobs/uploads/"},
		{http.MethodPut, "/v2/demo/api/manifests/1.0"},
		{http.MethodPatch, "/v2/demo/api/blobs/uploads/x"},
		{http.MethodDelete, "/v2/demo/api/manifests/" + api},
		{http.MethodDelete, "/v2/demo/api/blobs/" + w.Digest},
	} {
		req, _ := http.NewRequest(c.method, "http://"+srv.host+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e transport.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || len(e.Errors) != 1 || e.Errors[0].Code != transport.UnsupportedErrorCode {
			t.Errorf("%s %s: %d %+v, want 405 UNSUPPORTED", c.method, c.path, resp.StatusCode, e.Errors)
		}
	}
	if d, err := remote.Get(apiRef); err != nil || d.Digest.String() != api {
		t.Errorf("after the refused writes: %v", err)
	}
}

// TestServeBundleRefusesBadBytes flips a byte inside a body frame of the
// bundle file and pulls the blob: the client gets an error, never bad bytes.
// A blob whose frames are intact but whose bytes do not match its digest
// (written by a lying writer) is cut off before its end, and no range of
// it is served.
func TestServeBundleRefusesBadBytes(t *testing.T) {
	f := newBundleFixture(t)
	framed := filepath.Join(t.TempDir(), "demo.airlock")
	f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
	set, err := bundle.OpenSet(framed)
	if err != nil {
		t.Fatal(err)
	}
	h := set.Head
	w := modelWeights(t, h)
	const repo = "models/tiny-classifier"

	// The frames holding the weights, in order.
	var frames []int
	for i, fr := range h.Frames.Frames {
		if slices.Contains(fr.Blobs, w.Digest) {
			frames = append(frames, i)
		}
	}
	if len(frames) < 3 {
		t.Fatalf("the weights span %d frames", len(frames))
	}
	raw, err := os.ReadFile(framed)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		frame int
	}{
		{"first frame of the blob", frames[0]},
		{"a later frame of the blob", frames[2]},
	} {
		t.Run(c.name, func(t *testing.T) {
			fr := h.Frames.Frames[c.frame]
			bad := bytes.Clone(raw)
			bad[set.BodyStart+fr.Offset+fr.Size/2] ^= 0x40
			p := filepath.Join(t.TempDir(), "demo.airlock")
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			srv, _ := serveBundle(t, p)
			resp, body, err := getBlob(t, srv.host, repo, w.Digest, "")
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Fatalf("GET of a blob with a corrupt frame gave 200 and %d complete bytes", len(body))
			}
			if err == nil && resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status %d", resp.StatusCode)
			}
			if resp != nil && resp.StatusCode == http.StatusOK && int64(len(body)) >= w.Size {
				t.Errorf("the client received all %d bytes", len(body))
			}
			// ggcr's pull fails too.
			ref, _ := name.NewDigest(srv.host+"/"+repo+"@"+w.Digest, name.Insecure)
			l, err := remote.Layer(ref)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err == nil {
				t.Error("ggcr read the blob without an error")
			}
			// The server still answers.
			tag, _ := name.NewTag(srv.host+"/"+repo+":1.0.0", name.Insecure)
			if _, err := remote.Get(tag); err != nil {
				t.Errorf("after the refused blob: %v", err)
			}
		})
	}

	t.Run("blob that fails its digest at the end", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "lying.airlock")
		f.rewrite(t, p, bundle.WriteOptions{FrameSize: testFrameSize}, func(d bundle.Descriptor, b []byte) []byte {
			if d.Digest == w.Digest {
				b = bytes.Clone(b)
				b[len(b)-1] ^= 1
			}
			return b
		})
		srv, _ := serveBundle(t, p)
		resp, body, err := getBlob(t, srv.host, repo, w.Digest, "")
		if err == nil {
			t.Fatalf("GET gave %d and %d bytes without an error; the blob does not match its digest", resp.StatusCode, len(body))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("client error %v, want unexpected EOF (the response cut short)", err)
		}
		if int64(len(body)) >= w.Size {
			t.Errorf("the client received all %d bytes", len(body))
		}
		// No range of it is served either, though its frames are intact:
		// a range is sent only from a blob that matches its digest.
		if resp, part, err := getBlob(t, srv.host, repo, w.Digest, "bytes=0-99"); err != nil || resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("range of a blob that fails its digest: %v %v %d bytes, want 500", err, resp, len(part))
		}
	})
}

// TestServeBundleVolumes serves a bundle written as volumes, opened by its
// first volume and by its directory, and pulls every image.
func TestServeBundleVolumes(t *testing.T) {
	f := newBundleFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.airlock")
	fi, err := os.Stat(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	f.rewrite(t, out, bundle.WriteOptions{FrameSize: testFrameSize, VolumeSize: fi.Size()/3 + 1}, nil)
	vols, _ := filepath.Glob(out + ".*")
	if len(vols) < 3 {
		t.Fatalf("%d volumes: %v", len(vols), vols)
	}
	for _, path := range []string{bundle.VolumeName(out, 1), dir} {
		srv, a := serveBundle(t, path)
		if !a.Set().Volumes {
			t.Fatalf("%s: not opened as a volume set", path)
		}
		n := 0
		for _, art := range a.Head().Manifest.Artifacts {
			if art.Kind != bundle.KindImage {
				continue
			}
			n++
			r, _ := name.ParseReference(art.Ref)
			ref, _ := name.NewTag(srv.host+"/"+r.Context().RepositoryStr()+":"+r.Identifier(), name.Insecure)
			d, err := remote.Get(ref)
			if err != nil || d.Digest.String() != art.Digest {
				t.Fatalf("%s: pull %s: %v", path, ref, err)
			}
			checkGraph(t, ref.Context(), d)
		}
		if n != 3 {
			t.Errorf("%d images", n)
		}
	}
}

// TestServeBundleOptions: a bundle and a data directory exclude each other.
func TestServeBundleOptions(t *testing.T) {
	f := newBundleFixture(t)
	a, err := bundle.OpenArchive(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = registry.New(registry.Options{Bundle: a, Data: t.TempDir()})
	var oe *registry.OptionsError
	if !errors.As(err, &oe) || oe.Option != "Data" || !errors.Is(err, registry.ErrOptions) {
		t.Fatalf("Bundle and Data: %v", err)
	}
}
