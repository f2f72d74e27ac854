package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/verify"
)

// Claims (intents) against registries whose tag listing is odd, forged
// intents, runs that fail after their tags, and the tag count of a
// long-lived prefix (found by a review of the intent protocol).

// headID is the bundleID of the bundle at path.
func headID(t *testing.T, path string) bundleID {
	t.Helper()
	h, err := bundle.ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := bundleID{name: h.Manifest.Name, version: h.Manifest.Version, root: h.Manifest.Root.Digest}
	if h.Statement != nil {
		id.sequence = h.Statement.Predicate.Sequence
	}
	return id
}

// putIntent writes an intent manifest (as airlock writes it) straight into
// the registry, as anyone with push access to the state repository can,
// and returns its digest.
func putIntent(t *testing.T, backend, prefix string, id bundleID, withdrawn bool) string {
	t.Helper()
	ann := map[string]string{
		annotationName: id.name, annotationVersion: id.version,
		annotationSequence: strconv.FormatUint(id.sequence, 10), annotationRoot: id.root,
		annotationCreated: time.Now().UTC().Format(time.RFC3339),
	}
	if withdrawn {
		ann[annotationWithdrawn] = "true"
	}
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": IntentMediaType,
		"config":      map[string]any{"mediaType": emptyJSONType, "digest": emptyJSONDigest, "size": 2},
		"layers":      []any{map[string]any{"mediaType": emptyJSONType, "digest": emptyJSONDigest, "size": 2}},
		"annotations": ann,
	})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + backend + "/v2/" + prefix + "/" + StateRepository
	resp, err := http.Post(base+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resolveLocation(resp)
	if err != nil {
		t.Fatal(err)
	}
	if loc, err = withQuery(loc, "digest", emptyJSONDigest); err != nil {
		t.Fatal(err)
	}
	do := func(method, u, ctype string, body []byte, want int) *http.Response {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s", method, u, resp.Status)
		}
		return resp
	}
	do(http.MethodPut, loc, "application/octet-stream", []byte("{}"), http.StatusCreated)
	resp = do(http.MethodPut, base+"/manifests/"+intentTag(id), "application/vnd.oci.image.manifest.v1+json", raw, http.StatusCreated)
	return resp.Header.Get("Docker-Content-Digest")
}

// lostDoc mirrors older, then newer into prefix, then puts back the state
// document written after the older run (the lost update intents exist
// for): the newer bundle's intent is all that keeps the older one out.
func lostDoc(t *testing.T, s *siteFixture, backend, prefix, newer, older string) {
	t.Helper()
	if _, err := mirrorFile(t, older, backend, prefix, s.policy, nil); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(backend+"/"+prefix+"/"+StateRepository+":demo", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.RawManifest(); err != nil {
		t.Fatal(err)
	}
	if _, err := mirrorFile(t, newer, backend, prefix, s.policy, nil); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, stale); err != nil {
		t.Fatal(err)
	}
}

func isStateTagList(r *http.Request) bool {
	return r.Method == http.MethodGet && isStateRequest(r) && strings.HasSuffix(r.URL.Path, "/tags/list")
}

// stateTags lists the tags at path (a tags/list path) of backend, sorted.
func stateTags(t *testing.T, backend, path string) []string {
	resp, err := http.Get("http://" + backend + path)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Error(err)
	}
	sort.Strings(body.Tags)
	return body.Tags
}

// TestMirrorClaimOddTagListing: registries whose tag listing is odd. Each
// must end with the older bundle refused (or the run failing) and the
// chart tag still on the newer bundle; never with exit 0.
func TestMirrorClaimOddTagListing(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	newerID := headID(t, newer)
	for i, v := range []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request) bool
	}{
		{"Control", func(w http.ResponseWriter, r *http.Request) bool { return false }},
		{"List404", func(w http.ResponseWriter, r *http.Request) bool {
			if isStateTagList(r) {
				http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
				return true
			}
			return false
		}},
		{"List403", func(w http.ResponseWriter, r *http.Request) bool {
			if isStateTagList(r) {
				http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
				return true
			}
			return false
		}},
		{"OneTagPagesWithoutLink", func(w http.ResponseWriter, r *http.Request) bool {
			if !isStateTagList(r) {
				return false
			}
			last := r.URL.Query().Get("last")
			page := []string{}
			for _, tg := range stateTags(t, backend, r.URL.Path) {
				if tg > last {
					page = append(page, tg)
					break
				}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"tags": page})
			return true
		}},
		{"LinkIgnoringLast", func(w http.ResponseWriter, r *http.Request) bool {
			if !isStateTagList(r) {
				return false
			}
			all := stateTags(t, backend, r.URL.Path)
			w.Header().Set("Link", `<`+r.URL.Path+`?n=1&last=`+all[0]+`>; rel="next"`)
			_ = json.NewEncoder(w).Encode(map[string]any{"tags": all[:1]})
			return true
		}},
		{"NewerIntentNotServed", func(w http.ResponseWriter, r *http.Request) bool {
			if isStateRequest(r) && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/"+intentTag(newerID)) {
				http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
				return true
			}
			return false
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			prefix := fmt.Sprintf("odd%d", i)
			lostDoc(t, s, backend, prefix, newer, older)
			p := startProxy(t, backend, v.fault, nil)
			start := time.Now()
			_, err := mirrorFile(t, older, p, prefix, s.policy, nil)
			t.Logf("%v (%.1fs)", err, time.Since(start).Seconds())
			if err == nil {
				t.Errorf("the older bundle was mirrored over the newer one's claim (exit 0)")
			}
			if got := tagDigestOf(t, backend, chartTag(prefix)); got != chartDigest(t, newer) {
				t.Errorf("%s = %s, want the newer bundle's chart", chartTag(prefix), got)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

// TestMirrorClaimUnlistedOwnIntent: a registry whose tag list leaves out
// the intent the run just wrote is refused before any tag moves.
func TestMirrorClaimUnlistedOwnIntent(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	path := s.pack(t, "demo", "1.0.1", 200, nil)
	backend := testkit.Start(t).Host
	var tagWrites atomic.Int32
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && isTagRequest(r) {
			tagWrites.Add(1)
		}
		if !isStateTagList(r) {
			return false
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"tags": []string{"demo"}})
		return true
	}, nil)
	_, err := mirrorFile(t, path, p, "unlisted", s.policy, nil)
	if !errors.Is(err, ErrSiteState) {
		t.Fatalf("err = %v, want ErrSiteState", err)
	}
	if n := tagWrites.Load(); n != 0 {
		t.Errorf("%d tags written", n)
	}
}

// TestMirrorClaimTagListBounded: a tag list of huge tags is refused at its
// first page (a tag has at most 128 characters), not held page by page.
func TestMirrorClaimTagListBounded(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	path := s.pack(t, "demo", "1.0.1", 200, nil)
	backend := testkit.Start(t).Host
	var served atomic.Int32
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !isStateTagList(r) {
			return false
		}
		k := int(served.Add(1))
		var b strings.Builder
		b.WriteString(`{"name":"x","tags":[`)
		for j := range 1000 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"%06d%04d%s"`, k, j, strings.Repeat("x", 4000))
		}
		b.WriteString("]}")
		_, _ = io.WriteString(w, b.String())
		return true
	}, nil)
	_, err := mirrorFile(t, path, p, "mem", s.policy, nil)
	if !errors.Is(err, ErrSiteState) {
		t.Errorf("err = %v, want ErrSiteState", err)
	}
	if n := served.Load(); n > 1 {
		t.Errorf("%d pages of 4 MiB read", n)
	}
}

// TestMirrorClaimTooManyTags: more than 100,000 tags is an error that says so.
func TestMirrorClaimTooManyTags(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	path := s.pack(t, "demo", "1.0.1", 200, nil)
	backend := testkit.Start(t).Host
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !isStateTagList(r) {
			return false
		}
		k := 0
		if l := r.URL.Query().Get("last"); l != "" {
			k, _ = strconv.Atoi(strings.TrimPrefix(l, "a")[:6])
			k++
		}
		tags := make([]string, 0, 1000)
		for j := range 1000 {
			tags = append(tags, fmt.Sprintf("a%06d%04d", k, j))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"tags": tags})
		return true
	}, nil)
	_, err := mirrorFile(t, path, p, "many", s.policy, nil)
	var se *SiteStateError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "100000") {
		t.Errorf("err = %v, want a SiteStateError about the tag count", err)
	}
}

// TestMirrorClaimUnservedIntentsNoWait: intents listed but not served
// count as claims from their tag names, without waiting for each.
func TestMirrorClaimUnservedIntentsNoWait(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	path := s.pack(t, "demo", "1.0.1", 200, nil)
	backend := testkit.Start(t).Host
	const n = 5
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !isStateTagList(r) {
			return false
		}
		tags := stateTags(t, backend, r.URL.Path)
		for i := range n {
			tags = append(tags, intentTag(bundleID{name: "demo", sequence: uint64(1000 + i), root: "sha256:" + strings.Repeat("c", 64)}))
		}
		if r.URL.Query().Get("last") != "" {
			tags = nil
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"tags": tags})
		return true
	}, nil)
	start := time.Now()
	_, err := mirrorFile(t, path, p, "unread", s.policy, nil)
	var fe *FreshnessError
	if !errors.As(err, &fe) || !errors.Is(err, ErrReplay) {
		t.Fatalf("err = %v, want a refusal by the unserved claim", err)
	}
	if fe.Highest != 1004 || !strings.HasSuffix(fe.Intent, intentTag(bundleID{name: "demo", sequence: 1004, root: "sha256:" + strings.Repeat("c", 64)})) {
		t.Errorf("refusal names highest %d, intent %q", fe.Highest, fe.Intent)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestMirrorClaimForged: an intent with sequence 2^64-1, written by
// someone with push access to the state repository, blocks every release;
// the refusal names its tag and digest, and deleting that manifest (as
// format.md says) lets the next release through.
func TestMirrorClaimForged(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	first := s.pack(t, "demo", "1.0.1", 200, nil)
	next := s.pack(t, "demo", "1.0.2", 300, nil)
	backend := testkit.Start(t).Host
	if _, err := mirrorFile(t, first, backend, "forged", s.policy, nil); err != nil {
		t.Fatal(err)
	}
	evil := bundleID{name: "demo", version: "9.9.9", sequence: ^uint64(0), root: "sha256:" + strings.Repeat("ab", 32)}
	dg := putIntent(t, backend, "forged", evil, false)
	_, err := mirrorFile(t, next, backend, "forged", s.policy, nil)
	var fe *FreshnessError
	if !errors.As(err, &fe) || !verify.IsFailure(err) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if want := backend + "/forged/" + StateRepository + ":" + intentTag(evil); fe.Intent != want || fe.IntentDigest != dg {
		t.Errorf("the refusal names the intent %q (%s), want %q (%s)", fe.Intent, fe.IntentDigest, want, dg)
	}
	if !strings.Contains(err.Error(), dg) {
		t.Errorf("the message does not name the digest to delete: %v", err)
	}
	req, err := http.NewRequest(http.MethodDelete, "http://"+backend+"/v2/forged/"+StateRepository+"/manifests/"+fe.IntentDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %s", resp.Status)
	}
	if _, err := mirrorFile(t, next, backend, "forged", s.policy, nil); err != nil {
		t.Errorf("after deleting the forged intent: %v", err)
	}
}

// TestMirrorOlderFailsAfterTags: the older run claims and is held before
// its tags; the newer is mirrored completely (exit 0); the older then
// moves its tags and is killed before its final check. The rerun of the
// older bundle says that an earlier run of it may have set its tags and
// to mirror the newer bundle again.
func TestMirrorOlderFailsAfterTags(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var released, tagged atomic.Bool
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if isTagRequest(r) && r.Method == http.MethodPut {
			once.Do(func() { close(reached); <-release })
			tagged.Store(true)
		}
		if released.Load() && tagged.Load() && isStateTagList(r) {
			cancel() // the kill
			http.Error(w, "killed", http.StatusServiceUnavailable)
			return true
		}
		return false
	}, nil)
	errc := holdOlder(t, reached, func() error {
		_, err := mirrorWith(ctx, t, older, p, "fail", s.policy, 5*time.Second, nil)
		return err
	}, func() error { _, err := mirrorFile(t, newer, backend, "fail", s.policy, nil); return err })
	released.Store(true)
	close(release)
	if err := <-errc; err == nil {
		t.Fatal("the killed run succeeded")
	}
	if tagDigestOf(t, backend, chartTag("fail")) != chartDigest(t, older) {
		t.Fatal("fixture: the older run did not move the chart tag")
	}
	_, err := mirrorFile(t, older, backend, "fail", s.policy, nil)
	var ce *ConcurrentMirrorError
	if !errors.As(err, &ce) || !ce.Earlier || !errors.Is(err, ErrReplay) || !verify.IsFailure(err) {
		t.Fatalf("rerun of the older bundle: %v, want a ConcurrentMirrorError about an earlier run", err)
	}
	if ce.NewerVersion != "1.0.1" || ce.NewerSequence != 200 {
		t.Errorf("names %s (%d), want 1.0.1 (200)", ce.NewerVersion, ce.NewerSequence)
	}
	t.Logf("rerun: %v", err)
	if _, err := mirrorFile(t, newer, backend, "fail", s.policy, nil); err != nil {
		t.Fatalf("mirroring the newer bundle again: %v", err)
	}
	if got := tagDigestOf(t, backend, chartTag("fail")); got != chartDigest(t, newer) {
		t.Errorf("%s = %s after mirroring the newer bundle again", chartTag("fail"), got)
	}
}

// TestMirrorOlderFailsAfterTagsNewerClaimed: the older run's registry
// fails after its tags while a newer bundle was claimed meanwhile: the
// run says its tags may have replaced the newer bundle's (exit 3), not
// only that the registry failed.
func TestMirrorOlderFailsAfterTagsNewerClaimed(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	var released atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if !isTagRequest(r) || r.Method != http.MethodPut {
			return false
		}
		once.Do(func() { close(reached); <-release; released.Store(true) })
		if released.Load() && strings.Contains(r.URL.Path, "/charts/") {
			http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
			return true
		}
		return false
	}, nil)
	errc := holdOlder(t, reached, func() error { _, err := mirrorFile(t, older, p, "failnc", s.policy, nil); return err },
		func() error { _, err := mirrorFile(t, newer, backend, "failnc", s.policy, nil); return err })
	close(release)
	checkSuperseded(t, <-errc, "1.0.1", 200)
}

// TestMirrorWithdrawnNewerIntentRelived: a withdrawn intent of the newer
// bundle (left by an earlier, refused run of it) that a rerun of it makes
// live while the older run sets its tags is read again by the older run.
func TestMirrorWithdrawnNewerIntentRelived(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	putIntent(t, backend, "wd", headID(t, newer), true)
	pX, reachedX, releaseX := holdAt(t, backend, func(r *http.Request) bool { return r.Method == http.MethodPut && isTagRequest(r) })
	errX := make(chan error, 1)
	go func() { _, err := mirrorFile(t, older, pX, "wd", s.policy, nil); errX <- err }()
	waitReached(t, reachedX, errX)
	pY, reachedY, releaseY := holdAtRecord(t, backend)
	errY := make(chan error, 1)
	go func() { _, err := mirrorFile(t, newer, pY, "wd", s.policy, nil); errY <- err }()
	waitReached(t, reachedY, errY)
	close(releaseX)
	ex := <-errX
	close(releaseY)
	if ey := <-errY; ey != nil {
		t.Logf("the newer run: %v", ey)
	}
	if ex == nil {
		t.Fatalf("the older run exited 0; %s names the older chart: %v", chartTag("wd"), tagDigestOf(t, backend, chartTag("wd")) == chartDigest(t, older))
	}
	checkSuperseded(t, ex, "1.0.1", 200)
}

// holdAtRecord: a proxy that holds the run at its first state manifest
// write after a tag was written (recordSite): its intent is live, the
// document does not have it.
func holdAtRecord(t *testing.T, backend string) (host string, reached, release chan struct{}) {
	var tagged atomic.Bool
	reached, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	host = startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && isTagRequest(r) {
			tagged.Store(true)
		}
		if tagged.Load() && r.Method == http.MethodPut && isStateRequest(r) && strings.Contains(r.URL.Path, "/manifests/") {
			once.Do(func() { close(reached); <-release })
		}
		return false
	}, nil)
	return host, reached, release
}

// TestMirrorIntentOnlyNewerAfterOlderTags: the newer bundle is claimed
// (and tagged) but not yet recorded when the older run, which tagged
// after it, checks again: only its intent shows it.
func TestMirrorIntentOnlyNewerAfterOlderTags(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	pX, reachedX, releaseX := holdAt(t, backend, func(r *http.Request) bool { return r.Method == http.MethodPut && isTagRequest(r) })
	errX := make(chan error, 1)
	go func() { _, err := mirrorFile(t, older, pX, "io", s.policy, nil); errX <- err }()
	waitReached(t, reachedX, errX)
	pY, reachedY, releaseY := holdAtRecord(t, backend)
	errY := make(chan error, 1)
	go func() { _, err := mirrorFile(t, newer, pY, "io", s.policy, nil); errY <- err }()
	waitReached(t, reachedY, errY)
	close(releaseX)
	ex := <-errX
	close(releaseY)
	<-errY
	checkSuperseded(t, ex, "1.0.1", 200)
	var ce *ConcurrentMirrorError
	if errors.As(ex, &ce) && !strings.HasSuffix(ce.Intent, intentTag(headID(t, newer))) {
		t.Errorf("the error names the intent %q", ce.Intent)
	}
}

// TestMirrorIntentOnlyNewerBeforeOlderClaim: the older run starts while
// the newer one is claimed but not recorded: it is refused, naming the
// claim's intent.
func TestMirrorIntentOnlyNewerBeforeOlderClaim(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	pY, reachedY, releaseY := holdAtRecord(t, backend)
	errY := make(chan error, 1)
	go func() { _, err := mirrorFile(t, newer, pY, "ib", s.policy, nil); errY <- err }()
	waitReached(t, reachedY, errY)
	_, ex := mirrorFile(t, older, backend, "ib", s.policy, nil)
	close(releaseY)
	if ey := <-errY; ey != nil {
		t.Errorf("the newer run: %v", ey)
	}
	var fe *FreshnessError
	if !errors.As(ex, &fe) || !errors.Is(ex, ErrReplay) {
		t.Fatalf("the older run: %v, want ErrReplay", ex)
	}
	if !strings.HasSuffix(fe.Intent, intentTag(headID(t, newer))) || fe.IntentDigest == "" {
		t.Errorf("the refusal names the intent %q (%s)", fe.Intent, fe.IntentDigest)
	}
	if got := tagDigestOf(t, backend, chartTag("ib")); got != chartDigest(t, newer) {
		t.Errorf("%s = %s, want the newer chart", chartTag("ib"), got)
	}
}

// TestMirrorPrunesRecordedIntents: a completed run deletes the intents of
// lower sequences that the document records; its own stays.
func TestMirrorPrunesRecordedIntents(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	backend := testkit.Start(t).Host
	var ids []bundleID
	for i, seq := range []uint64{100, 200, 300} {
		path := s.pack(t, "demo", fmt.Sprintf("1.0.%d", i), seq, nil)
		ids = append(ids, headID(t, path))
		if _, err := mirrorFile(t, path, backend, "prune", s.policy, nil); err != nil {
			t.Fatalf("sequence %d: %v", seq, err)
		}
	}
	var intents []string
	for _, tg := range stateTags(t, backend, "/v2/prune/"+StateRepository+"/tags/list") {
		if strings.HasPrefix(tg, intentTagPrefix) {
			intents = append(intents, tg)
		}
	}
	if len(intents) != 1 || intents[0] != intentTag(ids[2]) {
		t.Errorf("intents left: %v, want only %s", intents, intentTag(ids[2]))
	}
}

// isIntentPut reports whether r writes an intent of the state repository.
func isIntentPut(r *http.Request) bool {
	return r.Method == http.MethodPut && isStateRequest(r) && strings.Contains(r.URL.Path, "/manifests/"+intentTagPrefix)
}

// failListAfterIntent starts a proxy to backend whose state tag list
// answers 503 once a run wrote its intent (a transient registry error
// during claimSite).
func failListAfterIntent(t *testing.T, backend string) string {
	var wrote atomic.Bool
	return startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if isIntentPut(r) {
			wrote.Store(true)
		}
		if wrote.Load() && isStateTagList(r) {
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE"}]}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	}, nil)
}

// TestMirrorClaimKeptOnReadError: the newer run sets its tags and fails
// before its record, so its intent is the only claim. A rerun of the newer
// bundle that meets a registry error while it reads its claim back must not
// withdraw that intent (the same tag): the older bundle stays refused.
func TestMirrorClaimKeptOnReadError(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	var tagged atomic.Bool
	p1 := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && isTagRequest(r) {
			tagged.Store(true)
		}
		if tagged.Load() && r.Method == http.MethodPut && isStateRequest(r) && strings.HasSuffix(r.URL.Path, "/manifests/demo") {
			http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
			return true
		}
		return false
	}, nil)
	_, err := mirrorFile(t, newer, p1, "wd1", s.policy, nil)
	t.Logf("newer run 1 (fails at its record): %v", err)
	if got := tagDigestOf(t, backend, chartTag("wd1")); got != chartDigest(t, newer) {
		t.Fatalf("fixture: chart tag not the newer one")
	}
	if _, err := mirrorWith(context.Background(), t, older, backend, "wd1", s.policy, 5*time.Second, func(o *MirrorOptions) {}); err == nil {
		t.Fatal("fixture: older accepted even before the withdraw")
	} else {
		t.Logf("older before the rerun: refused: %v", err)
	}
	_, err = mirrorFile(t, newer, failListAfterIntent(t, backend), "wd1", s.policy, nil)
	t.Logf("newer rerun (transient list error at claim): %v", err)
	_, err = mirrorFile(t, older, backend, "wd1", s.policy, nil)
	if err == nil && tagDigestOf(t, backend, chartTag("wd1")) == chartDigest(t, older) {
		t.Errorf("the older bundle mirrored with exit 0 over the newer bundle's tags after the newer rerun withdrew the only claim")
	} else {
		t.Logf("older: %v", err)
	}
}

// TestMirrorClaimKeptOnReadErrorAfterLostDoc: older then newer complete,
// then the state document suffers a lost update (the stale one put back);
// a rerun of the newer bundle meeting a registry error during its claim
// keeps its intent, so the older bundle is still refused.
func TestMirrorClaimKeptOnReadErrorAfterLostDoc(t *testing.T) {
	t.Parallel()
	s, newer, older := raceFixture(t)
	backend := testkit.Start(t).Host
	lostDoc(t, s, backend, "wd2", newer, older)
	_, err := mirrorFile(t, newer, failListAfterIntent(t, backend), "wd2", s.policy, nil)
	t.Logf("newer rerun (transient list error at claim): %v", err)
	_, err = mirrorFile(t, older, backend, "wd2", s.policy, nil)
	if err == nil && tagDigestOf(t, backend, chartTag("wd2")) == chartDigest(t, older) {
		t.Errorf("the older bundle mirrored with exit 0 over the newer bundle's tags")
	} else {
		t.Logf("older: %v", err)
	}
}
