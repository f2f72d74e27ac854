package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Content named by a digest algorithm other than sha256 (sha512, sha384).
//
// The distribution library (v3.1.2) stores every blob and manifest under its
// sha256 digest, and handles other algorithms only half way:
//   - a blob uploaded with ?digest=sha512:... is checked against that digest
//     and linked in the repository under both names, but the answers (the
//     upload's Location and Docker-Content-Digest, and those of GET/HEAD
//     by the sha512 name) carry the sha256 digest;
//   - a cross-repository mount of a sha512 name links that name to itself,
//     so the mounted blob is unknown afterwards;
//   - a manifest pushed by a sha512 digest is refused (the library compares
//     it with the sha256 digest it computed), and a manifest cannot be read
//     by a sha512 digest.
//
// aliasHandler, in front of the library, completes this: the library only
// ever sees sha256 names for manifests and mounts, and the sha512 name is an
// alias link in the repository, written by us in the library's own layout
// (the link file the library writes for blob aliases), only after the
// content was checked against it. Answers name the digest the client asked
// for. Requests that name sha256 content pass through untouched, apart from
// a manifest delete, which also removes the manifest's aliases.
type aliasHandler struct {
	next   http.Handler
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
	log    *slog.Logger
}

// Driver paths of the distribution filesystem layout (see docs/commands/serve.md).
const (
	repositoriesRoot = "/docker/registry/v2/repositories"
	headerDigest     = "Docker-Content-Digest"
)

// routeKind is the kind of distribution API route a request path names.
type routeKind int

const (
	routeOther       routeKind = iota
	routeBlob                  // /v2/<name>/blobs/<digest>
	routeUploadStart           // /v2/<name>/blobs/uploads/
	routeUpload                // /v2/<name>/blobs/uploads/<id>
	routeManifest              // /v2/<name>/manifests/<reference>
)

// parseRoute splits a request path into the repository name, the route kind
// and the last segment (digest, upload id or manifest reference).
func parseRoute(p string) (name string, kind routeKind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", routeOther, ""
	}
	if n, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok && n != "" {
		return n, routeUploadStart, ""
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", routeOther, ""
	}
	head, last := rest[:i], rest[i+1:]
	if n, ok := strings.CutSuffix(head, "/blobs/uploads"); ok && n != "" {
		return n, routeUpload, last
	}
	if n, ok := strings.CutSuffix(head, "/blobs"); ok && n != "" {
		return n, routeBlob, last
	}
	if n, ok := strings.CutSuffix(head, "/manifests"); ok && n != "" {
		return n, routeManifest, last
	}
	return "", routeOther, ""
}

// aliasDigest parses s as a well-formed digest of an algorithm other than
// sha256 that this build can compute.
func aliasDigest(s string) (digest.Digest, bool) {
	if !strings.Contains(s, ":") {
		return "", false
	}
	d := digest.Digest(s)
	if d.Validate() != nil || d.Algorithm() == digest.Canonical {
		return "", false
	}
	return d, true
}

// aliasAlgorithms are the algorithms a manifest may have alias links for.
var aliasAlgorithms = []digest.Algorithm{digest.SHA384, digest.SHA512}

func (a *aliasHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, kind, ref := parseRoute(r.URL.Path)
	if kind == routeOther {
		a.next.ServeHTTP(w, r)
		return
	}
	if _, err := reference.WithName(name); err != nil {
		a.next.ServeHTTP(w, r) // the library answers NAME_INVALID
		return
	}
	switch kind {
	case routeBlob:
		if d, ok := aliasDigest(ref); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			a.next.ServeHTTP(renameDigest(w, d, name, "blobs", http.StatusOK, http.StatusPartialContent), r)
			return
		}
	case routeUpload:
		if d, ok := aliasDigest(r.URL.Query().Get("digest")); ok && r.Method == http.MethodPut {
			a.next.ServeHTTP(renameDigest(w, d, name, "blobs", http.StatusCreated), r)
			return
		}
	case routeUploadStart:
		q := r.URL.Query()
		if d, ok := aliasDigest(q.Get("mount")); ok && q.Get("from") != "" && r.Method == http.MethodPost {
			a.mount(w, r, name, d, q.Get("from"))
			return
		}
	case routeManifest:
		d, isAlias := aliasDigest(ref)
		switch {
		case isAlias && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			a.manifestRead(w, r, name, d)
			return
		case isAlias && r.Method == http.MethodPut:
			a.manifestPut(w, r, name, d)
			return
		case r.Method == http.MethodDelete:
			a.manifestDelete(w, r, name, ref)
			return
		}
	}
	a.next.ServeHTTP(w, r)
}

// renameDigest wraps w so that a response with one of the statuses names d
// in Docker-Content-Digest (and in Location, when there is one) instead of
// the sha256 digest the library put there.
func renameDigest(w http.ResponseWriter, d digest.Digest, name, kind string, statuses ...int) http.ResponseWriter {
	return &responseWriter{ResponseWriter: w, beforeHeader: func(status int, h http.Header) {
		for _, s := range statuses {
			if s == status {
				setDigestHeaders(h, d, name, kind)
				return
			}
		}
	}}
}

// setDigestHeaders names d in Docker-Content-Digest, in Location (keeping its
// scheme and host) and, for manifests, in the ETag.
func setDigestHeaders(h http.Header, d digest.Digest, name, kind string) {
	h.Set(headerDigest, d.String())
	if h.Get("Etag") != "" && kind == "manifests" {
		h.Set("Etag", `"`+d.String()+`"`)
	}
	if loc := h.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil {
			return
		}
		u.Path = "/v2/" + name + "/" + kind + "/" + d.String()
		u.RawPath = ""
		h.Set("Location", u.String())
	}
}

// linkPath is the driver path of the link file that names content d in
// repository name: a layer link for blobs, a revision link for manifests.
func linkPath(name string, manifests bool, d digest.Digest) string {
	dir := "_layers"
	if manifests {
		dir = "_manifests/revisions"
	}
	return path.Join(repositoriesRoot, name, dir, string(d.Algorithm()), d.Encoded(), "link")
}

// readLink returns the sha256 digest an alias link points to; ok is false
// when there is no such link.
func (a *aliasHandler) readLink(ctx context.Context, p string) (digest.Digest, bool, error) {
	b, err := a.driver.GetContent(ctx, p)
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	target, err := digest.Parse(string(b))
	if err != nil || target.Algorithm() != digest.Canonical {
		return "", false, fmt.Errorf("alias link %s holds %q, not a sha256 digest", p, b)
	}
	return target, true, nil
}

// mount answers POST /v2/<name>/blobs/uploads/?mount=<d>&from=<from>: the
// library mounts the sha256 name of d's content from the source repository,
// and the alias d is linked next to it.
func (a *aliasHandler) mount(w http.ResponseWriter, r *http.Request, name string, d digest.Digest, from string) {
	canonical, ok := a.blobIn(r.Context(), from, d)
	if !ok {
		// Not there (or not readable): the library answers with a new
		// upload session, as for any blob the source does not have.
		a.next.ServeHTTP(w, r)
		return
	}
	q := r.URL.Query()
	q.Set("mount", canonical.String())
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	rec := newRecorder()
	a.next.ServeHTTP(rec, r2)
	if rec.status == http.StatusCreated {
		if err := a.driver.PutContent(r.Context(), linkPath(name, false, d), []byte(canonical.String())); err != nil {
			a.fail(w, r, "link the mounted blob under its digest", name, d, err)
			return
		}
		setDigestHeaders(rec.hdr, d, name, "blobs")
	}
	rec.replay(w)
}

// blobIn returns the sha256 digest of the content repository from links
// under d.
func (a *aliasHandler) blobIn(ctx context.Context, from string, d digest.Digest) (digest.Digest, bool) {
	named, err := reference.WithName(from)
	if err != nil {
		return "", false
	}
	repo, err := a.ns.Repository(ctx, named)
	if err != nil {
		return "", false
	}
	desc, err := repo.Blobs(ctx).Stat(ctx, d)
	if err != nil || desc.Digest.Algorithm() != digest.Canonical || desc.Digest.Validate() != nil {
		return "", false
	}
	return desc.Digest, true
}

// manifestRead answers GET and HEAD of a manifest by alias d: the library
// serves the sha256 revision the alias links to, so a manifest deleted
// under its sha256 name is gone under every name.
func (a *aliasHandler) manifestRead(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) {
	canonical, ok, err := a.readLink(r.Context(), linkPath(name, true, d))
	if err != nil {
		a.fail(w, r, "read the manifest alias", name, d, err)
		return
	}
	if !ok {
		a.next.ServeHTTP(w, r) // MANIFEST_UNKNOWN
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v2/" + name + "/manifests/" + canonical.String()
	r2.URL.RawPath = ""
	a.next.ServeHTTP(renameDigest(w, d, name, "manifests", http.StatusOK), r2)
}

// manifestPut answers PUT of a manifest by alias d: the body must hash to
// d; the library stores it by its sha256 digest, then the alias is linked.
func (a *aliasHandler) manifestPut(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
	if err != nil {
		a.fail(w, r, "read the manifest", name, d, err)
		return
	}
	if len(body) > maxManifestBytes || d.Algorithm().FromBytes(body) != d {
		// Too large or not the named content: the library refuses it
		// (MANIFEST_INVALID, DIGEST_INVALID) as it refuses any such push.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		a.next.ServeHTTP(w, r)
		return
	}
	canonical := digest.Canonical.FromBytes(body)
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v2/" + name + "/manifests/" + canonical.String()
	r2.URL.RawPath = ""
	r2.Body = io.NopCloser(bytes.NewReader(body))
	rec := newRecorder()
	a.next.ServeHTTP(rec, r2)
	if rec.status == http.StatusCreated {
		if err := a.driver.PutContent(r.Context(), linkPath(name, true, d), []byte(canonical.String())); err != nil {
			a.fail(w, r, "link the manifest under its digest", name, d, err)
			return
		}
		setDigestHeaders(rec.hdr, d, name, "manifests")
	}
	rec.replay(w)
}

// manifestDelete answers DELETE /v2/<name>/manifests/<ref>. A tag passes
// through. A digest, sha256 or alias, deletes the manifest's sha256
// revision (and the tags on it, as the library does), then every alias
// link of the manifest, so that no name of it survives.
func (a *aliasHandler) manifestDelete(w http.ResponseWriter, r *http.Request, name, ref string) {
	ctx := r.Context()
	var canonical digest.Digest
	if d, ok := aliasDigest(ref); ok {
		c, found, err := a.readLink(ctx, linkPath(name, true, d))
		if err != nil {
			a.fail(w, r, "read the manifest alias", name, d, err)
			return
		}
		if !found {
			a.next.ServeHTTP(w, r) // MANIFEST_UNKNOWN
			return
		}
		canonical = c
	} else if d, err := digest.Parse(ref); err == nil && d.Algorithm() == digest.Canonical {
		canonical = d
	} else {
		a.next.ServeHTTP(w, r) // a tag, or a digest the library refuses
		return
	}
	payload := a.manifestPayload(ctx, name, canonical)

	r2 := r.Clone(ctx)
	r2.URL.Path = "/v2/" + name + "/manifests/" + canonical.String()
	r2.URL.RawPath = ""
	rec := newRecorder()
	a.next.ServeHTTP(rec, r2)
	if rec.status == http.StatusAccepted {
		a.unlinkAliases(ctx, name, canonical, payload, ref)
	}
	rec.replay(w)
}

// manifestPayload returns the bytes of manifest canonical in repository
// name, or nil when they cannot be read.
func (a *aliasHandler) manifestPayload(ctx context.Context, name string, canonical digest.Digest) []byte {
	named, err := reference.WithName(name)
	if err != nil {
		return nil
	}
	repo, err := a.ns.Repository(ctx, named)
	if err != nil {
		return nil
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil
	}
	m, err := ms.Get(ctx, canonical)
	if err != nil {
		return nil
	}
	_, payload, err := m.Payload()
	if err != nil || digest.Canonical.FromBytes(payload) != canonical {
		return nil
	}
	return payload
}

// unlinkAliases removes the alias links of the deleted manifest canonical:
// those computed from its payload and the one the request named.
func (a *aliasHandler) unlinkAliases(ctx context.Context, name string, canonical digest.Digest, payload []byte, ref string) {
	var names []digest.Digest
	if d, ok := aliasDigest(ref); ok {
		names = append(names, d)
	}
	if payload != nil {
		for _, alg := range aliasAlgorithms {
			if alg.Available() {
				names = append(names, alg.FromBytes(payload))
			}
		}
	}
	for _, d := range names {
		p := linkPath(name, true, d)
		target, ok, err := a.readLink(ctx, p)
		if err == nil && (!ok || target != canonical) {
			continue
		}
		if err == nil {
			err = a.driver.Delete(ctx, path.Dir(p))
		}
		if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
			// The manifest is gone: reads by the alias reach the deleted
			// sha256 revision and answer MANIFEST_UNKNOWN.
			a.log.Warn("remove a manifest alias", "repository", name, "digest", d.String(), "manifest", canonical.String(), "err", err)
		}
	}
}

// fail answers 500 for a storage error of our own and logs it.
func (a *aliasHandler) fail(w http.ResponseWriter, r *http.Request, what, name string, d digest.Digest, err error) {
	if r.Context().Err() == nil {
		a.log.Warn(what, "repository", name, "digest", d.String(), "err", err)
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(what+" failed; see the server log"))
}

// recorder keeps a response of the library in memory so that it can be
// amended, or replaced by an error, before the client sees it. It is only
// used for answers without a large body (pushes, mounts, deletes).
type recorder struct {
	hdr    http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{hdr: http.Header{}} }

func (rc *recorder) Header() http.Header { return rc.hdr }

func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 && code >= 200 {
		rc.status = code
	}
}

func (rc *recorder) Write(p []byte) (int, error) {
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	return rc.body.Write(p)
}

// replay sends the recorded response to w.
func (rc *recorder) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range rc.hdr {
		h[k] = v
	}
	status := rc.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(rc.body.Bytes())
}
