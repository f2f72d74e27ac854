package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Limits of what is read from a registry. A registry is untrusted storage:
// nothing it sends is read without a bound.
const (
	// maxErrorBody bounds the body of an error answer that is read (for its
	// error codes); the rest is discarded unread.
	maxErrorBody = 64 << 10
	// DefaultRetryWindow is how long refused or reset connections are
	// retried before a run gives up (MirrorOptions.RetryWindow).
	DefaultRetryWindow = 2 * time.Minute
)

// RetryEvent describes a request that failed because the registry could not
// be reached and that will be tried again.
type RetryEvent struct {
	Op      string        // what was being done, e.g. "push blob sha256:... to REPO"
	Err     error         // why it failed
	Waited  time.Duration // how long the registry has been unreachable
	Window  time.Duration // how long it will be retried in all
	Attempt int           // the number of the attempt that failed, from 1
}

// regClient talks to one registry with raw HTTP requests: authenticated per
// scope through go-containerregistry's transport, every body read with a
// limit, and every operation retried as configured.
type regClient struct {
	reg     name.Registry
	keys    authn.Keychain
	base    http.RoundTripper
	ua      string
	log     *slog.Logger
	backoff remote.Backoff // for answers that ask to be retried (5xx, 429, conflicts)
	window  time.Duration  // for refused and reset connections
	onRetry func(RetryEvent)

	mu   sync.Mutex
	auth authn.Authenticator
	tr   map[string]http.RoundTripper // authenticated transports by scope set
}

// transportFor returns a client authenticated for scopes (created once).
func (c *regClient) client(ctx context.Context, scopes ...string) (*http.Client, error) {
	sort.Strings(scopes)
	key := strings.Join(scopes, " ")
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tr[key]; ok {
		return &http.Client{Transport: t, CheckRedirect: sameHostRedirect}, nil
	}
	if c.auth == nil {
		a, err := authn.Resolve(ctx, c.keys, c.reg)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", c.reg, err)
		}
		c.auth = a
	}
	inner := c.base
	if c.ua != "" {
		inner = transport.NewUserAgent(inner, c.ua)
	}
	t, err := transport.NewWithContext(ctx, c.reg, c.auth, inner, scopes)
	if err != nil {
		return nil, err
	}
	c.tr[key] = t
	return &http.Client{Transport: t, CheckRedirect: sameHostRedirect}, nil
}

// sameHostRedirect follows redirects (blob GETs are often redirected to
// storage) but at most 10.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

func pushScope(repo name.Repository) string {
	return repo.Scope(transport.PushScope)
}

func pullScope(repo name.Repository) string {
	return repo.Scope(transport.PullScope)
}

// url builds scheme://registry/v2/REPO/suffix; the transport corrects the
// scheme to what the registry answered on.
func (c *regClient) url(repo name.Repository, suffix string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", c.reg.Scheme(), c.reg.RegistryStr(), repo.RepositoryStr(), suffix)
}

// request is one HTTP request; body, when set, is opened anew for every
// attempt.
type request struct {
	method string
	url    string
	header http.Header
	body   func() (io.ReadCloser, error)
	size   int64 // body length; -1 unknown
}

// send makes one attempt of req with the client for scopes.
func (c *regClient) send(ctx context.Context, req request, scopes ...string) (*http.Response, error) {
	cl, err := c.client(ctx, scopes...)
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser = http.NoBody
	if req.body != nil {
		if body, err = req.body(); err != nil {
			return nil, err
		}
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		body.Close()
		return nil, err
	}
	if req.body != nil {
		hr.ContentLength = req.size
		hr.GetBody = req.body // a redirect re-opens it
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	return cl.Do(hr)
}

// statusError is an unexpected answer of the registry: its status, the
// error codes of its (bounded) body.
type statusError struct {
	Method string
	URL    string
	Status int
	Codes  []string
	Detail string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, redactURL(e.URL), e.Status, http.StatusText(e.Status))
	if len(e.Codes) > 0 {
		s += " (" + strings.Join(e.Codes, ", ") + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// HTTPStatus is the registry's status code, for callers that say what to
// do about it (a 401 means logging in).
func (e *statusError) HTTPStatus() int { return e.Status }

// Host is the registry host that answered, for messages that name it.
func (e *statusError) Host() string {
	if u, err := url.Parse(e.URL); err == nil {
		return u.Host
	}
	return ""
}

func (e *statusError) has(code string) bool {
	for _, c := range e.Codes {
		if c == code {
			return true
		}
	}
	return false
}

// redactURL drops the query (upload state tokens) from a URL for messages.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// checkStatus returns nil when resp has one of the wanted codes, else a
// statusError with at most maxErrorBody bytes of the body read; the body is
// then closed.
func checkStatus(resp *http.Response, want ...int) error {
	for _, w := range want {
		if resp.StatusCode == w {
			return nil
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &statusError{Method: resp.Request.Method, URL: resp.Request.URL.String(), Status: resp.StatusCode}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if jsonUnmarshal(b, &body) == nil {
		var msgs []string
		for _, x := range body.Errors {
			e.Codes = append(e.Codes, x.Code)
			if x.Message != "" {
				msgs = append(msgs, x.Message)
			}
		}
		e.Detail = strings.Join(msgs, "; ")
	} else if len(bytes.TrimSpace(b)) > 0 && len(b) <= 200 {
		e.Detail = string(bytes.TrimSpace(b))
	}
	return e
}

// readLimited reads a body of at most max bytes; a longer one is an error
// (a registry that answers with more than any manifest may hold is lying,
// and is not read any further).
func readLimited(r io.Reader, max int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &LimitError{What: what, Limit: max}
	}
	return b, nil
}

// unreachable reports an error that means the registry could not be
// reached or dropped the connection (refused, reset, closed early): retried
// for the retry window. A timeout (a stalled transfer) is not: it is
// transient, retried with the backoff like a 5xx answer.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || timeout(err) {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNABORTED)
}

func timeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transient reports an answer that asks to be retried: 5xx, 429, and the
// codes a registry gives when a concurrent writer or a lost upload state
// got in the way.
func transient(err error) bool {
	if timeout(err) && !errors.Is(err, context.Canceled) {
		return true
	}
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch {
	case se.Status >= 500, se.Status == http.StatusTooManyRequests, se.Status == http.StatusRequestedRangeNotSatisfiable:
		return true
	}
	for _, c := range []string{"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"} {
		if se.has(c) {
			return true
		}
	}
	return false
}

// retry runs f until it succeeds, fails for good, or runs out of tries: an
// unreachable registry is retried with growing waits (0.5 s up to 10 s)
// until it has been unreachable for the retry window, each wait reported;
// a transient answer is retried with the configured backoff.
func (c *regClient) retry(ctx context.Context, op string, f func(ctx context.Context) error) error {
	var downSince time.Time
	wait := 500 * time.Millisecond
	bo := c.backoff
	attempt := 0
	for {
		attempt++
		err := f(ctx)
		if err == nil || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		var d time.Duration
		switch {
		case unreachable(err):
			if downSince.IsZero() {
				downSince = time.Now()
			}
			waited := time.Since(downSince)
			if waited >= c.window {
				return fmt.Errorf("%w (unreachable for %v, the retry window)", err, waited.Round(time.Second))
			}
			d = wait
			if wait < 10*time.Second {
				wait *= 2
			}
			if rest := c.window - waited; d > rest {
				d = rest
			}
			ev := RetryEvent{Op: op, Err: err, Waited: waited, Window: c.window, Attempt: attempt}
			c.log.Warn("registry unreachable, retrying", "op", op, "err", err, "waited", waited, "window", c.window)
			if c.onRetry != nil {
				c.onRetry(ev)
			}
		case transient(err) && bo.Steps > 1:
			downSince = time.Time{}
			d = bo.Step()
			c.log.Debug("registry asked to retry", "op", op, "err", err, "wait", d)
		default:
			return err
		}
		// Jitter spreads the retries of concurrent writers apart.
		d += time.Duration(rand.Int64N(int64(d)/4 + 1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// resolveLocation resolves an upload Location header against the request.
func resolveLocation(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location in the answer", resp.Request.Method, redactURL(resp.Request.URL.String()))
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("%s %s: Location %q: %w", resp.Request.Method, redactURL(resp.Request.URL.String()), redactURL(loc), err)
	}
	return u.String(), nil
}

// withQuery adds key=value to a URL.
func withQuery(u, key, value string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	q := p.Query()
	q.Set(key, value)
	p.RawQuery = q.Encode()
	return p.String(), nil
}

// drain discards up to 64 KiB of a body and closes it, so that the
// connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}
