package registryhttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Options configures the HTTP transport used to talk to registries.
type Options struct {
	// CAFile is a PEM bundle of extra CAs to trust (the site registry's CA);
	// "" trusts the system roots only.
	CAFile string
	// StallTimeout aborts a connection on which no byte moved for this long;
	// <= 0 means 60 s. Aborted transfers are retried.
	StallTimeout time.Duration
}

// New returns a transport with TLS verification on, the extra CAs
// of opts.CAFile, bounded connection setup, and a stall timeout on every
// read and write.
func New(opts Options) (http.RoundTripper, error) {
	stall := opts.StallTimeout
	if stall <= 0 {
		stall = 60 * time.Second
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates in it", opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: c, timeout: stall}, nil
		},
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: stall,
		ExpectContinueTimeout: 5 * time.Second,
	}, nil
}

// stallConn moves its deadline forward on every read and write, so a
// transfer fails only when it stops making progress, however large it is.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// Retryable decides which failed requests are tried again: those
// go-containerregistry retries by default (temporary errors, 5xx and 429
// answers, broken connections) and also timeouts, so that a transfer the
// stall timeout aborted is retried as Options promises.
// go-containerregistry's own predicate refuses every error that matches
// context.DeadlineExceeded, which net/http's timeouts do.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}
