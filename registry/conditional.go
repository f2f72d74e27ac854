package registry

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Conditional requests on content identified by an ETag only (no
// Last-Modified), as net/http's ServeContent answers them, which is what
// the distribution library does for `serve --data` blobs: If-Match (412
// when no tag matches), If-None-Match (304 for GET and HEAD when one
// matches), and If-Range (a Range is honoured only when If-Range names the
// ETag; a date never matches content without a modification time).
// If-Modified-Since and If-Unmodified-Since have no effect without one.

// preconditions answers 412 or 304 when the request's conditions say so
// (done), else returns the Range header to honour ("" when there is none
// or If-Range does not match). etag is the response's ETag, quoted.
func preconditions(w http.ResponseWriter, r *http.Request, etag string) (done bool, rangeHeader string) {
	if im := r.Header.Get("If-Match"); im != "" && !etagListMatches(im, etag, true) {
		w.WriteHeader(http.StatusPreconditionFailed)
		return true, ""
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, etag, false) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h := w.Header()
			h.Del("Content-Type")
			h.Del("Content-Length")
			h.Del("Content-Encoding")
			w.WriteHeader(http.StatusNotModified)
		} else {
			w.WriteHeader(http.StatusPreconditionFailed)
		}
		return true, ""
	}
	rangeHeader = r.Header.Get("Range")
	if rangeHeader == "" || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false, rangeHeader
	}
	if ir := r.Header.Get("If-Range"); ir != "" {
		if tag, _ := scanETag(ir); tag == "" || !strongMatch(tag, etag) {
			return false, "" // a date, or another entity: send it whole
		}
	}
	return false, rangeHeader
}

// etagListMatches reports whether the If-Match or If-None-Match list in
// header names etag ("*" names any), with the strong comparison for
// If-Match and the weak one for If-None-Match. A malformed entry ends the
// list.
func etagListMatches(header, etag string, strong bool) bool {
	for s := header; ; {
		s = textproto.TrimString(s)
		if s == "" {
			return false
		}
		if s[0] == ',' {
			s = s[1:]
			continue
		}
		if s[0] == '*' {
			return true
		}
		tag, rest := scanETag(s)
		if tag == "" {
			return false
		}
		if strong && strongMatch(tag, etag) || !strong && weakMatch(tag, etag) {
			return true
		}
		s = rest
	}
}

// scanETag reads an entity tag (optionally W/-prefixed) from the start of
// s; tag is "" when s does not start with one.
func scanETag(s string) (tag, rest string) {
	s = textproto.TrimString(s)
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s[start:]) < 2 || s[start] != '"' {
		return "", ""
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x21 || c >= 0x23 && c <= 0x7e || c >= 0x80:
		case c == '"':
			return s[:i+1], s[i+1:]
		default:
			return "", ""
		}
	}
	return "", ""
}

func strongMatch(a, b string) bool { return a == b && a != "" && a[0] == '"' }

func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}
