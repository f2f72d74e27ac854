package testkit

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// UploadCounter is a reverse proxy on 127.0.0.1 in front of a registry that
// counts the blob bytes clients upload through it: the request bodies of
// PATCH, PUT and POST on .../blobs/uploads/... whose path contains a given
// part (a repository), as the proxy reads them from the client.
type UploadCounter struct {
	// Host is "127.0.0.1:PORT", to be used instead of the registry's.
	Host     string
	bytes    atomic.Int64
	inFlight atomic.Int64 // counted requests being proxied
}

// StartUploadCounter starts an UploadCounter in front of the registry at
// backend ("HOST:PORT", plain HTTP) for uploads into repositories whose
// path contains pathPart ("" counts every upload). onBytes, when set, is
// called with the running total after every read of such a body, from the
// proxy's goroutine: a test can kill its client there, in the middle of a
// request. The proxy stops when the test ends.
func StartUploadCounter(t testing.TB, backend, pathPart string, onBytes func(total int64)) *UploadCounter {
	t.Helper()
	c := &UploadCounter{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rp.ErrorLog = log.New(io.Discard, "", 0) // a killed client is expected
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead &&
			strings.Contains(r.URL.Path, "/blobs/uploads/") && strings.Contains(r.URL.Path, pathPart) {
			c.inFlight.Add(1)
			defer c.inFlight.Add(-1)
			r.Body = &countedBody{ReadCloser: r.Body, onRead: func(n int) {
				total := c.bytes.Add(int64(n))
				if onBytes != nil {
					onBytes(total)
				}
			}}
		}
		rp.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	c.Host = strings.TrimPrefix(srv.URL, "http://")
	return c
}

// Bytes returns the bytes counted so far.
func (c *UploadCounter) Bytes() int64 { return c.bytes.Load() }

// Reset returns the bytes counted so far and starts again from 0.
func (c *UploadCounter) Reset() int64 { return c.bytes.Swap(0) }

// WaitIdle waits until no counted request is being proxied (the request
// of a killed client ends when the proxy has read what its socket still
// delivered), for at most timeout, and reports whether it became idle.
func (c *UploadCounter) WaitIdle(timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); c.inFlight.Load() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

type countedBody struct {
	io.ReadCloser
	onRead func(int)
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.onRead(n)
	}
	return n, err
}
