package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/pack"
)

// MaxIndexSize bounds a chart repository's index.yaml (64 MiB; large
// public repositories serve tens of MiB).
const MaxIndexSize = 64 << 20

// ChartRepoOptions configures a ChartRepos. The zero value fetches over
// TLS with the system roots.
type ChartRepoOptions struct {
	// InsecureHosts lists hosts (host[:port]) that may be reached over
	// plain HTTP; any other http:// repository is refused.
	InsecureHosts []string
	// Transport carries requests; nil means internal/registryhttp's defaults.
	Transport http.RoundTripper
	// UserAgent is sent with every request.
	UserAgent string
}

// ChartRepos fetches charts from classic Helm chart repositories. It
// implements pack.ChartRepository and is safe for concurrent use.
type ChartRepos struct {
	opts   ChartRepoOptions
	client *http.Client
}

var _ pack.ChartRepository = (*ChartRepos)(nil)

// NewChartRepos returns a ChartRepos with opts.
func NewChartRepos(opts ChartRepoOptions) (*ChartRepos, error) {
	rt := opts.Transport
	if rt == nil {
		t, err := registryhttp.New(registryhttp.Options{})
		if err != nil {
			return nil, err
		}
		rt = t
	}
	r := &ChartRepos{opts: opts}
	r.client = &http.Client{Transport: rt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		return r.allowed(req.URL)
	}}
	return r, nil
}

// allowed refuses plain HTTP except to the hosts the user named.
func (r *ChartRepos) allowed(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if slices.Contains(r.opts.InsecureHosts, u.Host) {
			return nil
		}
		return fmt.Errorf("%s is plain HTTP; use https, or allow the host with --insecure-registry %s", u.Redacted(), u.Host)
	}
	return fmt.Errorf("%s: only https (and http for allowed hosts) is supported", u.Redacted())
}

// FetchChart implements pack.ChartRepository: it reads the repository's
// index.yaml, picks exactly version, downloads the
// archive and checks its sha256 against the index's digest, and fetches
// ARCHIVE.prov when the repository serves one.
func (r *ChartRepos) FetchChart(ctx context.Context, repoURL, name, version string) (*pack.ChartDownload, error) {
	base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repoURL, err)
	}
	if err := r.allowed(base); err != nil {
		return nil, err
	}
	indexURL := base.ResolveReference(&url.URL{Path: "index.yaml"})
	raw, err := r.get(ctx, indexURL, MaxIndexSize, false)
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", indexURL.Redacted(), err)
	}
	var cv *indexEntry
	for i, v := range idx.Entries[name] {
		if v.Name == name && v.Version == version {
			cv = &idx.Entries[name][i]
			break
		}
	}
	if cv == nil {
		var have []string
		for _, v := range idx.Entries[name] {
			have = append(have, v.Version)
		}
		if len(have) == 0 {
			return nil, fmt.Errorf("%s lists no chart named %q", indexURL.Redacted(), name)
		}
		return nil, fmt.Errorf("%s lists %s at versions %s, not %s", indexURL.Redacted(), name, strings.Join(have, ", "), version)
	}
	want := strings.TrimPrefix(cv.Digest, "sha256:")
	if len(want) != 64 || strings.Trim(strings.ToLower(want), "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%s: %s %s has no sha256 digest (%q); airlock carries only charts whose archive the index pins", indexURL.Redacted(), name, version, cv.Digest)
	}
	want = strings.ToLower(want)
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%s: %s %s lists no download URL", indexURL.Redacted(), name, version)
	}
	ref, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: URL %q: %w", indexURL.Redacted(), name, version, cv.URLs[0], err)
	}
	archiveURL := base.ResolveReference(ref)
	if err := r.allowed(archiveURL); err != nil {
		return nil, err
	}
	archive, err := r.get(ctx, archiveURL, pack.MaxChartArchiveSize, false)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(archive)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("integrity: %s hashes to sha256:%s, the index says sha256:%s", archiveURL.Redacted(), got, want)
	}
	provURL := *archiveURL
	provURL.Path += ".prov"
	prov, err := r.get(ctx, &provURL, pack.MaxProvenanceSize, true)
	if err != nil {
		return nil, err
	}
	return &pack.ChartDownload{URL: archiveURL.Redacted(), Digest: "sha256:" + want, Archive: archive, Provenance: prov}, nil
}

// get fetches u, at most limit bytes; with optional, a 404 returns nil.
func (r *ChartRepos) get(ctx context.Context, u *url.URL, limit int64, optional bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if r.opts.UserAgent != "" {
		req.Header.Set("User-Agent", r.opts.UserAgent)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if optional && resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: %d bytes exceed %d", u.Redacted(), resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u.Redacted(), limit)
	}
	return b, nil
}

// chartIndex is the part of a repository's index.yaml airlock reads:
// for each chart name, its versions with their archive URLs and digests.
type chartIndex struct {
	APIVersion string                  `yaml:"apiVersion"`
	Entries    map[string][]indexEntry `yaml:"entries"`
}

type indexEntry struct {
	Name    string   `yaml:"name"`
	Version string   `yaml:"version"`
	URLs    []string `yaml:"urls"`
	Digest  string   `yaml:"digest"`
}

// parseIndex reads index.yaml (version v1; other fields ignored).
func parseIndex(raw []byte) (*chartIndex, error) {
	var idx chartIndex
	if err := yaml.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("not a chart repository index: %w", err)
	}
	if idx.APIVersion != "v1" {
		return nil, fmt.Errorf("not a chart repository index (apiVersion %q, want v1)", idx.APIVersion)
	}
	return &idx, nil
}
