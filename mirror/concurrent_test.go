package mirror

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/verify"
)

// Two runs of different bundles of one name into one prefix, and runs that
// end half way, made deterministic by a proxy that holds one run's
// requests at a chosen step while the other run goes on against the same
// registry (distribution 2.8).

// chartTag is where the sample release's chart is tagged under prefix.
func chartTag(prefix string) string { return prefix + "/charts/demo-app:0.1.0" }

// chartDigest returns the digest of the chart in the bundle at path.
func chartDigest(t *testing.T, path string) string {
	t.Helper()
	h, err := bundle.ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range h.Manifest.Artifacts {
		if a.Kind == bundle.KindChart {
			return a.Digest
		}
	}
	t.Fatalf("no chart in %s", path)
	return ""
}

// isStateRequest reports a request on the site state repository.
func isStateRequest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/"+StateRepository+"/")
}

// isTagRequest reports a request on a release tag of a mirrored repository
// (an image, chart or model version; not a digest, not a sha256-<hex>
// referrers or attachment tag): what a rollback moves.
func isTagRequest(r *http.Request) bool {
	i := strings.LastIndex(r.URL.Path, "/manifests/")
	return i >= 0 && !isStateRequest(r) && !strings.HasPrefix(r.URL.Path[i+len("/manifests/"):], "sha256")
}

// raceFixture: a newer (1.0.1, sequence 200) and an older (1.0.0,
// sequence 100) bundle of one name whose charts differ.
func raceFixture(t *testing.T) (s *siteFixture, newer, older string) {
	s = newSiteFixture(t)
	newer = s.pack(t, "demo", "1.0.1", 200, nil)
	older = s.pack(t, "demo", "1.0.0", 100, func(dir string) {
		p := filepath.Join(dir, "charts/demo-app/templates/NOTES.txt")
		if err := os.WriteFile(p, []byte("the older chart\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if chartDigest(t, newer) == chartDigest(t, older) {
		t.Fatal("fixture: the two bundles carry the same chart")
	}
	return s, newer, older
}

// holdAt returns a proxy in front of backend that holds every request for
// which match is true until release is closed; reached is closed when the
// first arrives.
func holdAt(t *testing.T, backend string, match func(*http.Request) bool) (host string, reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	host = startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) {
			return false
		}
		once.Do(func() { close(reached) })
		<-release
		return false
	}, nil)
	return host, reached, release
}

func waitReached(t *testing.T, reached chan struct{}, errc chan error) {
	t.Helper()
	select {
	case <-reached:
	case err := <-errc:
		t.Fatalf("the held run ended before it reached the step: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the held run never reached the step")
	}
}

// holdOlder starts older (the older bundle's run, through a proxy that
// holds it at a step and closes reached there), waits until it is held,
// then runs newer (the newer bundle's run) to the end, which must succeed.
// The older run's result arrives on the channel once it is released.
func holdOlder(t *testing.T, reached chan struct{}, older, newer func() error) chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- older() }()
	waitReached(t, reached, errc)
	if err := newer(); err != nil {
		t.Fatalf("the newer bundle, while the older run is held: %v", err)
	}
	return errc
}

// TestMirrorConcurrentOlderTagsLast: the older bundle's run is held right
// before its first tag while the newer bundle is mirrored completely; then
// the older run moves the tags. It must not exit 0: it fails as refused by
// the site state, saying that a newer bundle was mirrored concurrently, and
// mirroring the newer bundle again restores its tags.
func TestMirrorConcurrentOlderTagsLast(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	p, reached, release := holdAt(t, backend, isTagRequest)
	errc := holdOlder(t, reached, func() error { _, err := mirrorFile(t, older, p, "race", s.policy, nil); return err },
		func() error { _, err := mirrorFile(t, newer, backend, "race", s.policy, nil); return err })
	close(release)
	err := <-errc
	if err == nil {
		t.Fatalf("the older run exited 0 although it moved %s back to its chart (%s) after the newer bundle was mirrored",
			chartTag("race"), tagDigestOf(t, backend, chartTag("race")))
	}
	checkSuperseded(t, err, "1.0.1", 200)
	// The remedy the error names: mirror the newer bundle again.
	if _, err := mirrorFile(t, newer, backend, "race", s.policy, nil); err != nil {
		t.Fatalf("mirroring the newer bundle again: %v", err)
	}
	if got, want := tagDigestOf(t, backend, chartTag("race")), chartDigest(t, newer); got != want {
		t.Errorf("%s = %s after mirroring the newer bundle again, want %s", chartTag("race"), got, want)
	}
	// And the older bundle stays refused.
	if _, err := mirrorFile(t, older, backend, "race", s.policy, nil); !errors.Is(err, ErrReplay) {
		t.Errorf("the older bundle afterwards: %v, want ErrReplay", err)
	}
}

// TestMirrorConcurrentOlderClaimsLate: the older run is held at its first
// write into the site state while the newer bundle is mirrored completely;
// released, it must not move a single tag.
func TestMirrorConcurrentOlderClaimsLate(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	var tagWrites atomic.Int32
	var released atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && isTagRequest(r) && released.Load() {
			tagWrites.Add(1)
		}
		if r.Method == http.MethodPut && isStateRequest(r) && strings.Contains(r.URL.Path, "/manifests/") {
			once.Do(func() {
				close(reached)
				<-release
			})
		}
		return false
	}, nil)
	errc := holdOlder(t, reached, func() error { _, err := mirrorFile(t, older, p, "late", s.policy, nil); return err },
		func() error { _, err := mirrorFile(t, newer, backend, "late", s.policy, nil); return err })
	want := tagDigestOf(t, backend, chartTag("late"))
	released.Store(true)
	close(release)
	err := <-errc
	if err == nil || !verify.IsFailure(err) {
		t.Fatalf("the older run: %v, want a refusal by the site state", err)
	}
	if n := tagWrites.Load(); n != 0 {
		t.Errorf("the older run wrote %d tags after the newer bundle was mirrored", n)
	}
	if got := tagDigestOf(t, backend, chartTag("late")); got != want || got != chartDigest(t, newer) {
		t.Errorf("%s = %s, want the newer bundle's %s", chartTag("late"), got, chartDigest(t, newer))
	}
}

// TestMirrorKilledAfterTags: a run of a newer bundle that ends after its
// tags are set but before the site state records it (a kill) still keeps
// older bundles out, and its rerun completes.
func TestMirrorKilledAfterTags(t *testing.T) {
	t.Parallel()
	s, newer, _ := raceFixture(t)
	mid := s.pack(t, "demo", "1.0.0", 150, func(dir string) {
		p := filepath.Join(dir, "charts/demo-app/templates/NOTES.txt")
		if err := os.WriteFile(p, []byte("the middle chart\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	backend := testkit.Start(t).Host
	if _, err := mirrorFile(t, mid, backend, "kill", s.policy, nil); err != nil {
		t.Fatalf("sequence 150: %v", err)
	}
	// The kill: the run's context ends at the first write into the site
	// state that comes after a tag was written.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tagged atomic.Bool
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && isTagRequest(r) {
			tagged.Store(true)
		}
		if tagged.Load() && r.Method == http.MethodPut && isStateRequest(r) && strings.Contains(r.URL.Path, "/manifests/") {
			cancel()
			http.Error(w, "killed", http.StatusServiceUnavailable)
			return true
		}
		return false
	}, nil)
	if _, err := mirrorWith(ctx, t, newer, p, "kill", s.policy, 5*time.Second, nil); err == nil {
		t.Fatal("the killed run succeeded")
	}
	if got, want := tagDigestOf(t, backend, chartTag("kill")), chartDigest(t, newer); got != want {
		t.Fatalf("fixture: the killed run did not get to move %s (%s, want %s)", chartTag("kill"), got, want)
	}
	// The replay of sequence 150 is refused, and moves nothing.
	if _, err := mirrorFile(t, mid, backend, "kill", s.policy, nil); !errors.Is(err, ErrReplay) || !verify.IsFailure(err) {
		t.Errorf("replay of sequence 150 after the killed run of 200: %v, want ErrReplay", err)
	}
	if got, want := tagDigestOf(t, backend, chartTag("kill")), chartDigest(t, newer); got != want {
		t.Errorf("%s moved back to %s", chartTag("kill"), got)
	}
	// The rerun of the killed bundle completes and records it.
	res, err := mirrorFile(t, newer, backend, "kill", s.policy, nil)
	if err != nil {
		t.Fatalf("rerun of the killed bundle: %v", err)
	}
	if res.Tags != 0 {
		t.Errorf("the rerun set %d tags, want 0 (they were right)", res.Tags)
	}
}

// TestMirrorTagMovedByAnotherWriter: a tag that another writer moves
// between this run's write and its read-back is named as such, not as a
// registry that does not store manifests byte for byte.
func TestMirrorTagMovedByAnotherWriter(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	backend := testkit.Start(t).Host
	var moved atomic.Bool
	var put sync.Map // paths of tags this run wrote
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !isTagRequest(r) {
			return false
		}
		if r.Method == http.MethodPut {
			put.Store(r.URL.Path, true)
			return false
		}
		if _, ok := put.Load(r.URL.Path); !ok || r.Method != http.MethodGet || !moved.CompareAndSwap(false, true) {
			return false
		}
		// Another writer sets the tag to another image.
		i := strings.LastIndex(r.URL.Path, "/manifests/")
		repo := strings.TrimPrefix(r.URL.Path[:i], "/v2/")
		ref, err := name.NewTag(backend+"/"+repo+":"+r.URL.Path[i+len("/manifests/"):], name.Insecure)
		if err != nil {
			t.Error(err)
			return false
		}
		img, err := random.Image(64, 1)
		if err != nil {
			t.Error(err)
			return false
		}
		if err := remote.Write(ref, img); err != nil {
			t.Error(err)
		}
		return false
	}, nil)
	_, err := f.mirror(t, p, "moved")
	if !moved.Load() {
		t.Fatal("fixture: no tag was read back")
	}
	if err == nil {
		t.Fatal("the run succeeded although one of its tags names another image")
	}
	checkTagMoved(t, err)
}

// checkSuperseded checks that err is the refusal of a run whose tags may
// have replaced those of the newer bundle version/seq.
func checkSuperseded(t *testing.T, err error, version string, seq uint64) {
	t.Helper()
	var ce *ConcurrentMirrorError
	if !errors.Is(err, ErrConcurrentNewer) || !verify.IsFailure(err) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a refusal (verify.Failure) wrapping ErrConcurrentNewer", err)
	}
	if ce.NewerVersion != version || ce.NewerSequence != seq {
		t.Errorf("the error names %s (sequence %d) as the newer bundle, want %s (%d)", ce.NewerVersion, ce.NewerSequence, version, seq)
	}
	t.Logf("the older run: %v", err)
}

// checkTagMoved checks that err names a tag moved by another writer, as a
// registry error, not as a rejection of the bundle.
func checkTagMoved(t *testing.T, err error) {
	t.Helper()
	var tm *TagMovedError
	if !errors.As(err, &tm) || !errors.Is(err, ErrTagMoved) || !errors.Is(err, ErrRegistry) || verify.IsFailure(err) {
		t.Fatalf("err = %v, want a TagMovedError (a registry error, not a rejection)", err)
	}
	t.Logf("moved tag: %v", err)
}

// TestMirrorStateDocumentLost: the state document is a read-merge-write
// that a concurrent writer can undo (here: replaced by the document of a
// prefix where only the older bundle was mirrored). The newer bundle's
// intent still keeps the older one out.
func TestMirrorStateDocumentLost(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	if _, err := mirrorFile(t, older, backend, "stale", s.policy, nil); err != nil {
		t.Fatalf("older into the stale prefix: %v", err)
	}
	if _, err := mirrorFile(t, newer, backend, "lost", s.policy, nil); err != nil {
		t.Fatalf("newer: %v", err)
	}
	from, err := name.NewTag(backend+"/stale/"+StateRepository+":demo", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	to, err := name.NewTag(backend+"/lost/"+StateRepository+":demo", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(to, img); err != nil {
		t.Fatal(err)
	}
	if _, err := mirrorFile(t, older, backend, "lost", s.policy, nil); !errors.Is(err, ErrReplay) || !verify.IsFailure(err) {
		t.Errorf("the older bundle after its state document replaced the newer's: %v, want ErrReplay", err)
	}
	if got, want := tagDigestOf(t, backend, chartTag("lost")), chartDigest(t, newer); got != want {
		t.Errorf("%s moved back to %s", chartTag("lost"), got)
	}
}
