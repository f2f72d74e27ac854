package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/pack/packtest"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/source"
	"github.com/airlock-dev/airlock/verify"
)

// siteFixture packs variants of the sample release (names, versions,
// sequences, edited files) signed by one key, with policies trusting it.
type siteFixture struct {
	src       string
	dir       string
	signer    bundle.Signer
	policy    *policy.Policy // matches demo*, no allowDowngrade
	downgrade *policy.Policy // the same with allowDowngrade: true
}

func newSiteFixture(t *testing.T) *siteFixture {
	t.Helper()
	src := testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), src.Host, imgs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := packtest.NewKey(t, dir, "release")
	load := func(file, extra string) *policy.Policy {
		p := filepath.Join(dir, file)
		body := "keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: \"demo*\"\n    signers: [release]\n    threshold: 1\n" + extra
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		pol, err := policy.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return pol
	}
	return &siteFixture{src: src.Host, dir: dir, signer: s,
		policy: load("policy.yaml", ""), downgrade: load("policy-downgrade.yaml", "    allowDowngrade: true\n")}
}

// pack writes the sample release named bname at version with sequence
// seq; edit, when set, changes the release directory before packing.
// siteCreated is the creation time of every bundle the site tests pack.
var siteCreated = time.Now().UTC().Truncate(time.Second)

func (s *siteFixture) pack(t *testing.T, bname, version string, seq uint64, edit func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	if err := sample.WriteRelease(dir, s.src); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "airlock.yaml")
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "name: demo\n", "name: "+bname+"\n", 1)
	y = strings.Replace(y, "version: 1.0.0\n", "version: "+version+"\n", 1)
	if err := os.WriteFile(spec, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(dir)
	}
	sp, err := pack.LoadSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, bname+"-"+version+".airlock")
	if _, err := pack.Pack(context.Background(), sp, pack.Options{
		Output: out, Images: source.NewPuller(source.PullOptions{}), Signers: []bundle.Signer{s.signer},
		Statement: bundle.StatementOptions{Sequence: seq},
		// One creation time for every bundle of the test run: content
		// made at pack time (the chart's archive) is then the same in
		// bundles that share it, as it is in one release.
		Created: siteCreated,
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// mirrorFile mirrors the bundle at path into host/prefix with fast retries;
// mod may change the options.
func mirrorFile(t *testing.T, path, host, prefix string, pol *policy.Policy, mod func(*MirrorOptions)) (*Result, error) {
	t.Helper()
	return mirrorWith(context.Background(), t, path, host, prefix, pol, 5*time.Second, mod)
}

// mirrorWith mirrors the bundle at path into host/prefix under ctx, with a
// stall timeout of stall and fast retries; mod may change the options.
func mirrorWith(ctx context.Context, t *testing.T, path, host, prefix string, pol *policy.Policy, stall time.Duration, mod func(*MirrorOptions)) (*Result, error) {
	t.Helper()
	to, err := ParseTarget(host+"/"+prefix, true)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := registryhttp.New(registryhttp.Options{StallTimeout: stall})
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts := MirrorOptions{
		To: to, Policy: pol, TempDir: t.TempDir(), Transport: tr,
		Retry:       remote.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Steps: 5},
		RetryWindow: 10 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	return Mirror(ctx, r, opts)
}

// writeCounter is a proxy in front of backend that counts the requests
// that could change the registry.
func writeCounter(t *testing.T, backend string) (string, *atomic.Int32) {
	var writes atomic.Int32
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writes.Add(1)
		}
		return false
	}, nil)
	return p, &writes
}

// tagDigestOf returns the digest REPO:TAG resolves to in the registry.
func tagDigestOf(t *testing.T, host, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return d.Digest.String()
}

// TestMirrorSiteState: an older bundle, or another bundle with the same
// sequence, is refused by the state kept in the registry, before any write
// request; with --allow-downgrade it needs the policy rule's consent.
func TestMirrorSiteState(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	backend := testkit.Start(t).Host
	newer := s.pack(t, "demo", "2.0.0", 200, nil)
	older := s.pack(t, "demo", "1.0.0", 100, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "config/app.yaml"), []byte("old: true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	sameSeq := s.pack(t, "demo", "2.0.1", 200, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "config/app.yaml"), []byte("other: true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	res, err := mirrorFile(t, newer, backend, "site", s.policy, nil)
	if err != nil {
		t.Fatalf("first mirror: %v", err)
	}
	if res.State != backend+"/site/airlock-state:demo" {
		t.Errorf("state %q", res.State)
	}
	modelTag := "site/models/tiny-classifier:2.0.0"
	modelDigest := tagDigestOf(t, backend, modelTag)

	// Each refusal runs with its own temporary directory, as from another
	// machine: the state is in the registry only.
	for _, tc := range []struct {
		name   string
		bundle string
		pol    *policy.Policy
		allow  bool
		want   error
	}{
		{"a lower sequence", older, s.policy, false, ErrReplay},
		{"the same sequence with other content", sameSeq, s.policy, false, ErrReplay},
		{"the same sequence with other content, downgrade allowed", sameSeq, s.downgrade, true, ErrReplay},
		{"a downgrade the policy does not allow", older, s.policy, true, ErrDowngradeNotAllowed},
	} {
		p, writes := writeCounter(t, backend)
		_, err := mirrorFile(t, tc.bundle, p, "site", tc.pol, func(o *MirrorOptions) { o.AllowDowngrade = tc.allow })
		if !errors.Is(err, tc.want) || !verify.IsFailure(err) {
			t.Errorf("%s: err = %v, want a verification failure wrapping %v", tc.name, err, tc.want)
		}
		var fe *FreshnessError
		if !errors.As(err, &fe) || fe.Highest != 200 || fe.Name != "demo" {
			t.Errorf("%s: error %v does not carry the site state's facts", tc.name, err)
		}
		if n := writes.Load(); n != 0 {
			t.Errorf("%s: %d write requests reached the registry before the refusal", tc.name, n)
		}
	}
	if got := tagDigestOf(t, backend, modelTag); got != modelDigest {
		t.Errorf("a refused bundle moved %s", modelTag)
	}

	// The same bundle again is no replay: it converges.
	if _, err := mirrorFile(t, newer, backend, "site", s.policy, nil); err != nil {
		t.Fatalf("rerun of the newest bundle: %v", err)
	}
	// A downgrade with the rule's consent is mirrored and recorded; the
	// highest sequence stays, so the newer bundle is still accepted.
	res, err = mirrorFile(t, older, backend, "site", s.downgrade, func(o *MirrorOptions) { o.AllowDowngrade = true })
	if err != nil {
		t.Fatalf("allowed downgrade: %v", err)
	}
	if !res.Downgrade {
		t.Error("result does not say it was a downgrade")
	}
	if _, err := mirrorFile(t, newer, backend, "site", s.policy, nil); err != nil {
		t.Fatalf("the newest bundle after an allowed downgrade: %v", err)
	}
	// Another prefix has its own state.
	if _, err := mirrorFile(t, older, backend, "other", s.policy, nil); err != nil {
		t.Fatalf("older bundle into another prefix: %v", err)
	}
}

// TestMirrorLyingRegistry: a registry whose HEAD says every blob is present
// still gets every blob (mirror asks with a ranged GET, which finds them
// missing, and never takes a HEAD's word), and a registry
// that does not serve a blob it acknowledged fails the run.
func TestMirrorLyingRegistry(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	backend := testkit.Start(t).Host

	t.Run("HEAD says present, GET says 404", func(t *testing.T) {
		t.Parallel()
		// The lie is complete: the right size and digest headers.
		sizes := map[string]int{}
		for _, d := range f.head.Body {
			sizes[d.Digest] = int(d.Size)
		}
		for d, b := range f.head.Blobs {
			sizes[d] = len(b)
		}
		var lied atomic.Int32
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodHead || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
				return false
			}
			d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			size, ok := sizes[d]
			if !ok {
				return false
			}
			lied.Add(1)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Header().Set("Docker-Content-Digest", d)
			w.WriteHeader(http.StatusOK)
			return true
		}, nil)
		res, err := f.mirror(t, p, "head")
		if err != nil {
			t.Fatalf("mirror: %v", err)
		}
		if res.Blobs.Pushed == 0 || res.Blobs.Skipped != 0 {
			t.Fatalf("HEAD lied %d times; result %+v, want every blob pushed, none skipped", lied.Load(), res.Blobs)
		}
		if tags := checkTagsComplete(t, backend, "head"); len(tags) == 0 {
			t.Fatal("no tags")
		}
	})

	t.Run("an acknowledged blob that is not served fails the run", func(t *testing.T) {
		t.Parallel()
		victim := ""
		for _, a := range f.head.Body {
			victim = a.Digest
			break
		}
		p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+victim) {
				return false
			}
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return true
		}, nil)
		_, err := f.mirror(t, p, "ghost")
		if !errors.Is(err, ErrNotServed) || !strings.Contains(err.Error(), victim) {
			t.Fatalf("err = %v, want ErrNotServed naming %s", err, victim)
		}
		if verify.IsFailure(err) {
			t.Errorf("a lying registry reported as a bundle rejection: %v", err)
		}
	})
}

// TestMirrorOversizedReadBack: a registry answering a manifest read with
// hundreds of MiB is read no further than the manifest limit.
func TestMirrorOversizedReadBack(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	backend := testkit.Start(t).Host
	const huge = 512 << 20
	var served atomic.Int64
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/sha256:") {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.WriteHeader(http.StatusOK)
		buf := []byte(strings.Repeat(" ", 64<<10))
		for n := 0; n < huge; n += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return true
			}
			served.Add(int64(len(buf)))
		}
		return true
	}, nil)
	_, err := f.mirror(t, p, "huge")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != bundle.MaxManifestSize {
		t.Fatalf("err = %v, want a LimitError at %d bytes", err, bundle.MaxManifestSize)
	}
	// What was read is bounded by the limit plus what sits in socket and
	// proxy buffers; the rest of the 512 MiB was never sent.
	if got := served.Load(); got > 64<<20 {
		t.Errorf("the client read %d MiB of the oversized answer", got>>20)
	}
	t.Logf("oversized manifest refused after the proxy wrote %.1f MiB: %v", float64(served.Load())/(1<<20), err)
}

// TestMirrorConcurrentReferrers: two mirrors of bundles that attach
// different SBOMs to the same image, started together against a registry
// without the referrers API, both succeed with both SBOMs listed in the
// referrers tag; ten times.
func TestMirrorConcurrentReferrers(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	backend := testkit.Start(t).Host
	a := s.pack(t, "demo", "1.0.0", 100, nil)
	b := s.pack(t, "demo-b", "1.0.0", 100, func(dir string) {
		p := filepath.Join(dir, "sbom/api.spdx.json")
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		body = []byte(strings.Replace(string(body), "\"name\"", "\"comment\": \"bundle b\",\n  \"name\"", 1))
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	sbomOf := func(path string) (subject, sbom string) {
		h, err := bundle.ReadHeadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range h.Manifest.Artifacts {
			if x.Kind == bundle.KindSBOM && strings.HasSuffix(x.Subject, "/demo/api:1.0") {
				sbom = x.Digest
				for _, y := range h.Manifest.Artifacts {
					if y.Kind == bundle.KindImage && y.Ref == x.Subject {
						subject = y.Digest
					}
				}
			}
		}
		return subject, sbom
	}
	subject, sbomA := sbomOf(a)
	subjectB, sbomB := sbomOf(b)
	if subject == "" || subject != subjectB || sbomA == sbomB {
		t.Fatalf("fixture: subject %s/%s, SBOMs %s %s", subject, subjectB, sbomA, sbomB)
	}
	for i := range 10 {
		prefix := fmt.Sprintf("race%d", i)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for k, path := range []string{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[k] = mirrorFile(t, path, backend, prefix, s.policy, nil)
			}()
		}
		close(start)
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Errorf("round %d: mirror %d: %v", i, k, err)
			}
		}
		repo, err := name.NewRepository(backend+"/"+prefix+"/demo/api", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Referrers(repo.Digest(subject))
		if err != nil {
			t.Fatalf("round %d: referrers: %v", i, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, d := range im.Manifests {
			found[d.Digest.String()] = true
		}
		if !found[sbomA] || !found[sbomB] {
			t.Errorf("round %d: referrers of %s list %v; want both %s and %s", i, subject, im.Manifests, sbomA, sbomB)
		}
		checkTagsComplete(t, backend, prefix)
	}
}
