package mirror

import (
	"bytes"
	"context"
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
	// Transport carries requests; nil means registryhttp.New's defaults.
	Transport http.RoundTripper
	// Retry is the backoff for requests the registry answers with 5xx, 429
	// or a conflict with a concurrent writer; the zero value means 5
	// tries, waiting about 1, 2, 4 and 8 s between them.
	Retry remote.Backoff
	// RetryWindow is how long a registry that refuses or resets
	// connections (a restart, a failover) is retried, with growing waits
	// of up to 10 s, before the run fails; <= 0 means DefaultRetryWindow
	// (2 minutes).
	RetryWindow time.Duration
	// OnRetry, when set, is told about every wait for an unreachable
	// registry (the library prints nothing itself).
	OnRetry func(RetryEvent)
	// OnRestart, when set, is told about every upload of a large blob that
	// an earlier run or attempt had begun and that the registry would not
	// continue (the blob is then sent again from its start), once per
	// such upload.
	OnRestart func(RestartEvent)
	// ChunkSize is the size of the chunks in which blobs larger than
	// ChunkThreshold (64 MiB) are uploaded, each one a point a later run
	// can resume from; <= 0 means 32 MiB.
	ChunkSize int64
	// AllowDowngrade accepts a bundle whose sequence is lower than the
	// highest mirrored into the target prefix (the site state), when the
	// policy rule for its name also sets allowDowngrade: true. Default
	// false: such a bundle is refused.
	AllowDowngrade bool
	// TempDir holds this run's directory (airlock-mirror-<random>), where
	// verified blobs wait for their upload (a few at a time) and upload
	// sessions are kept; "" means the system temporary directory. Run
	// directories of runs that ended are removed.
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
	// State is the site state artifact the run checked and updated
	// (REGISTRY/PREFIX/airlock-state:NAME); "" when the run did not get
	// that far.
	State string `json:"state,omitempty"`
	// Downgrade is true when the bundle's sequence is below the highest
	// mirrored before (allowed by AllowDowngrade and the policy).
	Downgrade bool    `json:"downgrade,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// BlobCounts counts blob transfers, per destination repository.
type BlobCounts struct {
	Pushed      int   `json:"pushed"`
	Mounted     int   `json:"mounted"`
	Skipped     int   `json:"skipped"` // already present (and confirmed served)
	BytesPushed int64 `json:"bytesPushed"`
	// Resumed counts uploads continued from where an earlier run left
	// them; BytesResumed the bytes that therefore were not sent again.
	Resumed      int   `json:"resumed,omitempty"`
	BytesResumed int64 `json:"bytesResumed,omitempty"`
	// Restarted counts uploads begun earlier that the registry would not
	// continue, so that the blob was sent again from its start;
	// BytesRestarted the bytes of them that had been sent before.
	Restarted      int   `json:"restarted,omitempty"`
	BytesRestarted int64 `json:"bytesRestarted,omitempty"`
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
	opts  MirrorOptions
	ropts []remote.Option
	c     *regClient
	run   *runDir
	spool string // the run directory: blobs waiting for their upload
	id    bundleID
	now   time.Time
	// downgrade is true when the site state allowed a lower sequence.
	downgrade bool
	// claimed holds the intent tags listed when this run wrote its own
	// (claimSite), claimedHighest the highest sequence then known (at
	// least this bundle's): checkSuperseded looks for what came after.
	claimed        map[string]bool
	claimedHighest uint64

	// ownLive is set by checkSite when an earlier run of this bundle left
	// its intent live (claimed, maybe tagged, never recorded): that claim
	// may be what holds older bundles back, so this run never withdraws
	// the intent, which is the same tag.
	ownLive bool

	jobs    []*job
	repos   map[string][]name.Repository // blob digest -> repositories needing it
	edges   map[string][2]byte           // blob digest -> its first and last byte, for later checks
	uploads *errgroup.Group
	uctx    context.Context
	mu      sync.Mutex
	res     *Result
	pushed  atomic.Int64
	// usedReferrersTag is set once this run read or wrote a referrers tag
	// (a registry without the referrers API).
	usedReferrersTag atomic.Bool
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
	if opts.RetryWindow <= 0 {
		opts.RetryWindow = DefaultRetryWindow
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = defaultChunkSize
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	run, removed, err := openRunDir(opts.TempDir)
	if err != nil {
		return nil, err
	}
	for _, p := range removed {
		opts.Logger.Info("removed the temporary directory of an earlier run that ended", "path", p)
	}
	ctx, cancel := context.WithCancel(ctx)
	g, uctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	m := &mirrorer{opts: opts, run: run, edges: map[string][2]byte{}, spool: run.path, now: now, repos: map[string][]name.Repository{}, uploads: g, uctx: uctx,
		res: &Result{Target: strings.TrimSuffix(opts.To.Registry.Name()+"/"+opts.To.Prefix, "/"), Mappings: []Mapping{}}}
	m.c = &regClient{
		reg: opts.To.Registry, keys: opts.Keychain, base: opts.Transport, ua: opts.UserAgent, log: opts.Logger,
		backoff: opts.Retry, window: opts.RetryWindow, onRetry: opts.OnRetry, tr: map[string]http.RoundTripper{},
	}
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
	// Right before the tags move: this bundle's intent goes into the site
	// state (so that an older bundle is refused from now on, even if this
	// run ends half way), and the state is read again (another operator
	// may have claimed a newer bundle meanwhile).
	if err := m.claimSite(ctx); err != nil {
		return finish(siteRejection(err))
	}
	// From here on any failure may leave some of this run's tags over a
	// newer bundle's: explainAfterClaim says so when the state shows one.
	if err := m.pushTags(ctx); err != nil {
		return finish(m.explainAfterClaim(ctx, err))
	}
	if m.opts.SiteSigner != nil {
		if err := m.signImages(ctx); err != nil {
			return finish(m.explainAfterClaim(ctx, err))
		}
	}
	if err := m.checkServed(ctx); err != nil {
		return finish(m.explainAfterClaim(ctx, err))
	}
	// A newer bundle claimed while this run's tags moved may have had its
	// tags replaced by them: say so, and do not record this run as done.
	if err := m.checkSuperseded(ctx); err != nil {
		return finish(siteRejection(err))
	}
	if err := m.recordSite(ctx); err != nil {
		return finish(m.explainAfterClaim(ctx, err))
	}
	m.pruneIntents(ctx)
	m.res.Downgrade = m.downgrade
	return finish(nil)
}

// explainAfterClaim: when a run fails after its claim (a registry error,
// a tag moved by another writer) and the site state shows a newer bundle
// claimed since, that is the error to report: this run's tags may have
// replaced that bundle's, which is then to be mirrored again. The check
// is best effort (a cancelled run cannot make it; its rerun says so
// instead, see checkSite); err stays the cause otherwise.
func (m *mirrorer) explainAfterClaim(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	if serr := m.checkSuperseded(ctx); serr != nil {
		var ce *ConcurrentMirrorError
		if errors.As(serr, &ce) {
			return siteRejection(fmt.Errorf("%w (this run had also failed: %v)", serr, err))
		}
	}
	return err
}

// siteRejection makes a refusal by the site state a rejection of the
// bundle (verify.IsFailure); other errors stay as they are.
func siteRejection(err error) error {
	var fe *FreshnessError
	var ce *ConcurrentMirrorError
	if errors.As(err, &fe) || errors.As(err, &ce) {
		return &verify.Failure{Stage: "site state", Err: err}
	}
	return err
}

// Close stops pending uploads and removes the run directory (keeping only
// unfinished upload sessions, for the next run).
func (p *Pusher) Close() {
	p.cancel()
	p.m.uploads.Wait()
	p.m.run.close()
}

func (m *mirrorer) remoteOpts(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, m.ropts...)
}

// plan runs once trust is decided: it places every artifact and starts
// uploading the configs, which the head already holds.
func (m *mirrorer) plan(ctx context.Context, h *bundle.Head) error {
	m.id = bundleID{name: h.Manifest.Name, version: h.Manifest.Version, root: h.Manifest.Root.Digest}
	if h.Statement != nil {
		m.id.sequence = h.Statement.Predicate.Sequence
	}
	if repo, err := m.stateRepo(); err == nil {
		m.res.State = repo.String() + ":" + m.id.name
	}
	// Freshness first: nothing is pushed for a bundle the site state refuses.
	if err := m.checkSite(ctx); err != nil {
		return siteRejection(err)
	}
	locs, err := h.Locations(bundle.LocateOptions{KeepRegistryHost: m.opts.KeepRegistryHost, ImagesOnly: m.opts.ImagesOnly})
	if err != nil {
		var le *bundle.LocationError
		if errors.As(err, &le) {
			return fmt.Errorf("%w; use --keep-registry-host or another prefix", err)
		}
		return err
	}
	for _, loc := range locs {
		i, a := loc.Artifact, h.Manifest.Artifacts[loc.Artifact]
		kind := a.Kind
		pl, err := m.opts.To.place(loc)
		if err != nil {
			return err
		}
		if sr, err := m.stateRepo(); err == nil && pl.repo.String() == sr.String() {
			return fmt.Errorf("%s would be placed in %s, the repository of the site state; use another prefix or --keep-registry-host", pl.source, sr)
		}
		c, err := h.Content(i)
		if err != nil {
			return err
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

// uploadBlob puts one verified blob into every repository that needs it:
// uploaded once, then mounted across repositories; skipped where the
// registry serves it already (a ranged GET of its last byte, compared with
// ours, and its size: a registry's "present" is not taken on its word).
func (m *mirrorer) uploadBlob(ctx context.Context, d bundle.Descriptor, open opener) error {
	u := m.meterUpload(d)
	defer u.done()
	open = u.wrap(open)
	local, err := m.keepEdges(d, open)
	if err != nil {
		return err
	}
	var from *name.Repository
	for _, repo := range m.repos[d.Digest] {
		if err := ctx.Err(); err != nil {
			return err
		}
		present, err := m.blobServedRetry(ctx, repo, d, local)
		if err != nil {
			return fmt.Errorf("%w: check blob %s in %s: %w", ErrRegistry, d.Digest, repo, err)
		}
		if present {
			m.count(func(r *Result) { r.Blobs.Skipped++ })
			if from == nil {
				from = &repo
			}
			continue
		}
		n, mounted, err := m.pushBlob(ctx, repo, d, open, from)
		if err != nil {
			return err
		}
		if mounted {
			// A mount is the registry's word too: confirm it.
			ok, err := m.blobServedRetry(ctx, repo, d, local)
			if err != nil {
				return fmt.Errorf("%w: check blob %s in %s: %w", ErrRegistry, d.Digest, repo, err)
			}
			if !ok {
				if n, _, err = m.pushBlob(ctx, repo, d, open, nil); err != nil {
					return err
				}
				mounted = false
			}
		}
		m.count(func(r *Result) {
			if mounted {
				r.Blobs.Mounted++
			} else {
				r.Blobs.Pushed++
				r.Blobs.BytesPushed += n
			}
		})
		if from == nil {
			from = &repo
		}
	}
	return nil
}

func (m *mirrorer) count(f func(*Result)) {
	m.mu.Lock()
	f(m.res)
	m.mu.Unlock()
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
// and reads each back by digest to re-hash it. A manifest with a subject
// is also listed among its subject's referrers (by the registry's
// referrers API, or else in the sha256-<hex> tag index).
func (m *mirrorer) pushManifests(ctx context.Context) error {
	return m.eachRepository(ctx, func(ctx context.Context, j *job) error {
		for _, mf := range j.content.Manifests {
			if err := m.ensureManifest(ctx, j.place.repo, mf); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachRepository calls f for every job, --jobs repositories at a time:
// repositories are independent, and within one the jobs keep their order
// (children before parents, and a manifest two artifacts share is pushed
// once and then found). It returns the first error.
func (m *mirrorer) eachRepository(ctx context.Context, f func(context.Context, *job) error) error {
	var order []string
	byRepo := map[string][]int{}
	for i, j := range m.jobs {
		r := j.place.repo.String()
		if _, ok := byRepo[r]; !ok {
			order = append(order, r)
		}
		byRepo[r] = append(byRepo[r], i)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(m.opts.Jobs, 1))
	for _, r := range order {
		g.Go(func() error {
			for _, i := range byRepo[r] {
				if err := f(gctx, m.jobs[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (m *mirrorer) ensureManifest(ctx context.Context, repo name.Repository, mf bundle.Blob) error {
	served, err := m.manifestServed(ctx, repo, mf)
	if err != nil {
		return err
	}
	indexed := false
	if served {
		m.count(func(r *Result) { r.Manifests.Skipped++ })
	} else {
		if indexed, err = m.putManifest(ctx, repo, mf.Digest, mf); err != nil {
			return err
		}
		m.count(func(r *Result) { r.Manifests.Pushed++ })
	}
	return m.ensureListed(ctx, repo, mf, indexed, false)
}

// ensureListed makes sure a manifest with a subject is among its
// subject's referrers. While manifests are pushed (confirm false) a
// referrers tag is written once, without waiting; checkServed (confirm
// true) reads every one again after one wait for the whole run, and only a
// tag a concurrent writer changed goes through listReferrer's rounds.
func (m *mirrorer) ensureListed(ctx context.Context, repo name.Repository, mf bundle.Blob, indexed, confirm bool) error {
	if indexed || subjectOfManifest(mf.Data) == "" {
		return nil
	}
	listed, err := m.listedAsReferrer(ctx, repo, mf)
	if err != nil {
		return fmt.Errorf("%w: referrers of %s: %w", ErrRegistry, mf.Digest, err)
	}
	if listed {
		return nil
	}
	return m.listReferrer(ctx, repo, mf, confirm)
}

// pushTags sets the tags last, after every manifest is in place, and
// records where each artifact now lives.
func (m *mirrorer) pushTags(ctx context.Context) error {
	err := m.eachRepository(ctx, func(ctx context.Context, j *job) error {
		if j.place.tag == "" {
			return nil
		}
		root := j.content.Manifests[len(j.content.Manifests)-1]
		repo, tagName := j.place.repo, j.place.tag
		tag := repo.Tag(tagName)
		var raw []byte
		var found bool
		err := m.c.retry(ctx, "read "+tag.String(), func(ctx context.Context) error {
			var err error
			raw, _, found, err = m.getManifest(ctx, repo, tagName)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: read %s: %w", ErrRegistry, tag, err)
		}
		switch {
		case found && sha256Digest(raw) == root.Digest:
		case m.siteSignedCopy(ctx, tag, root):
			// An earlier run added the site signature to this upstream
			// signature manifest; putting it back would drop the site's.
		default:
			if _, err := m.putManifest(ctx, repo, tagName, root); err != nil {
				return err
			}
			m.count(func(r *Result) { r.Tags++ })
			if err := m.readBackRef(ctx, repo, tagName, root.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range m.jobs {
		root := j.content.Manifests[len(j.content.Manifests)-1]
		target := j.place.repo.String()
		if j.place.tag != "" {
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
