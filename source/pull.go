package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/pack"
)

// PullOptions configures a Puller. The zero value pulls over TLS with the
// Docker config's credentials.
type PullOptions struct {
	// InsecureRegistries lists registry hosts (host[:port]) reached over plain
	// HTTP. go-containerregistry already allows HTTP for localhost and 127.0.0.1.
	InsecureRegistries []string
	// Keychain supplies credentials; nil means authn.DefaultKeychain (the
	// Docker config file and its credential helpers).
	Keychain authn.Keychain
	// Transport carries requests; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent with every request; "" means go-containerregistry's.
	UserAgent string
}

// Puller resolves image references for `airlock pack`. It implements
// pack.ImageResolver and is safe for concurrent use.
type Puller struct {
	opts PullOptions
}

// NewPuller returns a Puller with opts.
func NewPuller(opts PullOptions) *Puller {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	return &Puller{opts: opts}
}

var _ pack.ImageResolver = (*Puller)(nil)

// Resolve implements pack.ImageResolver for registry references,
// "oci:PATH[:TAG|@DIGEST]" and "docker-archive:PATH".
func (p *Puller) Resolve(ctx context.Context, ref string) (pack.ImageSource, error) {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		return openLayout(ref)
	case strings.HasPrefix(ref, "docker-archive:"):
		return openArchive(ref)
	}
	return p.resolveRemote(ctx, ref)
}

func (p *Puller) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(p.opts.Keychain)}
	if p.opts.Transport != nil {
		opts = append(opts, remote.WithTransport(p.opts.Transport))
	}
	if p.opts.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(p.opts.UserAgent))
	}
	return opts
}

func (p *Puller) resolveRemote(ctx context.Context, ref string) (pack.ImageSource, error) {
	var nameOpts []name.Option
	if r, err := name.ParseReference(ref); err == nil && slices.Contains(p.opts.InsecureRegistries, r.Context().RegistryStr()) {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err, Hint: "write host/repository:tag or host/repository@sha256:..."}
	}
	desc, err := remote.Get(r, p.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(ref, r.Context().RegistryStr(), err)
	}
	return &remoteSource{
		p:    p,
		repo: r.Context(),
		ref:  ref,
		root: bundle.Descriptor{MediaType: string(desc.MediaType), Digest: desc.Digest.String(), Size: desc.Size},
		raw:  desc.Manifest,
	}, nil
}

// classify turns registry errors into errors that say what happened; the
// cause stays in the chain (x509, syscall and HTTP status errors), so that
// the caller can tell what to do.
func classify(ref, host string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return &SourceError{Ref: ref, Err: fmt.Errorf("%w: %w", ErrNotFound, err), Hint: "check the repository and tag exist in " + host}
		case http.StatusUnauthorized, http.StatusForbidden:
			return &SourceError{Ref: ref, Err: fmt.Errorf("%w: %w", ErrUnauthorized, err)}
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return &SourceError{Ref: ref, Err: fmt.Errorf("%w: %w", ErrNotFound, err), Hint: "check the repository and tag exist in " + host}
			}
		}
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.As(err, &netErr) || errors.Is(err, http.ErrSchemeMismatch) {
		return &SourceError{Ref: ref, Err: fmt.Errorf("%w: %w", ErrUnreachable, err)}
	}
	return &SourceError{Ref: ref, Err: err}
}

type remoteSource struct {
	p    *Puller
	repo name.Repository
	ref  string
	root bundle.Descriptor
	raw  []byte

	mu     sync.Mutex
	client *http.Client // authenticated for pulls from repo, made on first use
}

func (s *remoteSource) Root() (bundle.Descriptor, []byte) { return s.root, s.raw }
func (s *remoteSource) Repository() string                { return s.repo.Name() }
func (s *remoteSource) Staged() bool                      { return true }

func (s *remoteSource) Manifest(ctx context.Context, d bundle.Descriptor) ([]byte, error) {
	desc, err := remote.Get(s.repo.Digest(d.Digest), s.p.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(s.ref, s.repo.RegistryStr(), err)
	}
	return desc.Manifest, nil
}

// Blob opens a blob with a plain GET: the bytes are not hashed here. Every
// caller checks them once against d (the bundle writer as it writes a
// layer, checked.ReadAll for a config), so go-containerregistry's
// verifying reader would hash each byte a second time.
func (s *remoteSource) Blob(ctx context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
	if _, err := v1.NewHash(d.Digest); err != nil {
		return nil, err
	}
	cl, err := s.httpClient(ctx)
	if err != nil {
		return nil, classify(s.ref, s.repo.RegistryStr(), err)
	}
	reg := s.repo.Registry
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", reg.Scheme(), reg.RegistryStr(), s.repo.RepositoryStr(), d.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, classify(s.ref, s.repo.RegistryStr(), err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, classify(s.ref, s.repo.RegistryStr(), err)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: the registry announces %d bytes for blob %s of %d bytes", bundle.ErrIntegrity, resp.ContentLength, d.Digest, d.Size)
	}
	return resp.Body, nil
}

// httpClient returns a client authenticated to pull from the source's
// repository, with go-containerregistry's retries for failed requests.
func (s *remoteSource) httpClient(ctx context.Context) (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	auth, err := authn.Resolve(ctx, s.p.opts.Keychain, s.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", s.repo.RegistryStr(), err)
	}
	inner := s.p.opts.Transport
	if inner == nil {
		inner = remote.DefaultTransport
	}
	inner = transport.NewRetry(inner)
	if s.p.opts.UserAgent != "" {
		inner = transport.NewUserAgent(inner, s.p.opts.UserAgent)
	}
	// The context only bounds the token exchange; the transport outlives it.
	t, err := transport.NewWithContext(ctx, s.repo.Registry, auth, inner, []string{s.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	s.client = &http.Client{Transport: t}
	return s.client, nil
}

// bytesSource is shared by local sources that hold their root in memory.
func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
