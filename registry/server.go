package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bundle"
)

var (
	// ErrRemoteListen reports a listen address that is not loopback while
	// Options.AllowRemote is false.
	ErrRemoteListen = errors.New("refusing to listen on a non-loopback address")
	// ErrOptions reports Options that cannot work together, such
	// as a TLS certificate without its key.
	ErrOptions = errors.New("invalid serve options")
	// ErrDataDir reports a storage directory that cannot be created or
	// written.
	ErrDataDir = errors.New("unusable data directory")
)

// OptionsError names the Options field that is wrong, its value
// and what to do about it.
type OptionsError struct {
	Option string // "Addr", "Data", "TLSCert", "TLSKey"
	Value  string
	Hint   string
	Err    error
}

// Error says which option is wrong and what to do.
func (e *OptionsError) Error() string {
	msg := fmt.Sprintf("%s %q: %v", e.Option, e.Value, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the sentinel (ErrRemoteListen, ErrOptions or
// ErrDataDir) and any operating-system error behind it.
func (e *OptionsError) Unwrap() error { return e.Err }

// DefaultAddr is the listen address of a Server whose Addr is empty.
const DefaultAddr = "127.0.0.1:5000"

// Limits of a Server.
const (
	// shutdownGrace is how long in-flight requests may run after ctx ends.
	shutdownGrace = 10 * time.Second
	// readHeaderTimeout bounds how long a client may take to send headers.
	readHeaderTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections that stay idle this long.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds the request line and headers.
	maxHeaderBytes = 64 << 10
)

// DefaultWriteTimeout is the WriteTimeout of a Server whose Options give
// none.
const DefaultWriteTimeout = time.Minute

// Options configures a Server. Data or Bundle is required.
type Options struct {
	// Data is the storage directory, created (0755) if missing. It holds
	// the registry's content in the CNCF distribution filesystem layout.
	Data string
	// Addr is the TCP listen address; "" means DefaultAddr
	// (127.0.0.1:5000). Port 0 picks a free port.
	Addr string
	// TLSCert and TLSKey are PEM files of the server certificate (chain)
	// and its private key. Both or neither; neither serves plain HTTP.
	TLSCert, TLSKey string
	// AllowRemote is required to listen on anything but a loopback
	// address (default false: loopback only).
	AllowRemote bool
	// Bundle, when set, is served read-only instead of a storage
	// directory (Data must then be empty): its images, models, charts,
	// SBOMs, signatures and referrers under the repositories and tags
	// `airlock mirror` would give them, every blob read from the bundle's
	// frames and checked on the way out. The caller decides that its head
	// is trusted (package verify) before serving it; the Server does not
	// close it.
	Bundle *bundle.Archive
	// WriteTimeout bounds, with Bundle, each write of a blob's bytes to a
	// client (at most 64 KiB, into a socket that queues at most 128 KiB
	// not yet sent, on Linux): a client that takes in less than that in
	// WriteTimeout (stalled, or slower than about 3 KiB/s with the
	// default) is cut off, so that its connection and request end. A
	// transfer may take as long as it needs while it progresses. <= 0
	// means DefaultWriteTimeout (1 minute). Without Bundle it has no
	// effect.
	WriteTimeout time.Duration
	// Logger receives the server's own log records: requests at debug
	// level, failed requests (5xx) at warn level, start and stop at info
	// level. nil discards them.
	Logger *slog.Logger
}

// Server is an OCI distribution registry with filesystem storage, built on
// the CNCF distribution library, plus the OCI 1.1 referrers API; with
// Options.Bundle, a read-only registry of one bundle instead. It has no
// authentication: whoever reaches its address can read (and, without
// Bundle, push and delete).
type Server struct {
	data   string
	bundle *bundleHandler // nil: serve Data
	addr   string
	tls    *tls.Config // nil for plain HTTP
	log    *slog.Logger
}

// New validates opts and returns a Server that is not yet listening.
// A non-loopback Addr without AllowRemote is a *OptionsError wrapping
// ErrRemoteListen; half a TLS configuration or an unreadable key pair wraps
// ErrOptions; a Data directory that cannot be created or written wraps
// ErrDataDir and the operating system's error. With Bundle, a Data
// directory too wraps ErrOptions, and a bundle whose artifacts do not make
// a valid registry namespace (a tag two artifacts would share with
// different content, an invalid repository name) is a *BundleError.
func New(opts Options) (*Server, error) {
	s := &Server{data: opts.Data, addr: opts.Addr, log: opts.Logger}
	if s.addr == "" {
		s.addr = DefaultAddr
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := checkListenAddr(s.addr, opts.AllowRemote, opts.Bundle != nil); err != nil {
		return nil, err
	}
	tlsConf, err := loadTLS(opts.TLSCert, opts.TLSKey)
	if err != nil {
		return nil, err
	}
	s.tls = tlsConf
	if opts.Bundle != nil {
		if opts.Data != "" {
			return nil, &OptionsError{Option: "Data", Value: opts.Data, Hint: "a bundle is served read-only from its file; give no storage directory", Err: ErrOptions}
		}
		wt := opts.WriteTimeout
		if wt <= 0 {
			wt = DefaultWriteTimeout
		}
		s.bundle, err = newBundleHandler(opts.Bundle, s.log, wt)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := prepareDataDir(opts.Data); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(opts.Data)
	if err != nil {
		return nil, &OptionsError{Option: "Data", Value: opts.Data, Hint: "use an absolute path", Err: fmt.Errorf("%w: %w", ErrDataDir, err)}
	}
	s.data = abs
	return s, nil
}

// TLS reports whether the server speaks HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// Serve listens and serves until ctx is done, then shuts down gracefully
// (in-flight requests get up to 10 s, then their connections are closed).
// ready, when not nil, is called with the bound address ("host:port",
// useful with port 0) once the server accepts connections. Serve returns
// nil after a shutdown caused by ctx, ctx's error if ctx was done before
// it started, and an error if it could not listen or the server failed. A
// Server may be served again after Serve returns.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var handler http.Handler = s.bundle
	if s.bundle == nil {
		reg, err := newRegistryHandler(s.data, s.log)
		if err != nil {
			return err
		}
		defer reg.close()
		handler = reg
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	bound := ln.Addr().String()
	if s.bundle != nil {
		ln = lowatListener{ln}
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         s.tls,
	}
	served := make(chan error, 1)
	go func() {
		if s.tls != nil {
			// ServeTLS wraps the listener with a copy of TLSConfig that
			// also offers HTTP/2.
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()

	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	if s.bundle != nil {
		s.log.Info("serving a bundle read-only as an OCI registry", "addr", bound, "scheme", scheme, "bundle", s.bundle.a.Set().Paths[0])
	} else {
		s.log.Info("serving an OCI registry", "addr", bound, "scheme", scheme, "data", s.data)
	}
	if ready != nil {
		ready(bound)
	}

	select {
	case err := <-served:
		// Serve only returns early on a listener failure.
		return fmt.Errorf("serve on %s: %w", bound, err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "addr", bound, "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("requests still running after the grace period; closing their connections", "grace", shutdownGrace, "err", err)
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", bound, err)
	}
	s.log.Info("stopped", "addr", bound)
	return nil
}

// checkListenAddr accepts "host:port" where host is a loopback IP literal
// or "localhost", or anything when allowRemote is set. readOnly (a bundle)
// changes what the refusal says a client could do.
func checkListenAddr(addr string, allowRemote, readOnly bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &OptionsError{Option: "Addr", Value: addr, Hint: "use host:port, e.g. 127.0.0.1:5000", Err: fmt.Errorf("%w: %w", ErrOptions, err)}
	}
	if port == "" {
		return &OptionsError{Option: "Addr", Value: addr, Hint: "add a port, e.g. 127.0.0.1:5000", Err: ErrOptions}
	}
	if allowRemote || isLoopbackHost(host) {
		return nil
	}
	return &OptionsError{
		Option: "Addr", Value: addr, Err: ErrRemoteListen,
		Hint: RemoteRisk(readOnly) + "; listen on a loopback address, or set AllowRemote if that is intended",
	}
}

// RemoteRisk says what anyone who reaches an unauthenticated Server can
// do: with a storage directory, read, overwrite and delete images; with a
// bundle (readOnly), pull everything the bundle serves.
func RemoteRisk(readOnly bool) string {
	if readOnly {
		return "the registry is read-only but has no authentication, so anyone who can reach it can pull everything the bundle serves"
	}
	return "the registry has no authentication, so anyone who can reach it can read, overwrite and delete images"
}

// isLoopbackHost reports whether host names only loopback addresses. An
// empty host listens on every interface, so it is not loopback; host names
// other than "localhost" are not resolved and count as remote.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// loadTLS loads the key pair, or returns nil for plain HTTP.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, &OptionsError{Option: "TLSKey", Value: "", Hint: "a TLS certificate needs its private key", Err: ErrOptions}
	case certFile == "":
		return nil, &OptionsError{Option: "TLSCert", Value: "", Hint: "a TLS key needs its certificate", Err: ErrOptions}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, &OptionsError{Option: "TLSCert", Value: certFile, Hint: "both files must be PEM and the key must belong to the certificate; key " + keyFile, Err: fmt.Errorf("%w: %w", ErrOptions, err)}
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// prepareDataDir creates dir if missing and checks that it is a directory
// we can write to.
func prepareDataDir(dir string) error {
	if dir == "" {
		return &OptionsError{Option: "Data", Value: dir, Hint: "name the storage directory", Err: fmt.Errorf("%w: no directory given", ErrDataDir)}
	}
	fail := func(err error) error {
		return &OptionsError{Option: "Data", Value: dir, Hint: "use a writable directory", Err: fmt.Errorf("%w: %w", ErrDataDir, err)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fail(err)
	}
	if !fi.IsDir() {
		return fail(fmt.Errorf("not a directory"))
	}
	probe, err := os.CreateTemp(dir, ".airlock-write-probe-*")
	if err != nil {
		return fail(err)
	}
	name := probe.Name()
	_, werr := io.WriteString(probe, "ok")
	cerr := probe.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fail(err)
	}
	return nil
}

// notSentLowat is the most a bundle server's socket keeps queued but not
// yet sent (see setNotSentLowat).
const notSentLowat = 128 << 10

// lowatListener sets notSentLowat on the connections it accepts.
type lowatListener struct{ net.Listener }

func (l lowatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		setNotSentLowat(c, notSentLowat)
	}
	return c, err
}
