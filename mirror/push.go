package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/diskspace"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// ErrRegistry reports a registry that failed or lied while mirroring.
var ErrRegistry = errors.New("registry error")

// MirrorOptions configures Mirror. To and Policy are required; the zero
// value of every other field works.
type MirrorOptions struct {
	// To is the destination registry and path prefix.
	To Target
	// Policy decides trust, exactly as for `airlock verify`.
	Policy *policy.Policy
	// Upstream re-verifies upstream image signatures a policy rule
	// requires (verify.Options.Upstream); without it such a rule fails.
	Upstream verify.UpstreamVerifier
	// KeepRegistryHost puts the source registry host into the target path.
	KeepRegistryHost bool
	// ImagesOnly skips models.
	ImagesOnly bool
	// Jobs bounds concurrent uploads; <= 0 means 4.
	Jobs int
	// Keychain supplies credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport carries requests; nil means NewTransport's defaults.
	Transport http.RoundTripper
	// Retry is the backoff for retried requests (5xx, 429, broken
	// connections); the zero value means 5 tries, waiting about 1, 2, 4
	// and 8 s between them.
	Retry remote.Backoff
	// TempDir holds verified blobs until they are uploaded (a few at a time);
	// "" means the system temporary directory.
	TempDir string
	// Now is the one time every time check uses; zero means time.Now().
	Now time.Time
	// Path names the bundle in the report.
	Path string
	// SiteSigner, when set, signs every mirrored image in cosign's key-based
	// format (a simple-signing payload under the sha256-<hex>.sig tag).
	SiteSigner bundle.Signer
	// Progress receives progress; nil reports nothing.
	Progress bundle.Progress
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
	// UserAgent is sent with every request.
	UserAgent string
}

// Mapping says where one artifact of the bundle now lives.
type Mapping struct {
	Kind    string `json:"kind"`              // image, model, chart, attachment, sbom
	Source  string `json:"source"`            // as in the bundle: image ref, "model NAME", ...
	Target  string `json:"target"`            // REGISTRY/REPO[:TAG]@DIGEST
	Digest  string `json:"digest"`            // unchanged from the bundle
	Subject string `json:"subject,omitempty"` // attachments and SBOMs: the image they belong to
}

// Result is what Mirror did.
type Result struct {
	Verify   *verify.Report `json:"verify"`
	Target   string         `json:"target"`
	Mappings []Mapping      `json:"mappings"`
	Blobs    BlobCounts     `json:"blobs"`
	// Manifests counts manifests written and found already present.
	Manifests ManifestCounts `json:"manifests"`
	Tags      int            `json:"tags"` // tags set or moved; tags already right are not counted
	Signed    int            `json:"signed,omitempty"`
	Seconds   float64        `json:"seconds"`
}

// BlobCounts counts blob transfers, per destination repository.
type BlobCounts struct {
	Pushed      int   `json:"pushed"`
	Mounted     int   `json:"mounted"`
	Skipped     int   `json:"skipped"` // already present
	BytesPushed int64 `json:"bytesPushed"`
}

// ManifestCounts counts manifest writes.
type ManifestCounts struct {
	Pushed  int `json:"pushed"`
	Skipped int `json:"skipped"`
}

// job is one artifact to push: its content and where it goes.
type job struct {
	artifact bundle.Artifact
	kind     string
	place    placement
	content  *bundle.Content
}

type mirrorer struct {
	opts    MirrorOptions
	ropts   []remote.Option
	spool   string
	jobs    []*job
	repos   map[string][]name.Repository // blob digest -> repositories needing it
	uploads *errgroup.Group
	uctx    context.Context
	mu      sync.Mutex
	res     *Result
	pushed  atomic.Int64
}

// Mirror verifies the bundle read from r and pushes its images, models and
// their signatures, attestations and SBOMs into the target registry in the
// same pass. Trust is decided from the head before anything is pushed; each
// blob is pushed only after its bytes matched their signed digest; a
// manifest only after everything it references is present; tags last, each
// after reading the manifest back and re-hashing it. When verification
// fails, no manifest and no tag of the bundle is written. A *verify.Failure
// error means the bundle was rejected; other errors are registry or I/O
// failures, and a rerun resumes (present blobs are skipped).
func Mirror(ctx context.Context, r io.Reader, opts MirrorOptions) (*Result, error) {
	p, err := NewPusher(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	rep, verr := verify.Verify(ctx, r, verify.Options{
		Policy: opts.Policy, Now: opts.Now, Path: opts.Path, Progress: opts.Progress, Logger: opts.Logger,
		Trusted: p.Trusted,
		Blob:    p.Blob, Upstream: opts.Upstream,
	})
	return p.Finish(ctx, rep, verr)
}

// Pusher pushes a bundle's verified content into a registry. It plugs into
// verify.Verify (Trusted and Blob) so that verifying and pushing are one
// pass; Mirror uses it alone, `airlock install --registry` next to its own
// consumer. Call Finish after Verify returns, and Close always.
type Pusher struct {
	m      *mirrorer
	start  time.Time
	cancel context.CancelFunc
}

// NewPusher prepares a Pusher. opts.To and opts.Policy are required. Uploads
// stop when ctx is cancelled.
func NewPusher(ctx context.Context, opts MirrorOptions) (*Pusher, error) {
	if opts.Policy == nil {
		return nil, verify.ErrNoPolicy
	}
	if opts.To.Registry.Name() == "" {
		return nil, errors.New("mirror: no target registry")
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		t, err := registryhttp.New(registryhttp.Options{})
		if err != nil {
			return nil, err
		}
		opts.Transport = t
	}
	if opts.Retry.Steps == 0 {
		opts.Retry = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}
	}
	spool, err := os.MkdirTemp(opts.TempDir, "airlock-mirror-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	g, uctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	m := &mirrorer{opts: opts, spool: spool, repos: map[string][]name.Repository{}, uploads: g, uctx: uctx,
		res: &Result{Target: strings.TrimSuffix(opts.To.Registry.Name()+"/"+opts.To.Prefix, "/"), Mappings: []Mapping{}}}
	m.ropts = []remote.Option{
		remote.WithAuthFromKeychain(opts.Keychain), remote.WithTransport(opts.Transport),
		remote.WithRetryBackoff(opts.Retry), remote.WithRetryPredicate(registryhttp.Retryable), remote.WithJobs(1),
	}
	if opts.UserAgent != "" {
		m.ropts = append(m.ropts, remote.WithUserAgent(opts.UserAgent))
	}
	return &Pusher{m: m, start: time.Now(), cancel: cancel}, nil
}

// Trusted is the verify.Options.Trusted hook: it places every artifact and
// starts uploading the configs.
func (p *Pusher) Trusted(ctx context.Context, h *bundle.Head) error { return p.m.plan(ctx, h) }

// Blob is the verify.Options.Blob hook: it consumes a body blob, uploading
// it when the registry needs it.
func (p *Pusher) Blob(ctx context.Context, e *bundle.BodyEntry) error { return p.m.blob(ctx, e) }

// Wants reports whether a blob is to be pushed.
func (p *Pusher) Wants(digest string) bool { return len(p.m.repos[digest]) > 0 }

// BlobFile queues the upload of a blob that the caller already verified and
// keeps at path (install's staged file); the file is not removed.
func (p *Pusher) BlobFile(d bundle.Descriptor, path string) error {
	if !p.Wants(d.Digest) {
		return nil
	}
	p.m.uploads.Go(func() error { return p.m.uploadBlob(p.m.uctx, d, fileOpener(path)) })
	return p.m.uctx.Err()
}

// Finish waits for the uploads and, when verification succeeded (verr is
// nil), pushes manifests, then tags, then site signatures. It returns the
// result with rep attached and the first error.
func (p *Pusher) Finish(ctx context.Context, rep *verify.Report, verr error) (*Result, error) {
	m := p.m
	m.res.Verify = rep
	uerr := m.uploads.Wait()
	finish := func(err error) (*Result, error) {
		m.res.Seconds = time.Since(p.start).Seconds()
		return m.res, err
	}
	if uerr != nil && !verify.IsFailure(verr) {
		// A failed upload cancels the stream: verification then only
		// reports that cancellation, and the upload error is the cause.
		return finish(uerr)
	}
	if verr != nil {
		return finish(verr) // nothing but verified blobs reached the registry
	}
	if err := m.pushManifests(ctx); err != nil {
		return finish(err)
	}
	if err := m.pushTags(ctx); err != nil {
		return finish(err)
	}
	if m.opts.SiteSigner != nil {
		if err := m.signImages(ctx); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// Close stops pending uploads and removes the spool.
func (p *Pusher) Close() {
	p.cancel()
	p.m.uploads.Wait()
	os.RemoveAll(p.m.spool)
}

func (m *mirrorer) remoteOpts(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, m.ropts...)
}

// plan runs once trust is decided: it places every artifact and starts
// uploading the configs, which the head already holds.
func (m *mirrorer) plan(ctx context.Context, h *bundle.Head) error {
	names := layoutNames(h.IndexBytes)
	imagePlace := map[string]placement{} // image ref -> placement
	type tagUse struct{ digest, source string }
	tags := map[string]tagUse{} // repo:tag -> what it will point at
	for i, a := range h.Manifest.Artifacts {
		var pl placement
		var err error
		kind := a.Kind
		switch a.Info().Placement {
		case bundle.PlaceByRef:
			pl, err = m.opts.To.placeImage(a, names[i], m.opts.KeepRegistryHost)
			imagePlace[a.Ref] = pl
		case bundle.PlaceModel:
			if m.opts.ImagesOnly {
				continue
			}
			pl, err = m.opts.To.placeModel(a, h.Manifest.Version)
		case bundle.PlaceChart:
			pl, err = m.opts.To.placeChart(a)
			imagePlace[a.Source] = pl // a chart's cosign signatures follow it
		case bundle.PlaceWithSubject:
			img, ok := imagePlace[a.Subject]
			if a.Subject == "" || !ok {
				continue // an SBOM without a subject stays in the bundle (install)
			}
			pl = placement{repo: img.repo, tag: a.Tag, source: a.Subject}
		default:
			continue // files are installed, not mirrored
		}
		if err != nil {
			return err
		}
		c, err := h.Content(i)
		if err != nil {
			return err
		}
		if pl.tag != "" {
			key := pl.repo.String() + ":" + pl.tag
			root := c.Manifests[len(c.Manifests)-1].Digest
			if prev, ok := tags[key]; ok && prev.digest != root {
				return fmt.Errorf("%s and %s would both be tagged %s with different content; use --keep-registry-host or another prefix", prev.source, pl.source, key)
			}
			tags[key] = tagUse{digest: root, source: pl.source}
		}
		j := &job{artifact: a, kind: kind, place: pl, content: c}
		m.jobs = append(m.jobs, j)
		for _, l := range c.Layers {
			m.addRepo(l.Digest, pl.repo)
		}
		for _, cf := range c.Configs {
			m.addRepo(cf.Digest, pl.repo)
		}
	}
	m.planProgress()
	// Configs (and any layer stored in the head) are verified head data:
	// upload them now.
	done := map[string]bool{}
	for _, j := range m.jobs {
		for _, b := range append(append([]bundle.Blob{}, j.content.Configs...), headLayers(h, j.content)...) {
			if done[b.Digest] {
				continue
			}
			done[b.Digest] = true
			b := b
			m.uploads.Go(func() error { return m.uploadBlob(m.uctx, b.Descriptor, memOpener(b.Data)) })
		}
	}
	return nil
}

// headLayers returns the layers of c that are stored in the head.
func headLayers(h *bundle.Head, c *bundle.Content) []bundle.Blob {
	var out []bundle.Blob
	for _, l := range c.Layers {
		if data, ok := h.Blobs[l.Digest]; ok {
			out = append(out, bundle.Blob{Descriptor: l, Data: data})
		}
	}
	return out
}

func (m *mirrorer) addRepo(digest string, repo name.Repository) {
	for _, r := range m.repos[digest] {
		if r.String() == repo.String() {
			return
		}
	}
	m.repos[digest] = append(m.repos[digest], repo)
}

// blob receives each verified body blob: it is spooled to disk (so that a
// failed upload can be retried from the start) and uploaded by a worker.
func (m *mirrorer) blob(ctx context.Context, e *bundle.BodyEntry) error {
	if len(m.repos[e.Digest]) == 0 {
		_, err := io.Copy(io.Discard, e) // a file's blob: checked, not mirrored
		return err
	}
	p := filepath.Join(m.spool, strings.TrimPrefix(e.Digest, "sha256:"))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, e)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		// An integrity failure is recorded by the reader; the bytes are never pushed.
		return diskspace.Check(err, "spooling blob "+e.Digest+" for its upload", p, e.Size*int64(m.opts.Jobs+1))
	}
	d := e.Descriptor
	// Go blocks while all workers are busy, which holds the stream back
	// and bounds the spool to about Jobs blobs.
	m.uploads.Go(func() error {
		defer os.Remove(p)
		return m.uploadBlob(m.uctx, d, fileOpener(p))
	})
	return m.uctx.Err()
}

type opener func() (io.ReadCloser, error)

func memOpener(b []byte) opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func fileOpener(p string) opener {
	return func() (io.ReadCloser, error) { return os.Open(p) }
}

// spoolLayer presents a verified blob to go-containerregistry's uploader.
type spoolLayer struct {
	d    bundle.Descriptor
	open opener
	read *atomic.Int64
}

func (l *spoolLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.d.Digest) }
func (l *spoolLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.d.Digest) }
func (l *spoolLayer) Size() (int64, error)     { return l.d.Size, nil }
func (l *spoolLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.d.MediaType), nil
}
func (l *spoolLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *spoolLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, n: l.read}, nil
}

type countingReadCloser struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// uploadBlob puts one verified blob into every repository that needs it:
// uploaded once, then mounted across repositories; skipped where present.
func (m *mirrorer) uploadBlob(ctx context.Context, d bundle.Descriptor, open opener) error {
	u := m.meterUpload(d)
	defer u.done()
	open = u.wrap(open)
	var from name.Repository
	uploaded := false
	for _, repo := range m.repos[d.Digest] {
		if err := ctx.Err(); err != nil {
			return err
		}
		if present, err := m.blobExists(ctx, repo, d.Digest); err == nil && present {
			m.count(func(r *Result) { r.Blobs.Skipped++ })
			if !uploaded {
				from, uploaded = repo, true
			}
			continue
		}
		var read atomic.Int64
		var layer v1.Layer = &spoolLayer{d: d, open: open, read: &read}
		if uploaded {
			layer = &remote.MountableLayer{Layer: layer, Reference: from.Digest(d.Digest)}
		}
		if err := remote.WriteLayer(repo, layer, m.remoteOpts(ctx)...); err != nil {
			return fmt.Errorf("%w: push blob %s to %s: %w", ErrRegistry, d.Digest, repo, err)
		}
		n := read.Load()
		m.count(func(r *Result) {
			switch {
			case n > 0:
				r.Blobs.Pushed++
				r.Blobs.BytesPushed += n
			case uploaded:
				r.Blobs.Mounted++
			default:
				r.Blobs.Skipped++
			}
		})
		if !uploaded {
			from, uploaded = repo, true
		}
	}
	return nil
}

func (m *mirrorer) count(f func(*Result)) {
	m.mu.Lock()
	f(m.res)
	m.mu.Unlock()
}

func (m *mirrorer) blobExists(ctx context.Context, repo name.Repository, digest string) (bool, error) {
	l, err := remote.Layer(repo.Digest(digest), m.remoteOpts(ctx)...)
	if err != nil {
		return false, err
	}
	return partial.Exists(l)
}

// rawManifest pushes exact manifest bytes with their media type; nothing is
// re-serialized.
type rawManifest struct {
	raw []byte
	mt  string
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(r.mt), nil }

// pushManifests writes every manifest by digest, children before parents,
// and reads each back by digest to re-hash it.
func (m *mirrorer) pushManifests(ctx context.Context) error {
	for _, j := range m.jobs {
		for _, mf := range j.content.Manifests {
			if err := m.putManifest(ctx, j.place.repo.Digest(mf.Digest), mf); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *mirrorer) putManifest(ctx context.Context, ref name.Reference, mf bundle.Blob) error {
	if d, err := remote.Head(ref, m.remoteOpts(ctx)...); err == nil && d.Digest.String() == mf.Digest {
		if err := m.readBack(ctx, ref, mf.Digest); err == nil && m.listedAsReferrer(ctx, ref, mf) {
			m.count(func(r *Result) { r.Manifests.Skipped++ })
			return nil
		}
	}
	if err := remote.Put(ref, rawManifest{raw: mf.Data, mt: mf.MediaType}, m.remoteOpts(ctx)...); err != nil {
		return fmt.Errorf("%w: push manifest %s to %s: %w", ErrRegistry, mf.Digest, ref.Context(), err)
	}
	if err := m.readBack(ctx, ref, mf.Digest); err != nil {
		return err
	}
	m.count(func(r *Result) { r.Manifests.Pushed++ })
	return nil
}

// listedAsReferrer reports whether a manifest with a subject is among the
// subject's referrers (the referrers API, or the sha256-<hex> tag index that
// remote.Put maintains where there is none). A present manifest that is not
// listed, because an earlier run failed between the two writes, is put
// again, which lists it. A manifest without a subject needs nothing.
func (m *mirrorer) listedAsReferrer(ctx context.Context, ref name.Reference, mf bundle.Blob) bool {
	var s struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if err := jsonUnmarshal(mf.Data, &s); err != nil || s.Subject == nil {
		return true
	}
	idx, err := remote.Referrers(ref.Context().Digest(s.Subject.Digest), m.remoteOpts(ctx)...)
	if err != nil {
		return false
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return false
	}
	for _, d := range im.Manifests {
		if d.Digest.String() == mf.Digest {
			return true
		}
	}
	return false
}

// readBack fetches ref and checks its bytes hash to want.
func (m *mirrorer) readBack(ctx context.Context, ref name.Reference, want string) error {
	d, err := remote.Get(ref, m.remoteOpts(ctx)...)
	if err != nil {
		return fmt.Errorf("%w: read back %s: %w", ErrRegistry, ref, err)
	}
	sum := sha256.Sum256(d.Manifest)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%w: %s reads back as %s, expected %s; the registry did not store the manifest byte for byte", ErrRegistry, ref, got, want)
	}
	return nil
}

// pushTags sets the tags last, after every manifest is in place, and
// records where each artifact now lives.
func (m *mirrorer) pushTags(ctx context.Context) error {
	for _, j := range m.jobs {
		root := j.content.Manifests[len(j.content.Manifests)-1]
		target := j.place.repo.String()
		if j.place.tag != "" {
			tag := j.place.repo.Tag(j.place.tag)
			d, err := remote.Head(tag, m.remoteOpts(ctx)...)
			switch {
			case err == nil && d.Digest.String() == root.Digest:
				if err := m.readBack(ctx, tag, root.Digest); err != nil {
					return err
				}
			case m.siteSignedCopy(ctx, tag, root):
				// An earlier run added the site signature to this upstream
				// signature manifest; putting it back would drop the site's.
			default:
				if err := remote.Put(tag, rawManifest{raw: root.Data, mt: root.MediaType}, m.remoteOpts(ctx)...); err != nil {
					return fmt.Errorf("%w: tag %s: %w", ErrRegistry, tag, err)
				}
				m.count(func(r *Result) { r.Tags++ })
				if err := m.readBack(ctx, tag, root.Digest); err != nil {
					return err
				}
			}
			target += ":" + j.place.tag
		}
		mp := Mapping{Kind: j.kind, Source: j.place.source, Target: target + "@" + root.Digest, Digest: root.Digest}
		if k, _ := bundle.KindOf(j.kind); k.Placement == bundle.PlaceWithSubject {
			mp.Subject = j.artifact.Subject
			mp.Source = attachmentSource(j.artifact)
		}
		m.res.Mappings = append(m.res.Mappings, mp)
	}
	return nil
}

func attachmentSource(a bundle.Artifact) string {
	switch {
	case a.Kind == bundle.KindSBOM:
		return "sbom " + a.Source
	case a.Tag != "":
		return "attachment " + a.Tag
	}
	return "referrer " + a.ArtifactType
}

// layoutNames returns the org.opencontainers.image.ref.name of each index
// entry, in order.
func layoutNames(index []byte) []string {
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	_ = jsonUnmarshal(index, &idx)
	out := make([]string, len(idx.Manifests))
	for i, e := range idx.Manifests {
		out[i] = e.Annotations[bundle.AnnotationRefName]
	}
	return out
}
