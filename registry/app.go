package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/airlock-dev/airlock/internal/referrer"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Storage settings of the embedded registry.
const (
	// uploadPurgeAge is how old an abandoned upload must be before the
	// registry's purger removes it; it runs every uploadPurgeInterval.
	uploadPurgeAge      = "168h"
	uploadPurgeInterval = "24h"
	// catalogMaxEntries caps one page of GET /v2/_catalog.
	catalogMaxEntries = 1000
	// fsMaxThreads bounds concurrent filesystem operations (the
	// distribution default).
	fsMaxThreads = 100
	// foreignLayerURLs is the rule the URLs of a non-distributable layer
	// must match; the library also requires http or https and no fragment.
	foreignLayerURLs = `(?i)^https?://`
)

// registryHandler is the distribution registry application with the
// referrers API and the OCI-Subject response header added in front of it.
type registryHandler struct {
	app   *handlers.App
	front http.Handler // foreignURLCheck, monolithicPost, aliasHandler, then app
	refs  *referrers
	log   *slog.Logger
}

// newRegistryHandler builds the distribution application on filesystem
// storage rooted at data: no authentication, deletes enabled, no
// notifications, no cache, no proxy, no redis, so nothing reaches the
// network. The library logs through the process-wide logrus logger, which
// this package leaves alone (cmd/airlock routes it to slog).
func newRegistryHandler(data string, log *slog.Logger) (h *registryHandler, err error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	conf := &configuration.Configuration{}
	conf.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": data, "maxthreads": fsMaxThreads},
		"delete":     configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{
			"enabled": true, "age": uploadPurgeAge, "interval": uploadPurgeInterval, "dryrun": false,
		}},
	}
	// The secret signs upload-session state handed to clients. A fresh one
	// per run refuses the upload URLs of an earlier run, but the library
	// answers an upload's status (GET) without its state, with the size
	// stored and a new URL, so a client that asks first still resumes.
	conf.HTTP.Secret = hex.EncodeToString(secret)
	conf.HTTP.Headers = http.Header{"X-Content-Type-Options": {"nosniff"}}
	conf.Catalog.MaxEntries = catalogMaxEntries
	// Accept non-distributable (foreign) layers that name http(s) URLs, as
	// the image spec allows; the library never fetches them. Without a rule
	// it refuses every such manifest.
	conf.Validation.Manifests.URLs.Allow = []string{foreignLayerURLs}

	// NewApp reports configuration problems by panicking; ours is fixed,
	// but a panic must still not escape.
	defer func() {
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("start the registry on %s: %v", data, p)
		}
	}()
	app := handlers.NewApp(context.Background(), conf)

	// A second view of the same storage for the referrers API: the
	// application does not expose its own.
	driver := filesystem.New(filesystem.DriverParameters{RootDirectory: data, MaxThreads: fsMaxThreads})
	ns, err := storage.NewRegistry(context.Background(), driver)
	if err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("open the registry storage in %s: %w", data, err)
	}
	front := foreignURLCheck{next: monolithicPost{next: &aliasHandler{next: app, driver: driver, ns: ns, log: log}}}
	return &registryHandler{app: app, front: front, refs: newReferrers(ns, log), log: log}, nil
}

// close stops the application's background work (the upload purger).
func (h *registryHandler) close() { _ = h.app.Shutdown() }

func (h *registryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	if name, ref, ok := referrersPath(r.URL.Path); ok {
		h.refs.serve(rw, r, name, ref)
	} else {
		if r.Method == http.MethodPut && isManifestPath(r.URL.Path) {
			// Keep a copy of the manifest the application reads, to
			// answer OCI-Subject when it stores one with a subject.
			body := &teeBody{ReadCloser: r.Body, limit: maxManifestBytes}
			r.Body = body
			rw.beforeHeader = func(status int, hdr http.Header) {
				if status == http.StatusCreated && !body.over {
					if s := referrer.SubjectOf(body.buf); s != "" {
						hdr.Set(referrer.HeaderSubject, s)
					}
				}
			}
		}
		h.front.ServeHTTP(rw, r)
	}
	logRequest(h.log, r, rw, start)
}

// logRequest logs one request with its status, size and duration: at debug
// level, or warn for a server error. A response that was not completed is
// logged as "request aborted" with the status its header sent (0: none),
// the bytes that went out and why: at warn level when the server ended it,
// at debug level when the client went away.
func logRequest(log *slog.Logger, r *http.Request, rw *responseWriter, start time.Time) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelDebug
	if status >= 500 || rw.abortedByServer {
		level = slog.LevelWarn
	}
	args := []any{"method", r.Method, "path", r.URL.Path, "status", status, "bytes", rw.bytes,
		"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr}
	if rw.aborted != "" {
		args[5] = rw.status // as sent: 0 when the client left before any answer
		log.Log(r.Context(), level, "request aborted", append(args, "reason", rw.aborted)...)
		return
	}
	log.Log(r.Context(), level, "request", args...)
}

// isManifestPath reports whether p is /v2/<name>/manifests/<reference>.
func isManifestPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return false
	}
	name, ok := strings.CutSuffix(rest[:i], "/manifests")
	return ok && name != "" && rest[i+1:] != ""
}

// teeBody keeps the first limit bytes read from a request body; over is
// set when the body was longer.
type teeBody struct {
	io.ReadCloser
	limit int
	buf   []byte
	over  bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 && !t.over {
		if len(t.buf)+n > t.limit {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	return n, err
}

// responseWriter records the status and body size of a response and runs
// beforeHeader just before the final status is sent.
type responseWriter struct {
	http.ResponseWriter
	status       int
	bytes        int64
	beforeHeader func(status int, h http.Header)
	// aborted says why the response was not completed ("" when it was);
	// abortedByServer, that the server ended it.
	aborted         string
	abortedByServer bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		if w.beforeHeader != nil {
			w.beforeHeader(code, w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the connection's sendfile path for blob downloads.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// Flush sends buffered data to the client.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write, so io.Copy does not loop back
// into ReadFrom.
type writerOnly struct{ io.Writer }
