package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/keys"
)

// Options configures Pack. The zero value packs with default settings
// into Output, which is required.
type Options struct {
	// Output is the path of the bundle to write. Required unless Stream is set.
	Output string
	// Stream, when set, receives the bundle as it is written (a pipe,
	// standard output) instead of Output; staging then uses TempDir or the
	// system temporary directory. A failure part-way leaves a partial
	// bundle on Stream that every reader refuses.
	Stream io.Writer
	// Images resolves image references. Required when the spec lists images.
	Images ImageResolver
	// TempDir holds pulled blobs spooled ahead of the writer; "" means the
	// directory of Output (the system temporary directory with Stream).
	TempDir string
	// PrefetchMemory bounds the bytes of pulled blobs held in memory ahead
	// of the writer; what a pull brings beyond it, when the writer does not
	// free memory within five seconds, is spooled to TempDir. 0 means
	// DefaultPrefetchMemory (32 MiB); < 0 means none (every blob pulled
	// ahead is spooled).
	PrefetchMemory int64
	// prefetchPause overrides how long a pull waits for memory before it
	// spools (tests); 0 means five seconds.
	prefetchPause time.Duration
	// Jobs bounds concurrent resolves, hashes of local files, and pulls
	// ahead of the writer; <= 0 means 4.
	Jobs int
	// Level is the compression level; the zero value is bundle.LevelDefault.
	Level bundle.Level
	// VolumeSize, when > 0, writes the bundle as volumes OUTPUT.001,
	// OUTPUT.002, ... of at most VolumeSize bytes each (not with Stream).
	VolumeSize int64
	// FrameSize sets the body's zstd frame size (docs/format.md §18); 0
	// lets the writer choose.
	FrameSize int64
	// Created is recorded as the bundle's creation time and used as every tar
	// entry's mtime; the zero value means now. Set it (e.g. from
	// SOURCE_DATE_EPOCH) for reproducible bundles.
	Created time.Time
	// Logger receives debug and info messages; nil discards them.
	Logger *slog.Logger
	// Progress receives progress for staging and writing; nil reports nothing.
	Progress bundle.Progress
	// Statement sets the signed sequence, expiry and channel.
	Statement bundle.StatementOptions
	// Signers sign the bundle while it is packed; none leaves it unsigned
	// (sign it later with Sign).
	Signers []bundle.Signer
	// ImageVerifier checks upstream image signatures for images that set
	// verify: in airlock.yaml. Required only then.
	ImageVerifier ImageVerifier
	// Charts fetches charts from classic chart repositories (charts[].repo).
	// Required only then.
	Charts ChartRepository
	// Platforms ("os/arch[/variant]"), when not empty, applies to every
	// image without its own platforms: in airlock.yaml, in place of the
	// file's top-level platforms: (`airlock pack --platform`).
	Platforms []string
}

// ImageVerifier checks, at pack time, that an image is signed by a given key
// (images[].verify in airlock.yaml).
type ImageVerifier interface {
	VerifyImage(ctx context.Context, req ImageVerifyRequest) error
}

// ImageVerifyRequest is one image to check.
type ImageVerifyRequest struct {
	Ref         string            // as written in airlock.yaml
	Key         string            // path of the public key, resolved against airlock.yaml; "" for keyless
	Keyless     *KeylessRequest   // the identity a keyless signature must name; nil for a key
	Subject     bundle.Descriptor // the image's root at its source
	Attachments []Attachment      // what the source has attached to it
	Source      ImageSource       // to fetch signature payloads
}

// KeylessRequest is images[].verify's keyless identity, with the trusted
// root resolved against airlock.yaml.
type KeylessRequest struct {
	Issuer, Subject, SubjectRegExp string
	TrustedRoot                    string // path of trusted_root.json
	TrustedRootSHA256              string // its pinned digest
}

// Result describes a written bundle.
type Result struct {
	Path           string
	Manifest       *bundle.Manifest
	ManifestDigest string
	BytesIn        int64 // bytes of all unique blobs as stored (layers usually gzip-compressed already)
	BytesOut       int64 // size of the bundle file (all volumes together)
	Duration       time.Duration
	// Volumes lists the volume files in order when VolumeSize was set.
	Volumes []string
	// Pulled says how the blobs of expensive sources (registries,
	// docker-archive files) went into the bundle.
	Pulled PullStats
}

// PullStats describes the blobs pulled ahead of the bundle writer.
type PullStats struct {
	Blobs           int   // blobs pulled
	SpooledBytes    int64 // bytes that waited in a spool file under TempDir
	PeakMemoryBytes int64 // most bytes held in memory at once
}

// packArtifact is one artifact on its way into the bundle.
type packArtifact struct {
	bundle.Item
	src ImageSource // images and their attachments
}

// Pack resolves everything spec lists and writes one bundle to opts.Output.
// On error nothing is left at opts.Output and temporary files are removed.
func Pack(ctx context.Context, spec *Spec, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Output == "" && opts.Stream == nil {
		return nil, errors.New("no output path")
	}
	if len(spec.Images) > 0 && opts.Images == nil {
		return nil, errors.New("the release lists images but no image resolver was given")
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Second)
	if opts.Stream == nil {
		if err := checkOutput(opts.Output); err != nil {
			return nil, err
		}
	}
	charts, eff, err := collectCharts(ctx, spec, opts, created)
	if err != nil {
		return nil, err
	}
	arts, err := collect(ctx, eff, opts, charts)
	if err != nil {
		return nil, err
	}
	items := make([]bundle.Item, len(arts))
	for i, a := range arts {
		items[i] = a.Item
	}
	w, err := bundle.NewWriter(spec.Name, spec.Version, created, items)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if err := w.Sign(ctx, opts.Statement, opts.Signers); err != nil {
		return nil, err
	}

	tmpParent := opts.TempDir
	switch {
	case tmpParent != "":
	case opts.Stream != nil:
		tmpParent = os.TempDir()
	default:
		tmpParent = filepath.Dir(opts.Output)
	}
	tmp, err := os.MkdirTemp(tmpParent, tempPrefix)
	if err != nil {
		return nil, &TempDirError{Dir: tmpParent, Err: err}
	}
	defer os.RemoveAll(tmp)
	defer lockTemp(tmp)()
	out := opts.Output
	if opts.Stream != nil {
		out = ""
	}
	removeStale(tmpParent, out, opts.Logger)
	// Blobs of expensive sources stream from their source into the writer,
	// pulled ahead in write order; the writer checks each digest once.
	fetched := fetchedSources(arts)
	pf, wctx := newPrefetcher(ctx, w.Body(), func(b *bundle.BodyBlob) bool {
		_, ok := fetched[b.Digest]
		return ok && !b.Verified
	}, prefetchOptions{jobs: opts.Jobs, memory: prefetchMemory(opts.PrefetchMemory), dir: tmp, pause: opts.prefetchPause})
	opts.Progress = newPackProgress(opts.Progress, w.Manifest(), w.Body())
	wo := bundle.WriteOptions{Level: opts.Level, Progress: opts.Progress, VolumeSize: opts.VolumeSize, FrameSize: opts.FrameSize, TempDir: tmp}
	if pp, ok := opts.Progress.(*packProgress); ok {
		wo.Written = pp.written
	}
	var size int64
	if opts.Stream != nil {
		size, err = w.WriteStream(wctx, opts.Stream, wo)
	} else {
		size, err = w.WriteFile(wctx, opts.Output, wo)
	}
	cause := context.Cause(wctx)
	stats := pf.close()
	opts.Logger.Debug("pulled blobs streamed into the bundle", "blobs", stats.Blobs, "spooled_bytes", stats.SpooledBytes, "peak_memory_bytes", stats.PeakMemoryBytes)
	if err != nil {
		if ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // a pull ahead of the writer failed: that is the error
		}
		var be *bundle.BlobError
		var se *SourceError
		switch {
		case errors.As(err, &se):
			return nil, err
		case errors.As(err, &be):
			// The label is the artifact's; the SourceError names it once.
			inner := fmt.Errorf("blob %s: %w", be.Digest, be.Err)
			if errors.Is(err, checked.ErrSizeMismatch) || errors.Is(err, checked.ErrDigestMismatch) {
				inner = fmt.Errorf("%w (the source served other bytes than the digest its manifest names: a corrupt or changed source)", inner)
			}
			return nil, &SourceError{Artifact: be.Label, Err: inner}
		}
		return nil, err
	}
	m := w.Manifest()
	var vols []string
	if m.Frames != nil && opts.VolumeSize > 0 {
		for n := 1; n <= w.Volumes(); n++ {
			vols = append(vols, bundle.VolumeName(opts.Output, n))
		}
	}
	return &Result{
		Volumes:        vols,
		Path:           opts.Output,
		Manifest:       m,
		ManifestDigest: w.ManifestDigest(),
		BytesIn:        m.Totals.Bytes,
		BytesOut:       size,
		Duration:       time.Since(start),
		Pulled:         stats,
	}, nil
}

// checkOutput fails early, before anything is pulled, when the bundle could
// not be written: a missing directory, or an output path that is a directory.
func checkOutput(out string) error {
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("output %s: %w (create the directory first)", out, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("output %s: %s is not a directory", out, dir)
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("output %s is a directory; give a file name such as %s", out, filepath.Join(out, "release.airlock"))
	}
	return nil
}

// collect resolves images and hashes local sources, concurrently, in spec
// order; charts (already collected) go after the files, before the SBOMs.
func collect(ctx context.Context, spec *Spec, opts Options, charts []*packArtifact) ([]*packArtifact, error) {
	nImages, nModels, nFiles := len(spec.Images), len(spec.Models), len(spec.Files)
	arts := make([]*packArtifact, nImages+nModels+nFiles+len(spec.SBOMs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	attached := make([][]*packArtifact, nImages)
	for i, im := range spec.Images {
		g.Go(func() (err error) {
			arts[i], err = packImage(gctx, spec, opts.Images, im)
			if err == nil {
				attached[i], err = packAttachments(gctx, spec, opts, im, im.Ref, arts[i])
			}
			return err
		})
	}
	for i, m := range spec.Models {
		g.Go(func() (err error) {
			arts[nImages+i], err = packModel(gctx, spec, m, opts.Jobs, opts.Progress)
			return err
		})
	}
	for i, f := range spec.Files {
		g.Go(func() (err error) {
			arts[nImages+nModels+i], err = packFile(gctx, spec, f, opts.Jobs, opts.Progress)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// SBOMs point at images, so they come after the images are resolved.
	roots := map[string]bundle.Descriptor{}
	for _, a := range arts[:nImages] {
		roots[a.Record.Ref] = a.Graph.Root
	}
	for i, s := range spec.SBOMs {
		a, err := packSBOM(ctx, spec, s, roots)
		if err != nil {
			return nil, err
		}
		arts[nImages+nModels+nFiles+i] = a
	}
	// Each image is followed by what is attached to it.
	out := make([]*packArtifact, 0, len(arts)+len(charts))
	for i, a := range arts {
		if i == nImages+nModels+nFiles {
			out = append(out, charts...)
		}
		out = append(out, a)
		if i < nImages {
			out = append(out, attached[i]...)
		}
	}
	if len(spec.SBOMs) == 0 {
		out = append(out, charts...)
	}
	trustedRoots, err := packTrustedRoots(ctx, spec)
	if err != nil {
		return nil, err
	}
	out = append(out, trustedRoots...)
	if len(out) > bundle.MaxArtifacts {
		return nil, fmt.Errorf("%w: %d artifacts with their attachments exceed %d", ErrSpec, len(out), bundle.MaxArtifacts)
	}
	return out, nil
}

// packAttachments carries the signatures, attestations and SBOMs attached
// to an image (or a chart from a registry) at its source, and enforces
// images[].verify. subject is what the attachments name as their subject:
// the image's ref, or the chart's source.
func packAttachments(ctx context.Context, spec *Spec, opts Options, im ImageSpec, subject string, img *packArtifact) ([]*packArtifact, error) {
	as, ok := img.src.(AttachmentSource)
	if !ok {
		if im.Verify != nil {
			return nil, &SourceError{Artifact: "image " + im.Ref, Err: errors.New("this kind of source carries no signatures to verify; remove verify: or pull from a registry or OCI layout")}
		}
		return nil, nil
	}
	sourceRoot, _ := img.src.Root()
	subjects := []bundle.Descriptor{sourceRoot}
	for _, m := range img.Graph.Manifests {
		if m.Digest != sourceRoot.Digest {
			subjects = append(subjects, m.Descriptor)
		}
	}
	list, err := as.Attachments(ctx, subjects)
	if err != nil {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: fmt.Errorf("looking for signatures and referrers: %w", err)}
	}
	if im.Verify != nil {
		if opts.ImageVerifier == nil {
			return nil, &SourceError{Artifact: "image " + im.Ref, Err: errors.New("verify: is set but no image verifier was given")}
		}
		req := ImageVerifyRequest{Ref: im.Ref, Subject: sourceRoot, Attachments: list, Source: img.src}
		if im.Verify.Keyless() {
			req.Keyless = &KeylessRequest{Issuer: im.Verify.Issuer, Subject: im.Verify.Subject, SubjectRegExp: im.Verify.SubjectRegExp,
				TrustedRoot: spec.resolve(im.Verify.TrustedRoot), TrustedRootSHA256: im.Verify.TrustedRootSHA256}
		} else {
			req.Key = spec.resolve(im.Verify.Key)
		}
		if err := opts.ImageVerifier.VerifyImage(ctx, req); err != nil {
			return nil, &SourceError{Artifact: "image " + im.Ref, Err: err}
		}
		if subject == im.Ref && img.Record.Kind == bundle.KindImage {
			check := im.Verify.describe()
			if pk, err := keys.LoadPublic(req.Key); err == nil && req.Key != "" {
				check += " (" + pk.Fingerprint + ")"
			}
			img.Record.PackCheck = check
		}
	}
	inBundle := map[string]bool{}
	for _, m := range img.Graph.Manifests {
		inBundle[m.Digest] = true
	}
	repo := ""
	if r, err := name.ParseReference(im.Ref); err == nil && !isLocalRef(im.Ref) {
		repo = r.Context().Name()
	}
	var out []*packArtifact
	for _, at := range list {
		if !inBundle[at.Subject.Digest] {
			continue // attached to a manifest the platform filter dropped
		}
		where := fmt.Sprintf("image %s: attachment %s", im.Ref, at.Root.Digest)
		if got := checked.Digest(at.Raw); got != at.Root.Digest || int64(len(at.Raw)) != at.Root.Size {
			return nil, &SourceError{Artifact: where, Err: fmt.Errorf("%w: the source served bytes hashing to %s", bundle.ErrIntegrity, got)}
		}
		g, err := bundle.Walk(ctx, at.Root, at.Raw, &sourceContent{src: img.src, ref: where}, nil)
		if err != nil {
			return nil, &SourceError{Artifact: where, Err: err}
		}
		a := imageItem(img.src, g, bundle.Artifact{Kind: bundle.KindAttachment, Subject: subject, SubjectDigest: at.Subject.Digest, ArtifactType: at.ArtifactType, Tag: at.Tag})
		if at.Tag != "" && repo != "" {
			a.RefName = repo + ":" + at.Tag
		}
		out = append(out, a)
	}
	return out, nil
}

func isLocalRef(ref string) bool {
	return strings.HasPrefix(ref, "oci:") || strings.HasPrefix(ref, "docker-archive:")
}

// sourceContent adapts an ImageSource to the walker, checking every byte.
type sourceContent struct {
	src ImageSource
	ref string
}

func (s *sourceContent) Manifest(ctx context.Context, d bundle.Descriptor) ([]byte, error) {
	b, err := s.src.Manifest(ctx, d)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("manifest %s: %w", d.Digest, err)}
	}
	if got := checked.Digest(b); got != d.Digest || int64(len(b)) != d.Size {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("%w: manifest %s: the source served %d bytes hashing to %s", bundle.ErrIntegrity, d.Digest, len(b), got)}
	}
	return b, nil
}

func (s *sourceContent) Config(ctx context.Context, d bundle.Descriptor) ([]byte, error) {
	rc, err := s.src.Blob(ctx, d)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("config %s: %w", d.Digest, err)}
	}
	defer rc.Close()
	b, err := checked.ReadAll(rc, d.Digest, d.Size)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("%w: config %s: %w", bundle.ErrIntegrity, d.Digest, err)}
	}
	return b, nil
}

func packImage(ctx context.Context, spec *Spec, res ImageResolver, im ImageSpec) (*packArtifact, error) {
	what := "image " + im.Ref
	src, err := res.Resolve(ctx, localRef(spec, im.Ref))
	if err != nil {
		return nil, &SourceError{Artifact: what, Err: err}
	}
	root, raw := src.Root()
	if got := checked.Digest(raw); got != root.Digest || int64(len(raw)) != root.Size {
		return nil, &SourceError{Artifact: what, Err: fmt.Errorf("%w: the source said %s but served bytes hashing to %s", bundle.ErrIntegrity, root.Digest, got)}
	}
	if !bundle.IsIndex(root.MediaType) && !bundle.IsManifest(root.MediaType) {
		return nil, &SourceError{Artifact: what, Err: fmt.Errorf("%w %q (airlock carries OCI and Docker v2 images and indexes)", bundle.ErrUnsupportedMediaType, root.MediaType)}
	}
	if len(raw) > bundle.MaxManifestSize {
		return nil, &SourceError{Artifact: what, Err: fmt.Errorf("%w: manifest of %d bytes exceeds %d", bundle.ErrLimit, len(raw), bundle.MaxManifestSize)}
	}
	g, err := bundle.Walk(ctx, root, raw, &sourceContent{src: src, ref: what}, im.Platforms)
	if err != nil {
		return nil, &SourceError{Artifact: what, Err: err}
	}
	if bundle.IsManifest(root.MediaType) && len(im.Platforms) > 0 {
		for _, want := range im.Platforms {
			if !bundle.PlatformMatches(firstOr(g.Platforms, ""), want) {
				return nil, &SourceError{Artifact: what, Err: fmt.Errorf("single-platform image is %s, not %s; fix platforms: in airlock.yaml", firstOr(g.Platforms, "of unknown platform"), want)}
			}
		}
	}
	a := imageItem(src, g, bundle.Artifact{
		Kind:      bundle.KindImage,
		Ref:       im.Ref,
		Resolved:  resolvedName(im.Ref, src) + "@" + root.Digest,
		Platforms: g.Platforms,
		Filtered:  g.Root.Digest != root.Digest,
	})
	a.RefName = imageRefName(im.Ref)
	return a, nil
}

// imageItem is an artifact whose layers come from an image source and are
// checked while they are written.
func imageItem(src ImageSource, g *bundle.Graph, rec bundle.Artifact) *packArtifact {
	return &packArtifact{
		Item: bundle.Item{Record: rec, Graph: g, Open: src.Blob},
		src:  src,
	}
}

// localRef makes the path of an oci: or docker-archive: reference relative to
// the directory of airlock.yaml; registry references pass unchanged.
func localRef(spec *Spec, ref string) string {
	for _, t := range []string{"oci:", "docker-archive:"} {
		if rest, ok := strings.CutPrefix(ref, t); ok {
			if filepath.IsAbs(rest) {
				return ref
			}
			return t + spec.resolve(rest)
		}
	}
	return ref
}

// resolvedName is the repository part of Artifact.Resolved: the source's
// repository for registry images, and the reference as written without its
// tag or digest for local sources (so bundles do not depend on where the
// packing machine keeps its files).
func resolvedName(ref string, src ImageSource) string {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		p, _, _, _ := ParseOCIRef(ref)
		return "oci:" + p
	case strings.HasPrefix(ref, "docker-archive:"):
		return ref
	}
	return src.Repository()
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// imageRefName is the org.opencontainers.image.ref.name of an image in the
// layout: the reference as written for registry images, and
// "<directory or file base>:<tag>" for local sources.
func imageRefName(ref string) string {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		p, tag, dig, _ := ParseOCIRef(ref)
		if strings.ContainsAny(tag, ":/") {
			return tag // already a full name such as demo/api:1.0
		}
		base := path.Base(filepath.ToSlash(filepath.Clean(p)))
		if dig != "" {
			return base + "@" + dig
		}
		if tag == "" {
			tag = "latest"
		}
		return base + ":" + tag
	case strings.HasPrefix(ref, "docker-archive:"):
		base := path.Base(filepath.ToSlash(strings.TrimPrefix(ref, "docker-archive:")))
		return strings.TrimSuffix(base, ".tar") + ":latest"
	}
	return ref
}

func packModel(ctx context.Context, spec *Spec, m ModelSpec, jobs int, prog bundle.Progress) (*packArtifact, error) {
	artifact := "model " + m.Name
	files, err := modelFiles(artifact, spec.resolve(m.Source))
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i := range files {
		g.Go(func() error {
			d, stamp, err := hashFile(gctx, artifact, files[i].path, prog)
			if err != nil {
				return err
			}
			files[i].Digest, files[i].Size, files[i].stamp = d.Digest, d.Size, stamp
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	layers := make([]bundle.LocalLayer, len(files))
	for i, f := range files {
		layers[i] = f.LocalLayer
	}
	it, err := bundle.NewModelItem(m.Name, m.Source, m.Target, layers)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return localItem(it, files), nil
}

func packFile(ctx context.Context, spec *Spec, f FileSpec, jobs int, prog bundle.Progress) (*packArtifact, error) {
	artifact := "file " + f.Source
	p := spec.resolve(f.Source)
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		return packDir(ctx, f, p, jobs, prog)
	}
	if len(f.Include) > 0 || len(f.Exclude) > 0 || f.FollowSymlinks {
		return nil, &SourceError{Artifact: artifact, Err: errDirOptions}
	}
	if strings.HasSuffix(f.Target, "/") {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("target %q ends with / but the source is a file; name the file to install, e.g. %s%s", f.Target, f.Target, filepath.Base(p))}
	}
	d, stamp, err := hashFile(ctx, artifact, p, prog)
	if err != nil {
		return nil, err
	}
	mode, err := fileMode(f, p)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	lb := localBlob{LocalLayer: bundle.LocalLayer{Descriptor: bundle.Descriptor{MediaType: bundle.MediaTypeOctetStream, Digest: d.Digest, Size: d.Size}, Path: path.Base(f.Target)}, path: p, stamp: stamp}
	it, err := bundle.NewFileItem(f.Source, f.Target, mode, lb.LocalLayer)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return localItem(it, []localBlob{lb}), nil
}

func packSBOM(ctx context.Context, spec *Spec, s SBOMSpec, roots map[string]bundle.Descriptor) (*packArtifact, error) {
	artifact := "sbom " + s.Source
	p := spec.resolve(s.Source)
	summary, mediaType, err := summarizeSBOM(artifact, p)
	if err != nil {
		return nil, err
	}
	d, stamp, err := hashFile(ctx, artifact, p, nil)
	if err != nil {
		return nil, err
	}
	var subject *bundle.SBOMSubject
	if s.Subject != "" {
		root, ok := roots[s.Subject]
		if !ok {
			return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("subject %q is not an image of this release", s.Subject)}
		}
		subject = &bundle.SBOMSubject{Ref: s.Subject, Root: root}
	}
	lb := localBlob{LocalLayer: bundle.LocalLayer{Descriptor: bundle.Descriptor{MediaType: mediaType, Digest: d.Digest, Size: d.Size}, Path: path.Base(filepath.ToSlash(s.Source))}, path: p, stamp: stamp}
	it, err := bundle.NewSBOMItem(s.Source, summary, lb.LocalLayer, subject)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return localItem(it, []localBlob{lb}), nil
}

// localItem attaches the files of a model, file or SBOM artifact: each is
// opened only if it is still the file that was hashed (its stamp), so the
// writer need not hash it again.
func localItem(it *bundle.Item, files []localBlob) *packArtifact {
	byDigest := make(map[string]localBlob, len(files))
	for _, f := range files {
		byDigest[f.Digest] = f
	}
	label := it.Record.Describe()
	it.Verified = true
	it.Open = func(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
		lb, ok := byDigest[d.Digest]
		if !ok {
			return nil, fmt.Errorf("internal error: local blob %s of %s has no source", d.Digest, label)
		}
		return openStamped(lb.path, lb.stamp)
	}
	return &packArtifact{Item: *it}
}

// openStamped opens p and checks it is still the file that was hashed.
func openStamped(p string, want fileStamp) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	now, err := stampOf(f)
	if err != nil || now != want {
		f.Close()
		return nil, fmt.Errorf("%s changed after it was hashed; pack again when it is stable", p)
	}
	return f, nil
}

// fetchedSources maps each body blob digest to the image source it comes
// from when that source is expensive to read (Staged): such blobs are
// pulled ahead of the writer.
func fetchedSources(arts []*packArtifact) map[string]ImageSource {
	out := map[string]ImageSource{}
	for _, a := range arts {
		if a.src == nil || !a.src.Staged() {
			continue
		}
		for _, l := range a.Graph.Layers {
			if _, ok := out[l.Digest]; !ok {
				out[l.Digest] = a.src
			}
		}
	}
	return out
}

// prefetchMemory maps Options.PrefetchMemory to the prefetcher's budget.
func prefetchMemory(n int64) int64 {
	switch {
	case n == 0:
		return DefaultPrefetchMemory
	case n < 0:
		return -1
	}
	return n
}

// packTrustedRoots carries each distinct trusted root images[].verify named
// (in spec order), so an isolated-side policy can pin it by digest. Each
// must still hash to its pin.
func packTrustedRoots(ctx context.Context, spec *Spec) ([]*packArtifact, error) {
	var out []*packArtifact
	seen := map[string]bool{}
	for _, im := range spec.Images {
		if !im.Verify.Keyless() || seen[im.Verify.TrustedRootSHA256] {
			continue
		}
		seen[im.Verify.TrustedRootSHA256] = true
		artifact := "trusted root " + im.Verify.TrustedRoot
		p := spec.resolve(im.Verify.TrustedRoot)
		d, stamp, err := hashFile(ctx, artifact, p, nil)
		if err != nil {
			return nil, err
		}
		if d.Digest != im.Verify.TrustedRootSHA256 {
			return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("its digest is %s, images[].verify pins %s", d.Digest, im.Verify.TrustedRootSHA256)}
		}
		lb := localBlob{LocalLayer: bundle.LocalLayer{Descriptor: bundle.Descriptor{MediaType: bundle.MediaTypeTrustedRoot, Digest: d.Digest, Size: d.Size}, Path: path.Base(filepath.ToSlash(im.Verify.TrustedRoot))}, path: p, stamp: stamp}
		it, err := bundle.NewTrustedRootItem(im.Verify.TrustedRoot, lb.LocalLayer)
		if err != nil {
			return nil, &SourceError{Artifact: artifact, Err: err}
		}
		out = append(out, localItem(it, []localBlob{lb}))
	}
	return out, nil
}
