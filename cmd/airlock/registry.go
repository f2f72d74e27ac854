package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/internal/credentials"
	"github.com/airlock-dev/airlock/internal/diskspace"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/source"
)

// registryFlags are the flags of every command that talks to a registry
// (pack, mirror, install --registry), with one meaning everywhere.
type registryFlags struct {
	caFile   string
	insecure []string
}

func (f *registryFlags) register(fs *pflag.FlagSet, whose string) {
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of extra CAs to trust for the TLS certificates of "+whose+" (added to the system roots)")
	fs.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry host[:port] to reach over plain HTTP (repeatable)")
}

// registryClient is what a command needs to talk to registries: the
// transport (TLS with --ca-file), the credentials, and a record of what
// happened on the wire for hints and node configuration.
type registryClient struct {
	flags     *registryFlags
	keychain  *credentials.Keychain
	transport *recordingTransport
}

// newRegistryClient builds the transport and reads credentials where the
// Docker and podman tools keep them: $REGISTRY_AUTH_FILE when set, else
// $DOCKER_CONFIG/config.json (~/.docker/config.json), else podman's
// auth.json ($XDG_RUNTIME_DIR/containers/auth.json,
// $XDG_CONFIG_HOME/containers/auth.json, ~/.config/containers/auth.json).
func newRegistryClient(e *env, f *registryFlags) (*registryClient, error) {
	t, err := registryhttp.New(registryhttp.Options{CAFile: f.caFile})
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	home := e.getenv("HOME")
	dockerDir := e.getenv("DOCKER_CONFIG")
	if dockerDir == "" && home != "" {
		dockerDir = filepath.Join(home, ".docker")
	}
	opts := credentials.Options{AuthFile: e.getenv("REGISTRY_AUTH_FILE")}
	if dockerDir != "" {
		opts.DockerConfig = filepath.Join(dockerDir, "config.json")
	}
	if d := e.getenv("XDG_RUNTIME_DIR"); d != "" {
		opts.ContainersAuth = append(opts.ContainersAuth, filepath.Join(d, "containers", "auth.json"))
	}
	cfgHome := e.getenv("XDG_CONFIG_HOME")
	if cfgHome == "" && home != "" {
		cfgHome = filepath.Join(home, ".config")
	}
	if cfgHome != "" {
		opts.ContainersAuth = append(opts.ContainersAuth, filepath.Join(cfgHome, "containers", "auth.json"))
	}
	kc, err := credentials.New(opts)
	if err != nil {
		if opts.AuthFile != "" {
			return nil, fmt.Errorf("REGISTRY_AUTH_FILE=%s: %w", opts.AuthFile, err)
		}
		return nil, err
	}
	return &registryClient{flags: f, keychain: kc, transport: &recordingTransport{next: t, schemes: map[string]map[string]bool{}}}, nil
}

// recordingTransport notes which schemes each host answered on, so that
// node configuration says what the mirror actually spoke.
type recordingTransport struct {
	next    http.RoundTripper
	mu      sync.Mutex
	schemes map[string]map[string]bool // host -> scheme -> answered
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	// A TLS server answers a plain-HTTP request with 400 ("Client sent an
	// HTTP request to an HTTPS server"), and go-containerregistry pings
	// loopback hosts over both schemes at once: such an answer is no sign
	// that the registry speaks plain HTTP.
	if err == nil && !(resp.StatusCode == http.StatusBadRequest && resp.Header.Get("Docker-Distribution-Api-Version") == "") {
		t.mu.Lock()
		if t.schemes[r.URL.Host] == nil {
			t.schemes[r.URL.Host] = map[string]bool{}
		}
		t.schemes[r.URL.Host][r.URL.Scheme] = true
		t.mu.Unlock()
	}
	return resp, err
}

// answered reports whether host answered a request over scheme.
func (t *recordingTransport) answered(host, scheme string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.schemes[host][scheme]
}

// hintedError is an error and what the user can do about it; runCommand
// prints the hint on its own line.
type hintedError struct {
	err  error
	hint string
}

func (h *hintedError) Error() string { return h.err.Error() }
func (h *hintedError) Unwrap() error { return h.err }

// withHint adds what to do about a registry or disk failure, from the
// facts the error carries and the flags the command was given.
func (c *registryClient) withHint(err error) error {
	if err == nil {
		return nil
	}
	if h := c.hint(err); h != "" {
		return &hintedError{err: err, hint: h}
	}
	return err
}

func (c *registryClient) hint(err error) string {
	host := failedHost(err)
	hostOr := func(def string) string {
		if host != "" {
			return host
		}
		return def
	}
	var te *transport.Error
	var hs interface{ HTTPStatus() int } // mirror's registry client
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ns *diskspace.Error
	switch {
	case errors.As(err, &ns):
		// The message says where and how much; say which flag moves it.
		if strings.HasPrefix(ns.Op, "writing the bundle") {
			return "write the bundle to a disk with more room with -o, or free space there"
		}
		if strings.HasPrefix(ns.Op, "spooling") {
			return "point --tmp-dir at a disk with more room, or lower --jobs (about --jobs + 1 blobs wait there at once)"
		}
		return "point --tmp-dir at a disk with more room"
	case errors.Is(err, source.ErrUnauthorized) || errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) ||
		errors.As(err, &hs) && (hs.HTTPStatus() == http.StatusUnauthorized || hs.HTTPStatus() == http.StatusForbidden):
		h := hostOr("REGISTRY")
		where := "no credentials file was found, so requests were anonymous"
		if src := c.keychain.Source(); src != "" {
			where = "credentials were read from " + src
			if helper := c.keychain.Helper(h); helper != "" {
				where += " through docker-credential-" + helper
			}
		}
		return fmt.Sprintf("%s refused the request (%s): log in with `docker login %s` (writes $DOCKER_CONFIG/config.json, default ~/.docker/config.json) or `podman login %s`, or point REGISTRY_AUTH_FILE at an auth.json holding credentials for %s", h, where, h, h, h)
	case errors.As(err, &ua):
		if c.flags.caFile != "" {
			return fmt.Sprintf("the TLS certificate of %s is not signed by a CA in --ca-file %s nor by a system CA: give the CA that signed it", hostOr("the registry"), c.flags.caFile)
		}
		return fmt.Sprintf("the TLS certificate of %s is signed by an authority this machine does not trust: pass that CA's certificate (PEM) with --ca-file", hostOr("the registry"))
	case errors.As(err, &hn):
		return fmt.Sprintf("the TLS certificate of %s is not valid for that name (%v): address the registry by a name its certificate lists", hostOr("the registry"), hn.Certificate.DNSNames)
	case errors.Is(err, http.ErrSchemeMismatch):
		if slices.Contains(c.flags.insecure, host) {
			return ""
		}
		return fmt.Sprintf("%s speaks plain HTTP: add --insecure-registry %s if that is intended", hostOr("the registry"), hostOr("HOST"))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing accepts connections at %s: is the registry up, and is that its address and port?", hostOr("the registry's address"))
	}
	return ""
}

// failedHost is the host of the request an error came from, if it says.
func failedHost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return u.Host
		}
	}
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil && te.Request.URL != nil {
		return te.Request.URL.Host
	}
	var he interface{ Host() string } // mirror's registry client
	if errors.As(err, &he) {
		return he.Host()
	}
	return ""
}

// emitPlainHTTP decides whether nodes reach the mirror over plain HTTP:
// only when the user named the host with --insecure-registry and it
// answered that way. A registry that answered only in plain HTTP without
// being named is refused, so that node configuration never silently
// drops TLS.
func (c *registryClient) emitPlainHTTP(target mirror.Target) (bool, error) {
	host := target.Registry.Name()
	plain := c.transport.answered(host, "http")
	switch {
	case plain && !target.Insecure:
		return false, fmt.Errorf("--emit-config: %s answered only over plain HTTP, and it was not named with --insecure-registry; add --insecure-registry %s to write plain-HTTP node configuration, or serve the registry over HTTPS", host, host)
	case target.Insecure && c.transport.answered(host, "https"):
		return false, nil // named insecure, but it spoke verified TLS: keep TLS
	}
	return target.Insecure, nil
}

// joinHosts lists hosts for messages.
func joinHosts(h []string) string { return strings.Join(h, ", ") }
