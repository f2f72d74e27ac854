package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/referrer"
)

// A read-only registry served straight from a bundle (`airlock serve
// --bundle`). It is its own small http.Handler rather than the distribution
// application over a storage driver: the content is a fixed, already
// verified graph (every repository, tag, manifest and referrer is known
// when the head is read), the API needed is the pull half of the spec plus
// the referrers API, and a blob must be checked on its way out and the
// response aborted when it fails its digest, which a storage driver's
// Reader cannot signal to the application after it has started writing.

const (
	// bundleCopyBuffer is the size of the buffer a blob is copied through.
	bundleCopyBuffer = 256 << 10
	// bundleWriteChunk is the most one write to the client carries: each
	// must go out within the write timeout.
	bundleWriteChunk = 64 << 10
	// maxListPage caps one page of the catalog or a tags list.
	maxListPage = 1000
)

// bundleRepo is one repository of a served bundle.
type bundleRepo struct {
	tags      map[string]string // tag -> manifest digest
	tagNames  []string          // sorted
	manifests map[string]bundleManifest
	blobs     map[string]bool // configs and layers of the repository's manifests
	referrers map[string][]v1.Descriptor
}

type bundleManifest struct {
	mediaType string
	data      []byte
}

// bundleHandler answers the pull side of the OCI distribution API from an
// Archive whose head the caller trusts.
type bundleHandler struct {
	a     *bundle.Archive
	repos map[string]*bundleRepo
	names []string // sorted repository names
	log   *slog.Logger
	// writeTimeout bounds each write of a blob's bytes to the client.
	writeTimeout time.Duration
}

// BundleError reports a bundle that cannot be served as a registry: its
// repositories or tags do not form a valid registry namespace.
type BundleError struct {
	Err error
}

func (e *BundleError) Error() string { return "serve the bundle: " + e.Err.Error() }
func (e *BundleError) Unwrap() error { return e.Err }

// newBundleHandler places the bundle's artifacts exactly as mirror would
// (bundle.Head.Locations, no prefix) and indexes their manifests, blobs
// and referrers.
func newBundleHandler(a *bundle.Archive, log *slog.Logger, writeTimeout time.Duration) (*bundleHandler, error) {
	h := a.Head()
	locs, err := h.Locations(bundle.LocateOptions{})
	if err != nil {
		return nil, &BundleError{Err: err}
	}
	bh := &bundleHandler{a: a, repos: map[string]*bundleRepo{}, log: log, writeTimeout: writeTimeout}
	for _, loc := range locs {
		if _, err := reference.WithName(loc.Repo); err != nil {
			return nil, &BundleError{Err: fmt.Errorf("%s: repository %q: %w", loc.Source, loc.Repo, err)}
		}
		if loc.Tag != "" && !bundle.ValidTag(loc.Tag) {
			return nil, &BundleError{Err: fmt.Errorf("%s: tag %q is not a valid tag", loc.Source, loc.Tag)}
		}
		c, err := h.Content(loc.Artifact)
		if err != nil {
			return nil, &BundleError{Err: err}
		}
		repo := bh.repos[loc.Repo]
		if repo == nil {
			repo = &bundleRepo{tags: map[string]string{}, manifests: map[string]bundleManifest{}, blobs: map[string]bool{}, referrers: map[string][]v1.Descriptor{}}
			bh.repos[loc.Repo] = repo
		}
		if loc.Tag != "" {
			repo.tags[loc.Tag] = h.Manifest.Artifacts[loc.Artifact].Digest
		}
		for _, m := range c.Manifests {
			if _, ok := repo.manifests[m.Digest]; ok {
				continue
			}
			mt := manifestMediaType(m.MediaType, m.Data)
			repo.manifests[m.Digest] = bundleManifest{mediaType: mt, data: m.Data}
			info, err := referrer.Parse(digest.Digest(m.Digest), mt, m.Data)
			if err == nil && info.Subject != "" {
				s := info.Subject.String()
				repo.referrers[s] = append(repo.referrers[s], info.Desc)
			}
		}
		for _, cf := range c.Configs {
			repo.blobs[cf.Digest] = true
		}
		for _, l := range c.Layers {
			if _, ok := a.Lookup(l.Digest); ok {
				repo.blobs[l.Digest] = true
			}
		}
	}
	for name, repo := range bh.repos {
		bh.names = append(bh.names, name)
		for t := range repo.tags {
			repo.tagNames = append(repo.tagNames, t)
		}
		sort.Strings(repo.tagNames)
		for s, ds := range repo.referrers {
			slices.SortFunc(ds, func(x, y v1.Descriptor) int { return strings.Compare(x.Digest.String(), y.Digest.String()) })
			repo.referrers[s] = ds
		}
	}
	sort.Strings(bh.names)
	return bh, nil
}

// manifestMediaType is the media type a manifest is served with: the one
// its parent's descriptor gives, else its own mediaType field, else (a Helm
// chart manifest as Helm pushes it has none) an OCI image manifest.
func manifestMediaType(fromDesc string, data []byte) string {
	if fromDesc != "" {
		return fromDesc
	}
	var f struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(data, &f) == nil && f.MediaType != "" {
		return f.MediaType
	}
	return v1.MediaTypeImageManifest
}

func (bh *bundleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if rw.aborted == "" {
				rw.aborted, rw.abortedByServer = fmt.Sprint(p), true
			}
			logRequest(bh.log, r, rw, start)
			panic(p)
		}
		logRequest(bh.log, r, rw, start)
	}()
	bh.serve(rw, r)
}

// markAborted records on the request's responseWriter why its response
// was not completed, for its log line; byServer says the server ended it
// (a failed check, a client that stopped reading) rather than the client.
func markAborted(w http.ResponseWriter, reason string, byServer bool) {
	if rw, ok := w.(*responseWriter); ok {
		rw.aborted, rw.abortedByServer = reason, byServer
	}
}

func (bh *bundleHandler) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnsupported.WithMessage("this registry serves a bundle read-only: "+r.Method+" is not supported"))
		return
	}
	p := r.URL.Path
	switch p {
	case "/v2", "/v2/":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, "{}")
		}
		return
	case "/v2/_catalog":
		bh.catalog(w, r)
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		if repo := bh.repo(w, name); repo != nil {
			bh.tagsList(w, r, name, repo)
		}
		return
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	head, ref := rest[:i], rest[i+1:]
	switch {
	case strings.HasSuffix(head, "/manifests"):
		if repo := bh.repo(w, strings.TrimSuffix(head, "/manifests")); repo != nil {
			bh.manifest(w, r, repo, ref)
		}
	case strings.HasSuffix(head, "/blobs"):
		if repo := bh.repo(w, strings.TrimSuffix(head, "/blobs")); repo != nil {
			bh.blob(w, r, repo, ref)
		}
	case strings.HasSuffix(head, "/"+referrersSegment):
		bh.referrers(w, r, strings.TrimSuffix(head, "/"+referrersSegment), ref)
	default:
		http.NotFound(w, r)
	}
}

// repo returns the named repository, or answers NAME_INVALID or
// NAME_UNKNOWN and returns nil.
func (bh *bundleHandler) repo(w http.ResponseWriter, name string) *bundleRepo {
	if _, err := reference.WithName(name); err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
		return nil
	}
	repo := bh.repos[name]
	if repo == nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameUnknown.WithDetail(map[string]string{"name": name}))
	}
	return repo
}

func (bh *bundleHandler) manifest(w http.ResponseWriter, r *http.Request, repo *bundleRepo, ref string) {
	d := ref
	if bundle.ValidTag(ref) {
		t, ok := repo.tags[ref]
		if !ok {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestUnknown.WithDetail(map[string]string{"tag": ref}))
			return
		}
		d = t
	} else if _, err := digest.Parse(ref); err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	m, ok := repo.manifests[d]
	if !ok {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestUnknown.WithDetail(map[string]string{"digest": d}))
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Docker-Content-Digest", d)
	h.Set("ETag", `"`+d+`"`)
	if done, _ := preconditions(w, r, `"`+d+`"`); done {
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(m.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.data)
	}
}

// blob answers GET and HEAD of a blob, whole or (one Range) in part, with
// the conditional requests of ServeContent (see preconditions). A manifest
// of the repository is a blob too, as in distribution. A body blob is
// checked against its digest before any range of it is sent; a whole one
// is checked as it is sent, unless it was checked already.
func (bh *bundleHandler) blob(w http.ResponseWriter, r *http.Request, repo *bundleRepo, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	var size int64
	var open func(off, n int64) (io.ReadCloser, error)
	fromBundle := false
	if m, ok := repo.manifests[ref]; ok {
		size = int64(len(m.data))
		open = func(off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(m.data[off : off+n])), nil
		}
	} else if desc, ok := bh.a.Lookup(ref); ok && repo.blobs[ref] {
		size, fromBundle = desc.Size, true
		open = func(off, n int64) (io.ReadCloser, error) {
			// The Archive checks every frame against its signed sha256
			// before decoding it, decodes the next frame ahead on another
			// core while this one is sent, and checks a whole blob
			// against its digest as it is sent: the bytes that complete a
			// mismatch come with the error and are withheld by the caller.
			return bh.a.Open(r.Context(), ref, off, n)
		}
	} else {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeBlobUnknown.WithDetail(map[string]string{"digest": d.String()}))
		return
	}
	h := w.Header()
	etag := `"` + ref + `"`
	h.Set("Docker-Content-Digest", ref)
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	done, rg := preconditions(w, r, etag)
	if done {
		return
	}
	if fromBundle {
		if checked, err := bh.a.BlobChecked(ref); checked && err != nil {
			bh.blobFailed(w, r, ref, false, err)
			return
		}
	}
	off, n, status := int64(0), size, http.StatusOK
	if rg != "" {
		o, k, ok, satisfiable := parseRange(rg, size)
		switch {
		case !satisfiable:
			h.Del("Content-Length")
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			_ = errcode.ServeJSON(w, errcode.ErrorCodeRangeInvalid.WithDetail(map[string]string{"range": rg}))
			return
		case ok:
			off, n, status = o, k, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	if fromBundle && status == http.StatusPartialContent {
		// A part of a blob is sent only once the whole blob is known to
		// match its digest: checked once per blob for the server's life,
		// concurrent requests sharing the check.
		if err := bh.a.CheckBlob(r.Context(), ref); err != nil {
			bh.blobFailed(w, r, ref, false, err)
			return
		}
	}
	rc, err := open(off, n)
	if err != nil {
		bh.blobFailed(w, r, ref, false, err)
		return
	}
	defer rc.Close()
	// A client that stops reading (or takes in less than
	// bundleWriteChunk in writeTimeout) is cut off. The Archive pins no
	// frame while we write: it is copied into buf first.
	ctl := http.NewResponseController(w)
	defer func() { _ = ctl.SetWriteDeadline(time.Time{}) }() // the connection may serve another request
	buf := make([]byte, bundleCopyBuffer)
	started := false
	for {
		k, err := rc.Read(buf)
		if err != nil && err != io.EOF {
			// The bytes of this last read are withheld: a whole-blob read
			// that fails its digest reports it together with its final
			// bytes, which must not reach the client.
			bh.blobFailed(w, r, ref, started, err)
			return
		}
		if k > 0 {
			if !started {
				started = true
				w.WriteHeader(status)
			}
			for chunk := buf[:k]; len(chunk) > 0; {
				c := chunk[:min(len(chunk), bundleWriteChunk)]
				chunk = chunk[len(c):]
				_ = ctl.SetWriteDeadline(time.Now().Add(bh.writeTimeout))
				if _, werr := w.Write(c); werr != nil {
					reason := "the client went away"
					timedOut := errors.Is(werr, os.ErrDeadlineExceeded)
					if timedOut {
						reason = fmt.Sprintf("the client took in less than %d KiB in %v (stalled or too slow)", bundleWriteChunk>>10, bh.writeTimeout)
					}
					markAborted(w, reason, r.Context().Err() == nil && timedOut)
					return
				}
			}
		}
		if err == io.EOF {
			break
		}
	}
	if !started {
		w.WriteHeader(status) // an empty blob or range
	}
}

// blobFailed reports a blob that could not be read or failed its check.
// Before any byte was sent the client gets a 500; after, the connection is
// closed mid-body (http.ErrAbortHandler), so that the client, which was
// promised Content-Length bytes, cannot take what it got for a complete blob.
func (bh *bundleHandler) blobFailed(w http.ResponseWriter, r *http.Request, ref string, started bool, err error) {
	if r.Context().Err() != nil {
		markAborted(w, "the client went away", false)
		return
	}
	bh.log.Error("blob refused: it could not be read from the bundle or failed its check", "digest", ref, "path", r.URL.Path, "err", err)
	if !started {
		w.Header().Del("Content-Length")
		w.Header().Del("Content-Range")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(fmt.Sprintf("blob %s could not be read from the bundle or failed its check against its digest; see the server log", ref)))
		return
	}
	markAborted(w, "the blob failed its check after the first bytes were sent; the connection was closed", true)
	panic(http.ErrAbortHandler)
}

// parseRange reads a Range header for a blob of size bytes. It honours
// one range of the "bytes" unit (case-insensitive, RFC 9110 14.1), with
// optional whitespace around the header, the range and its numbers (as
// ServeContent accepts them): ok is true and [off, off+n) is the range,
// clamped to the blob; a number too large for int64 counts as "past the
// end". satisfiable is false when that range lies wholly outside the blob
// or ends before it starts, or is the suffix "-0" (416). Anything else is
// ignored, as RFC 9110 14.2 allows, and the whole blob is sent (ok false,
// satisfiable true): another unit, a malformed spec (signs, missing or
// non-digit numbers), and several ranges (no multipart/byteranges).
func parseRange(h string, size int64) (off, n int64, ok, satisfiable bool) {
	h = strings.TrimSpace(h)
	const unit = "bytes="
	if len(h) < len(unit) || !strings.EqualFold(h[:len(unit)], unit) {
		return 0, 0, false, true
	}
	spec := strings.TrimSpace(h[len(unit):])
	if strings.Contains(spec, ",") {
		return 0, 0, false, true
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, true
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix: the last N bytes
		k, valid := rangeNumber(last)
		if !valid {
			return 0, 0, false, true
		}
		if k == 0 || size == 0 {
			return 0, 0, false, false
		}
		k = min(k, size)
		return size - k, k, true, true
	}
	a, valid := rangeNumber(first)
	if !valid {
		return 0, 0, false, true
	}
	b := size - 1
	if last != "" {
		if b, valid = rangeNumber(last); !valid {
			return 0, 0, false, true
		}
		if b < a {
			return 0, 0, false, false // as the distribution registry answers
		}
	}
	if a >= size {
		return 0, 0, false, false
	}
	b = min(b, size-1)
	return a, b - a + 1, true, true
}

// rangeNumber reads the digits of a byte position (1*DIGIT, no sign);
// one too large for int64 is math.MaxInt64.
func rangeNumber(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	k, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, true // only ErrRange is left
	}
	return k, true
}

// page applies the n and last query parameters to a sorted list; next is
// the last entry returned when more follow. A bad n answers
// PAGINATION_NUMBER_INVALID and ok is false.
func page(w http.ResponseWriter, q url.Values, all []string) (out []string, more bool, ok bool) {
	n := maxListPage
	if s := q.Get("n"); s != "" {
		k, err := strconv.Atoi(s)
		if err != nil || k < 0 {
			_ = errcode.ServeJSON(w, errcode.ErrorCodePaginationNumberInvalid.WithDetail(map[string]string{"n": s}))
			return nil, false, false
		}
		n = min(k, maxListPage)
	}
	start := 0
	if last := q.Get("last"); last != "" {
		start = sort.SearchStrings(all, last)
		if start < len(all) && all[start] == last {
			start++
		}
	}
	end := min(start+n, len(all))
	return all[start:end], end < len(all) && n > 0, true
}

func (bh *bundleHandler) catalog(w http.ResponseWriter, r *http.Request) {
	names, more, ok := page(w, r.URL.Query(), bh.names)
	if !ok {
		return
	}
	if more {
		w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?last=%s&n=%d>; rel="next"`, url.QueryEscape(names[len(names)-1]), len(names)))
	}
	writeJSONBody(w, r, struct {
		Repositories []string `json:"repositories"`
	}{append([]string{}, names...)})
}

func (bh *bundleHandler) tagsList(w http.ResponseWriter, r *http.Request, name string, repo *bundleRepo) {
	tags, more, ok := page(w, r.URL.Query(), repo.tagNames)
	if !ok {
		return
	}
	if more {
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?last=%s&n=%d>; rel="next"`, name, url.QueryEscape(tags[len(tags)-1]), len(tags)))
	}
	writeJSONBody(w, r, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, append([]string{}, tags...)})
}

// referrers answers the referrers API: the repository's manifests whose
// subject is ref, filtered by artifactType when asked. A repository the
// bundle does not serve, or a subject without referrers, gives an empty index.
func (bh *bundleHandler) referrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	if _, err := reference.WithName(name); err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
		return
	}
	if _, err := digest.Parse(ref); err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	descs := []v1.Descriptor{}
	artifactType := r.URL.Query().Get("artifactType")
	if repo := bh.repos[name]; repo != nil {
		for _, d := range repo.referrers[ref] {
			if artifactType == "" || d.ArtifactType == artifactType {
				descs = append(descs, d)
			}
		}
	}
	if artifactType != "" {
		w.Header().Set(headerFiltersApplied, "artifactType")
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	writeJSONBody(w, r, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: descs})
}

// writeJSONBody answers 200 with v as JSON (application/json unless a
// Content-Type is set already).
func writeJSONBody(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	h := w.Header()
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
