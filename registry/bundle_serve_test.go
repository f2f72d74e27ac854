package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/registry"
)

// syncBuffer is a log destination the server writes from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveBundleLogged serves the bundle at path with opts, logging at debug
// level (as -v does) into the returned buffer.
func serveBundleLogged(t *testing.T, path string, opts registry.Options) (srvRunning, *syncBuffer) {
	t.Helper()
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	logs := &syncBuffer{}
	opts.Bundle = a
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return srvStart(t, opts), logs
}

// blobRequest sends method to a blob with headers and returns the response
// and its body read to the end (or to the error).
func blobRequest(t *testing.T, method, host, repo, digest string, headers map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+host+"/v2/"+repo+"/blobs/"+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestServeBundleConditionalRequests: a blob served from a bundle answers
// If-None-Match, If-Match and If-Range, and HEAD with a Range, as the
// read-write registry answers them for the same blob after `airlock
// mirror` (ServeContent's rules).
func TestServeBundleConditionalRequests(t *testing.T) {
	quietLogrus(t)
	f := newBundleFixture(t)
	framed := filepath.Join(t.TempDir(), "demo.airlock")
	f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
	srv, a := serveBundle(t, framed)
	w := modelWeights(t, a.Head())
	const repo = "models/tiny-classifier"

	site := f.mirrorToServer(t, framed)

	etag := `"` + w.Digest + `"`
	other := `"sha256:` + strings.Repeat("0", 64) + `"`
	rng := "bytes=10-20"
	for _, h := range []map[string]string{
		{},
		{"Range": rng},
		{"If-None-Match": etag},
		{"If-None-Match": "W/" + etag},
		{"If-None-Match": other + ", " + etag},
		{"If-None-Match": other},
		{"If-None-Match": "*"},
		{"If-Match": etag},
		{"If-Match": other},
		{"If-Match": "*"},
		{"If-Match": other + ", " + etag},
		{"Range": rng, "If-Range": etag},
		{"Range": rng, "If-Range": other},
		{"Range": rng, "If-Range": "W/" + etag},
		{"Range": rng, "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"},
		{"Range": rng, "If-None-Match": etag},
		{"Range": rng, "If-Match": other},
		{"Range": rng, "If-Match": etag},
		{"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
		{"If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			sr, sb, err := blobRequest(t, method, srv.host, repo, w.Digest, h)
			if err != nil {
				t.Fatalf("%s %v from the bundle: %v", method, h, err)
			}
			mr, mb, err := blobRequest(t, method, site.host, repo, w.Digest, h)
			if mr == nil {
				t.Fatalf("%s %v after mirror: %v", method, h, err)
			}
			if err != nil {
				// The library answers a failed If-Match with 412 and the
				// blob's Content-Length, but no body: compare the status.
				mb = nil
				mr.Header.Del("Content-Length")
			}
			if sr.StatusCode != mr.StatusCode || sr.Header.Get("Content-Range") != mr.Header.Get("Content-Range") {
				t.Errorf("%s %v: bundle %d %q, mirrored %d %q", method, h, sr.StatusCode, sr.Header.Get("Content-Range"), mr.StatusCode, mr.Header.Get("Content-Range"))
				continue
			}
			if sr.StatusCode/100 == 2 && (sr.Header.Get("Content-Length") != mr.Header.Get("Content-Length") || !bytes.Equal(sb, mb)) && mb != nil {
				t.Errorf("%s %v: bundle %s bytes (%d read), mirrored %s (%d read), or the bytes differ", method, h,
					sr.Header.Get("Content-Length"), len(sb), mr.Header.Get("Content-Length"), len(mb))
			}
		}
	}
}

// TestServeBundleChecksBlobBeforeRange: a bundle whose frames match their
// signed sha256 but whose blob does not match its digest (a writer bug, a
// compromised build machine). No range of that blob is served: the whole
// blob is checked first and the answer is 500 with the failure logged;
// once known, a whole GET is refused before its first byte too. A whole
// GET that finds the failure first is cut off, and logged as aborted.
func TestServeBundleChecksBlobBeforeRange(t *testing.T) {
	f := newBundleFixture(t)
	set, err := bundle.OpenSet(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	w := modelWeights(t, set.Head)
	const repo = "models/tiny-classifier"
	p := filepath.Join(t.TempDir(), "lying.airlock")
	f.rewrite(t, p, bundle.WriteOptions{FrameSize: testFrameSize}, func(d bundle.Descriptor, b []byte) []byte {
		if d.Digest == w.Digest {
			b = bytes.Clone(b)
			b[len(b)-1] ^= 1
		}
		return b
	})
	unknown := func(t *testing.T, resp *http.Response, body []byte) {
		t.Helper()
		var e transport.Error
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != http.StatusInternalServerError || len(e.Errors) != 1 || e.Errors[0].Code != transport.UnknownErrorCode {
			t.Errorf("%d %s, want 500 UNKNOWN", resp.StatusCode, body)
		}
	}

	t.Run("range first", func(t *testing.T) {
		srv, logs := serveBundleLogged(t, p, registry.Options{})
		for _, rng := range []string{"bytes=0-99", "bytes=-10"} {
			resp, body, err := blobRequest(t, http.MethodGet, srv.host, repo, w.Digest, map[string]string{"Range": rng})
			if err != nil {
				t.Fatal(err)
			}
			unknown(t, resp, body)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), w.Digest) {
			t.Errorf("the failure is not logged with the digest:\n%s", logs)
		}
		// Known to fail: a whole GET is refused before its first byte.
		resp, body, err := blobRequest(t, http.MethodGet, srv.host, repo, w.Digest, nil)
		if err != nil {
			t.Fatalf("whole GET of a blob known to fail: %v (want a 500 answer, not a cut-off body)", err)
		}
		unknown(t, resp, body)
	})

	t.Run("whole first", func(t *testing.T) {
		srv, logs := serveBundleLogged(t, p, registry.Options{})
		resp, body, err := blobRequest(t, http.MethodGet, srv.host, repo, w.Digest, nil)
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || int64(len(body)) >= w.Size {
			t.Fatalf("whole GET: %v, %d bytes: want it cut short", err, len(body))
		}
		_ = resp
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), "request aborted") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "msg=request ") && strings.Contains(line, w.Digest) {
				t.Errorf("the cut-off transfer is logged as a completed request: %s", line)
			}
		}
		if !strings.Contains(logs.String(), "msg=\"request aborted\"") {
			t.Errorf("the cut-off transfer is not logged as aborted:\n%s", logs)
		}
		resp, body, err = blobRequest(t, http.MethodGet, srv.host, repo, w.Digest, map[string]string{"Range": "bytes=0-99"})
		if err != nil {
			t.Fatal(err)
		}
		unknown(t, resp, body)
	})

	t.Run("good blob", func(t *testing.T) {
		// Ranges of a blob that matches are served after its check, and
		// the check is not repeated.
		framed := filepath.Join(t.TempDir(), "demo.airlock")
		f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
		srv, a := serveBundle(t, framed)
		for _, rng := range []string{"bytes=0-99", "bytes=5-5"} {
			resp, part, err := blobRequest(t, http.MethodGet, srv.host, repo, w.Digest, map[string]string{"Range": rng})
			if err != nil || resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("%s: %v %v", rng, err, resp)
			}
			_ = part
		}
		if done, err := a.BlobChecked(w.Digest); !done || err != nil {
			t.Errorf("after a range: checked %v, %v", done, err)
		}
	})
}

// bigModelBundle writes a bundle holding one model of size random bytes,
// and returns its path and the model file's digest.
func bigModelBundle(t *testing.T, size int) (string, string) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	d := checked.Digest(data)
	it, err := bundle.NewModelItem("big", "models/big", "models/big", []bundle.LocalLayer{
		{Descriptor: bundle.Descriptor{Digest: d, Size: int64(size)}, Path: "weights.bin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	it.Open = func(context.Context, bundle.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	w, err := bundle.NewWriter("big", "1.0.0", time.Unix(1767225600, 0), []bundle.Item{*it})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), bundle.StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "big.airlock")
	if _, err := w.WriteFile(context.Background(), out, bundle.WriteOptions{FrameSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return out, d
}

// TestServeBundleStalledClient: a client that stops reading a blob is cut
// off after the write timeout, so that the frames its request holds go
// back to the pool; it does not hold them for as long as it likes.
func TestServeBundleStalledClient(t *testing.T) {
	const size = 32 << 20
	p, d := bigModelBundle(t, size)
	srv, logs := serveBundleLogged(t, p, registry.Options{WriteTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", srv.host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/models/big/blobs/%s HTTP/1.1\r\nHost: %s\r\n\r\n", d, srv.host)
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	time.Sleep(2 * time.Second) // stalled
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, resp.Body)
	if n >= size || err == nil {
		t.Fatalf("the stalled client got %d of %d bytes (err %v): its transfer was not cut off", n, size, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "request aborted") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "request aborted") {
		t.Errorf("the cut-off transfer is not logged as aborted:\n%s", logs)
	}
}

// TestServeBundleSteadySlowClient: a client that reads steadily but slowly
// (16 KiB every 50 ms, never pausing for anywhere near the write timeout)
// is not cut off. It used to be, after 2 s: the socket's send buffer grew to
// megabytes, Linux woke the writer only once half of it was free, so one
// 256 KiB write stayed blocked for longer than the timeout, and the log
// said the client "read nothing".
func TestServeBundleSteadySlowClient(t *testing.T) {
	const size = 48 << 20
	p, d := bigModelBundle(t, size)
	srv, logs := serveBundleLogged(t, p, registry.Options{WriteTimeout: 2 * time.Second})
	conn, err := net.Dial("tcp", srv.host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/models/big/blobs/%s HTTP/1.1\r\nHost: %s\r\n\r\n", d, srv.host)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 16<<10)
	var got int64
	for start := time.Now(); time.Since(start) < 8*time.Second; {
		n, err := io.ReadFull(resp.Body, buf)
		got += int64(n)
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "request aborted") {
			t.Errorf("a client reading steadily was cut off: %s", l)
		}
	}
	t.Logf("read %d bytes in 8 s", got)
}

// TestServeBundleRemoteRefusal: the refusal of a non-loopback address says
// what an unauthenticated client could do in each mode: read, overwrite and
// delete with a storage directory; read (pull) only with a bundle.
func TestServeBundleRemoteRefusal(t *testing.T) {
	f := newBundleFixture(t)
	a, err := bundle.OpenArchive(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var oe *registry.OptionsError
	_, err = registry.New(registry.Options{Bundle: a, Addr: "0.0.0.0:0"})
	if !errors.As(err, &oe) || !errors.Is(err, registry.ErrRemoteListen) {
		t.Fatalf("bundle on 0.0.0.0: %v", err)
	}
	if strings.Contains(oe.Hint, "overwrite") || !strings.Contains(oe.Hint, "read-only") {
		t.Errorf("bundle mode hint: %q", oe.Hint)
	}
	_, err = registry.New(registry.Options{Data: t.TempDir(), Addr: "0.0.0.0:0"})
	if !errors.As(err, &oe) || !strings.Contains(oe.Hint, "overwrite") {
		t.Errorf("data mode: %v", err)
	}
}
