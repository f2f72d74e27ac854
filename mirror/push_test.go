package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/pack/packtest"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// pushFixture is a signed sample bundle and the policy that trusts it.
type pushFixture struct {
	bundle string
	policy *policy.Policy
	head   *bundle.Head
}

// newPushFixture packs the sample release signed by one generated key, with
// a 1-of-1 policy.
func newPushFixture(t *testing.T) *pushFixture {
	t.Helper()
	r := packtest.New(t)
	h, err := bundle.ReadHeadFile(r.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	return &pushFixture{bundle: r.Bundle, policy: r.Policy, head: h}
}

// rootOf returns the root digest of the image whose ref ends in suffix.
func (f *pushFixture) rootOf(t *testing.T, suffix string) string {
	t.Helper()
	for _, a := range f.head.Manifest.Artifacts {
		if a.Kind == bundle.KindImage && strings.HasSuffix(a.Ref, suffix) {
			return a.Digest
		}
	}
	t.Fatalf("no image %s in the bundle", suffix)
	return ""
}

// bodyDigests returns the digests of the blobs in the bundle's body.
func (f *pushFixture) bodyDigests() []string {
	var out []string
	for _, d := range f.head.Body {
		out = append(out, d.Digest)
	}
	return out
}

// mirror runs Mirror into host/prefix with fast retries and a short stall timeout.
func (f *pushFixture) mirror(t *testing.T, host, prefix string) (*Result, error) {
	t.Helper()
	to, err := ParseTarget(host+"/"+prefix, true)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := registryhttp.New(registryhttp.Options{StallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return Mirror(context.Background(), r, MirrorOptions{
		To: to, Policy: f.policy, TempDir: t.TempDir(),
		Retry:     remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 5},
		Transport: tr,
	})
}

// startProxy starts a reverse proxy on 127.0.0.1 in front of the registry
// at backend and returns its host. fault, when set and returning true, has
// answered the request itself; modify, when set, may change the registry's
// responses. The proxy is closed when the test ends.
func startProxy(t *testing.T, backend string, fault func(w http.ResponseWriter, r *http.Request) bool, modify func(*http.Response) error) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = modify
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fault != nil && fault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// isBlobUpload reports whether r carries blob bytes (go-containerregistry
// streams every blob with one PATCH).
func isBlobUpload(r *http.Request) bool {
	return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// readPrefix reads up to n bytes of r's body. If the body ended first, it
// puts the bytes back and returns false.
func readPrefix(r *http.Request, n int) bool {
	buf := make([]byte, n)
	got, err := io.ReadFull(r.Body, buf)
	if err == nil {
		return true
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(buf[:got]), r.Body))
	return false
}

// checkTagsComplete fails the test if any tag under host/prefix resolves to
// a manifest that references a manifest or blob the registry does not have.
// It returns the tags it found.
func checkTagsComplete(t *testing.T, host, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(ctx, reg)
	if err != nil {
		t.Fatalf("catalog of %s: %v", host, err)
	}
	var tags []string
	for _, rs := range repos {
		if !strings.HasPrefix(rs, prefix+"/") {
			continue
		}
		repo, err := name.NewRepository(host+"/"+rs, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		list, err := remote.List(repo, remote.WithContext(ctx))
		if err != nil {
			continue // a repository with blobs only has no tag list
		}
		for _, tg := range list {
			tags = append(tags, rs+":"+tg)
			checkComplete(t, repo, repo.Tag(tg))
		}
	}
	return tags
}

// checkComplete walks the manifest ref names and checks that every child
// manifest and blob exists.
func checkComplete(t *testing.T, repo name.Repository, ref name.Reference) {
	t.Helper()
	d, err := remote.Get(ref)
	if err != nil {
		t.Errorf("%s does not resolve: %v", ref, err)
		return
	}
	var mf struct {
		Manifests []v1.Descriptor `json:"manifests"`
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(d.Manifest, &mf); err != nil {
		t.Errorf("%s: %v", ref, err)
		return
	}
	for _, c := range mf.Manifests {
		checkComplete(t, repo, repo.Digest(c.Digest.String()))
	}
	blobs := mf.Layers
	if mf.Config != nil {
		blobs = append(blobs, *mf.Config)
	}
	for _, b := range blobs {
		resp, err := http.Head(fmt.Sprintf("http://%s/v2/%s/blobs/%s", repo.RegistryStr(), repo.RepositoryStr(), b.Digest))
		if err != nil {
			t.Errorf("HEAD blob %s: %v", b.Digest, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s is tagged but its blob %s is missing (HEAD %d)", ref, b.Digest, resp.StatusCode)
		}
	}
}

// TestMirrorFaults pushes through a proxy that breaks the registry in one
// way each; a real registry (distribution 2.8) stores what gets through.
func TestMirrorFaults(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	backend := testkit.Start(t).Host

	t.Run("5xx and 429 are retried", func(t *testing.T) {
		t.Parallel()
		var patches atomic.Int32
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobUpload(r) {
				return false
			}
			switch patches.Add(1) {
			case 1:
				http.Error(w, "injected failure", http.StatusInternalServerError)
				return true
			case 2:
				http.Error(w, "injected rate limit", http.StatusTooManyRequests)
				return true
			}
			return false
		}, nil)
		res, err := f.mirror(t, p, "status")
		if err != nil {
			t.Fatalf("mirror through 500 and 429: %v", err)
		}
		if patches.Load() < 3 {
			t.Fatalf("only %d blob uploads", patches.Load())
		}
		if res.Blobs.Pushed == 0 || res.Tags == 0 {
			t.Fatalf("result %+v", res)
		}
		if tags := checkTagsComplete(t, backend, "status"); len(tags) == 0 {
			t.Fatal("no tags after a successful mirror")
		}
	})

	t.Run("a connection dropped mid-upload is retried", func(t *testing.T) {
		t.Parallel()
		var dropped atomic.Bool
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobUpload(r) || dropped.Load() || !readPrefix(r, 32<<10) {
				return false
			}
			dropped.Store(true)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close()
			return true
		}, nil)
		res, err := f.mirror(t, p, "drop")
		if err != nil {
			t.Fatalf("mirror through a dropped connection: %v", err)
		}
		if !dropped.Load() {
			t.Fatal("no upload was large enough to drop")
		}
		if res.Tags == 0 {
			t.Fatalf("result %+v", res)
		}
		checkTagsComplete(t, backend, "drop")
	})

	t.Run("a stalled upload fails in bounded time and a rerun completes", func(t *testing.T) {
		t.Parallel()
		stop := make(chan struct{})
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobUpload(r) || !readPrefix(r, 32<<10) {
				return false
			}
			select { // read nothing more and answer nothing
			case <-stop:
			case <-r.Context().Done():
			}
			return true
		}, nil)
		t.Cleanup(func() { close(stop) }) // before the proxy closes: it waits for handlers
		start := time.Now()
		_, err := f.mirror(t, p, "stall")
		el := time.Since(start)
		if err == nil {
			t.Fatal("mirror through a stalled upload succeeded")
		}
		if !errors.Is(err, ErrRegistry) {
			t.Errorf("error is not ErrRegistry: %v", err)
		}
		if verify.IsFailure(err) {
			t.Errorf("a registry stall reported as a verification failure: %v", err)
		}
		named := false
		for _, d := range f.bodyDigests() {
			named = named || strings.Contains(err.Error(), d)
		}
		if !named {
			t.Errorf("error does not name the blob: %v", err)
		}
		if el > 25*time.Second {
			t.Errorf("stall detected after %v", el)
		}
		t.Logf("stalled upload failed after %v: %v", el.Round(time.Millisecond), err)
		if tags := checkTagsComplete(t, backend, "stall"); len(tags) != 0 {
			t.Errorf("tags after a failed mirror: %v", tags)
		}
		res, err := f.mirror(t, backend, "stall")
		if err != nil {
			t.Fatalf("rerun without the fault: %v", err)
		}
		if res.Tags == 0 {
			t.Fatalf("rerun result %+v", res)
		}
		checkTagsComplete(t, backend, "stall")
	})

	// TransportOptions.StallTimeout promises that aborted transfers are retried.
	t.Run("an upload stalled once is retried", func(t *testing.T) {
		t.Parallel()
		stop := make(chan struct{})
		var stalled atomic.Bool
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobUpload(r) || stalled.Load() || !readPrefix(r, 32<<10) {
				return false
			}
			stalled.Store(true)
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return true
		}, nil)
		t.Cleanup(func() { close(stop) })
		if _, err := f.mirror(t, p, "stallonce"); err != nil {
			t.Fatalf("one stalled upload was not retried: %v", err)
		}
		checkTagsComplete(t, backend, "stallonce")
	})

	// A registry without the referrers API lists an SBOM only through the
	// sha256-<hex> tag index; a write of it refused the way a concurrent
	// writer makes distribution refuse it is merged and written again.
	t.Run("a refused referrers tag write is retried", func(t *testing.T) {
		t.Parallel()
		var refused, puts atomic.Int32
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/sha256-") {
				return false
			}
			if puts.Add(1) > 2 {
				return false
			}
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"injected"}]}`)
			return true
		}, nil)
		if _, err := f.mirror(t, p, "fallback"); err != nil {
			t.Fatalf("mirror with refused referrers tag writes: %v (refused %d)", err, refused.Load())
		}
		if refused.Load() != 2 {
			t.Fatalf("%d referrers tag writes refused, want 2", refused.Load())
		}
		for _, a := range f.head.Manifest.Artifacts {
			if a.Kind != bundle.KindSBOM {
				continue
			}
			subject := ""
			for _, s := range f.head.Manifest.Artifacts {
				if s.Kind == bundle.KindImage && s.Ref == a.Subject {
					subject = s.Digest
				}
			}
			r, err := name.ParseReference(a.Subject)
			if err != nil {
				t.Fatal(err)
			}
			repo, err := name.NewRepository(backend+"/fallback/"+r.Context().RepositoryStr(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := remote.Referrers(repo.Digest(subject))
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, d := range im.Manifests {
				found = found || d.Digest.String() == a.Digest
			}
			if !found {
				t.Errorf("after the rerun the SBOM %s of %s is not among its referrers: %+v", a.Digest, repo, im.Manifests)
			}
		}
	})

	t.Run("a manifest read back wrong fails and leaves no tag", func(t *testing.T) {
		t.Parallel()
		worker := f.rootOf(t, "/demo/worker:1.0")
		want := "/v2/lie/demo/worker/manifests/" + worker
		var lied atomic.Int32
		p := startProxy(t, backend, nil, func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || resp.Request.URL.Path != want || resp.StatusCode != http.StatusOK {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x20 // same length, different bytes
			resp.Body = io.NopCloser(bytes.NewReader(b))
			lied.Add(1)
			return nil
		})
		res, err := f.mirror(t, p, "lie")
		if err == nil {
			t.Fatal("mirror accepted a manifest that read back wrong")
		}
		if lied.Load() == 0 {
			t.Fatalf("the manifest was never read back: %v", err)
		}
		if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), worker) {
			t.Errorf("error is not ErrRegistry naming %s: %v", worker, err)
		}
		if res == nil || res.Tags != 0 {
			t.Errorf("tags set: %+v", res)
		}
		tags := checkTagsComplete(t, backend, "lie")
		for _, tg := range tags {
			if strings.HasPrefix(tg, "lie/demo/worker:") {
				t.Errorf("the image that read back wrong is tagged: %s", tg)
			}
		}
		if len(tags) != 0 {
			t.Errorf("tags after a failed mirror: %v", tags)
		}
	})
}
