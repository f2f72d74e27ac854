package registry

import (
	"net/http"
	"net/url"
)

// monolithicPost completes a blob upload sent in the POST alone
// (POST /v2/<name>/blobs/uploads/?digest=<digest> with the content), which
// the distribution specification allows and the library does not do: it
// would answer 202 and ignore the content, making the client send it again.
// monolithicPost opens the upload session with the library, then completes
// it with the same content as the PUT a client would send, so the answer is
// the PUT's: 201 with Location and Docker-Content-Digest, or 400
// DIGEST_INVALID when the content is not the digest.
type monolithicPost struct {
	next http.Handler
}

func (m monolithicPost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, kind, _ := parseRoute(r.URL.Path)
	q := r.URL.Query()
	if kind != routeUploadStart || r.Method != http.MethodPost || !q.Has("digest") || q.Has("mount") {
		m.next.ServeHTTP(w, r)
		return
	}
	dgst := q.Get("digest")
	open := r.Clone(r.Context())
	q.Del("digest")
	open.URL.RawQuery = q.Encode()
	open.Body, open.ContentLength = http.NoBody, 0
	open.Header.Del("Content-Length")
	rec := newRecorder()
	m.next.ServeHTTP(rec, open)
	loc, err := url.Parse(rec.hdr.Get("Location"))
	if rec.status != http.StatusAccepted || err != nil {
		rec.replay(w) // the library's answer (name invalid, ...)
		return
	}
	put := r.Clone(r.Context())
	put.Method = http.MethodPut
	put.URL.Path, put.URL.RawPath = loc.Path, loc.RawPath
	pq := loc.Query()
	pq.Set("digest", dgst)
	put.URL.RawQuery = pq.Encode()
	put.RequestURI = put.URL.RequestURI()
	m.next.ServeHTTP(w, put)
}
