package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/internal/checked"
)

// PackOptions configures Pack. The zero value packs with default settings
// into Output, which is required.
type PackOptions struct {
	// Output is the path of the bundle to write. Required.
	Output string
	// Images resolves image references. Required when the spec lists images.
	Images ImageResolver
	// TempDir holds staged blobs; "" means the directory of Output.
	TempDir string
	// Jobs bounds concurrent fetches and hashes; <= 0 means 4.
	Jobs int
	// Level is the compression level; the zero value is LevelDefault.
	Level Level
	// Created is recorded as the bundle's creation time and used as every tar
	// entry's mtime; the zero value means now. Set it (e.g. from
	// SOURCE_DATE_EPOCH) for reproducible bundles.
	Created time.Time
	// Logger receives debug and info messages; nil discards them.
	Logger *slog.Logger
	// Progress receives progress for staging and writing; nil reports nothing.
	Progress Progress
	// Statement sets the signed sequence, expiry and channel.
	Statement StatementOptions
	// Signers sign the bundle while it is packed; none leaves it unsigned
	// (sign it later with Sign).
	Signers []Signer
	// ImageVerifier checks upstream image signatures for images that set
	// verify: in airlock.yaml. Required only then.
	ImageVerifier ImageVerifier
}

// ImageVerifier checks, at pack time, that an image is signed by a given key
// (images[].verify in airlock.yaml).
type ImageVerifier interface {
	VerifyImage(ctx context.Context, req ImageVerifyRequest) error
}

// ImageVerifyRequest is one image to check.
type ImageVerifyRequest struct {
	Ref         string       // as written in airlock.yaml
	Key         string       // path of the public key, resolved against airlock.yaml
	Subject     Descriptor   // the image's root at its source
	Attachments []Attachment // what the source has attached to it
	Source      ImageSource  // to fetch signature payloads
}

// PackResult describes a written bundle.
type PackResult struct {
	Path           string
	Manifest       *Manifest
	ManifestDigest string
	BytesIn        int64 // bytes of all unique blobs as stored (layers usually gzip-compressed already)
	BytesOut       int64 // size of the bundle file
	Duration       time.Duration
}

// packArtifact is one artifact on its way into the bundle.
type packArtifact struct {
	record  Artifact
	refName string
	g       *graph
	src     ImageSource          // images
	local   map[string]localBlob // models, files, SBOMs: body blobs by digest
	extra   map[string][]byte    // configs built here, by digest
}

// Pack resolves everything spec lists and writes one bundle to opts.Output.
// On error nothing is left at opts.Output and temporary files are removed.
func Pack(ctx context.Context, spec *Spec, opts PackOptions) (*PackResult, error) {
	start := time.Now()
	if opts.Output == "" {
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
	enc, err := newEncoders(opts.Level)
	if err != nil {
		return nil, err
	}
	defer enc.close()

	if err := checkOutput(opts.Output); err != nil {
		return nil, err
	}
	arts, err := collect(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	plan, err := planContent(spec, arts, created)
	if err != nil {
		return nil, err
	}
	if err := plan.sign(ctx, opts.Statement, opts.Signers); err != nil {
		return nil, err
	}

	tmpParent := opts.TempDir
	if tmpParent == "" {
		tmpParent = filepath.Dir(opts.Output)
	}
	tmp, err := os.MkdirTemp(tmpParent, ".airlock-pack-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w (choose another with --tmp-dir)", err)
	}
	defer os.RemoveAll(tmp)
	if err := stage(ctx, plan, tmp, opts); err != nil {
		return nil, err
	}
	size, err := writeBundle(ctx, opts.Output, plan, enc, opts.Progress)
	if err != nil {
		return nil, err
	}
	return &PackResult{
		Path:           opts.Output,
		Manifest:       plan.manifest,
		ManifestDigest: plan.manifestDigest,
		BytesIn:        plan.manifest.Totals.Bytes,
		BytesOut:       size,
		Duration:       time.Since(start),
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

// collect resolves images and hashes local sources, concurrently, in spec order.
func collect(ctx context.Context, spec *Spec, opts PackOptions) ([]*packArtifact, error) {
	nImages, nModels, nFiles := len(spec.Images), len(spec.Models), len(spec.Files)
	arts := make([]*packArtifact, nImages+nModels+nFiles+len(spec.SBOMs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	attached := make([][]*packArtifact, nImages)
	for i, im := range spec.Images {
		g.Go(func() (err error) {
			arts[i], err = packImage(gctx, spec, opts.Images, im)
			if err == nil {
				attached[i], err = packAttachments(gctx, spec, opts, im, arts[i])
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
			arts[nImages+nModels+i], err = packFile(gctx, spec, f, opts.Progress)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// SBOMs point at images, so they come after the images are resolved.
	roots := map[string]Descriptor{}
	for _, a := range arts[:nImages] {
		roots[a.record.Ref] = a.g.root
	}
	for i, s := range spec.SBOMs {
		a, err := packSBOM(ctx, spec, s, roots)
		if err != nil {
			return nil, err
		}
		arts[nImages+nModels+nFiles+i] = a
	}
	// Each image is followed by what is attached to it.
	out := make([]*packArtifact, 0, len(arts))
	for i, a := range arts {
		out = append(out, a)
		if i < nImages {
			out = append(out, attached[i]...)
		}
	}
	if len(out) > MaxArtifacts {
		return nil, fmt.Errorf("%w: %d artifacts with their attachments exceed %d", ErrSpec, len(out), MaxArtifacts)
	}
	return out, nil
}

// packAttachments carries the signatures, attestations and SBOMs attached
// to an image at its source, and enforces images[].verify.
func packAttachments(ctx context.Context, spec *Spec, opts PackOptions, im ImageSpec, img *packArtifact) ([]*packArtifact, error) {
	as, ok := img.src.(AttachmentSource)
	if !ok {
		if im.Verify != nil {
			return nil, &SourceError{Artifact: "image " + im.Ref, Err: errors.New("this kind of source carries no signatures to verify; remove verify: or pull from a registry or OCI layout")}
		}
		return nil, nil
	}
	sourceRoot, _ := img.src.Root()
	subjects := []Descriptor{sourceRoot}
	for _, m := range img.g.manifests {
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
		req := ImageVerifyRequest{Ref: im.Ref, Key: spec.resolve(im.Verify.Key), Subject: sourceRoot, Attachments: list, Source: img.src}
		if err := opts.ImageVerifier.VerifyImage(ctx, req); err != nil {
			return nil, &SourceError{Artifact: "image " + im.Ref, Err: err}
		}
	}
	inBundle := map[string]bool{}
	for _, m := range img.g.manifests {
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
			return nil, &SourceError{Artifact: where, Err: fmt.Errorf("%w: the source served bytes hashing to %s", ErrIntegrity, got)}
		}
		g, err := walk(at.Root, at.Raw, &sourceContent{ctx: ctx, src: img.src, ref: where}, nil)
		if err != nil {
			return nil, &SourceError{Artifact: where, Err: err}
		}
		a := &packArtifact{
			record: Artifact{Kind: KindAttachment, Subject: im.Ref, SubjectDigest: at.Subject.Digest, ArtifactType: at.ArtifactType, Tag: at.Tag},
			g:      g,
			src:    img.src,
		}
		if at.Tag != "" && repo != "" {
			a.refName = repo + ":" + at.Tag
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
	ctx context.Context
	src ImageSource
	ref string
}

func (s *sourceContent) manifest(d Descriptor) ([]byte, error) {
	b, err := s.src.Manifest(s.ctx, d)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("manifest %s: %w", d.Digest, err)}
	}
	if got := checked.Digest(b); got != d.Digest || int64(len(b)) != d.Size {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("%w: manifest %s: the source served %d bytes hashing to %s", ErrIntegrity, d.Digest, len(b), got)}
	}
	return b, nil
}

func (s *sourceContent) config(d Descriptor) ([]byte, error) {
	rc, err := s.src.Blob(s.ctx, d)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("config %s: %w", d.Digest, err)}
	}
	defer rc.Close()
	b, err := checked.ReadAll(rc, d.Digest, d.Size)
	if err != nil {
		return nil, &SourceError{Artifact: s.ref, Err: fmt.Errorf("%w: config %s: %w", ErrIntegrity, d.Digest, err)}
	}
	return b, nil
}

func packImage(ctx context.Context, spec *Spec, res ImageResolver, im ImageSpec) (*packArtifact, error) {
	src, err := res.Resolve(ctx, localRef(spec, im.Ref))
	if err != nil {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: err}
	}
	root, raw := src.Root()
	if got := checked.Digest(raw); got != root.Digest || int64(len(raw)) != root.Size {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: fmt.Errorf("%w: the source said %s but served bytes hashing to %s", ErrIntegrity, root.Digest, got)}
	}
	if !isIndex(root.MediaType) && !isManifest(root.MediaType) {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: fmt.Errorf("%w %q (airlock carries OCI and Docker v2 images and indexes)", ErrUnsupportedMediaType, root.MediaType)}
	}
	if len(raw) > MaxManifestSize {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: overLimit("manifest of %d bytes exceeds %d", len(raw), MaxManifestSize)}
	}
	g, err := walk(root, raw, &sourceContent{ctx: ctx, src: src, ref: "image " + im.Ref}, im.Platforms)
	if err != nil {
		return nil, &SourceError{Artifact: "image " + im.Ref, Err: err}
	}
	if isManifest(root.MediaType) && len(im.Platforms) > 0 {
		for _, want := range im.Platforms {
			p := parsePlatform(firstOr(g.platforms, ""))
			if !p.matches(want) {
				return nil, &SourceError{Artifact: "image " + im.Ref, Err: fmt.Errorf("single-platform image is %s, not %s; fix platforms: in airlock.yaml", firstOr(g.platforms, "of unknown platform"), want)}
			}
		}
	}
	return &packArtifact{
		record: Artifact{
			Kind:      KindImage,
			Ref:       im.Ref,
			Resolved:  resolvedName(im.Ref, src) + "@" + root.Digest,
			Platforms: g.platforms,
			Filtered:  g.root.Digest != root.Digest,
		},
		refName: imageRefName(im.Ref),
		g:       g,
		src:     src,
	}, nil
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

func parsePlatform(s string) *ociPlatform {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) < 2 {
		return nil
	}
	p := &ociPlatform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p
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

// mapContent serves manifests and configs built in memory.
type mapContent map[string][]byte

func (m mapContent) manifest(d Descriptor) ([]byte, error) { return m.get(d) }
func (m mapContent) config(d Descriptor) ([]byte, error)   { return m.get(d) }
func (m mapContent) get(d Descriptor) ([]byte, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, malformed("%s is referenced but missing", d.Digest)
	}
	return b, nil
}

// localArtifact builds the OCI manifest of a model, file or SBOM artifact.
func localArtifact(rec Artifact, artifactType string, config ocispec.Descriptor, configData []byte, layers []localBlob, annotations map[string]string, subject *ocispec.Descriptor) (*packArtifact, error) {
	m := ocispec.Manifest{
		MediaType:    MediaTypeOCIManifest,
		ArtifactType: artifactType,
		Config:       config,
		Subject:      subject,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	local := map[string]localBlob{}
	for _, l := range layers {
		ann := map[string]string{AnnotationTitle: l.rel}
		if rec.Kind == KindModel {
			ann[AnnotationFilepath] = l.rel
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: digestOf(l.Digest), Size: l.Size, Annotations: ann})
		local[l.Digest] = l
	}
	raw, err := marshalNoEscape(m)
	if err != nil {
		return nil, err
	}
	root := Descriptor{MediaType: MediaTypeOCIManifest, Digest: checked.Digest(raw), Size: int64(len(raw))}
	content := mapContent{root.Digest: raw, string(config.Digest): configData}
	g, err := walk(root, raw, content, nil)
	if err != nil {
		return nil, err
	}
	return &packArtifact{record: rec, g: g, local: local, extra: content}, nil
}

func emptyConfig() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: MediaTypeEmptyJSON, Digest: digestOf(checked.Digest(emptyJSON)), Size: int64(len(emptyJSON))}
}

func packModel(ctx context.Context, spec *Spec, m ModelSpec, jobs int, prog Progress) (*packArtifact, error) {
	artifact := "model " + m.Name
	files, err := modelFiles(artifact, spec.resolve(m.Source))
	if err != nil {
		return nil, err
	}
	diffIDs := make([]string, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i := range files {
		g.Go(func() error {
			d, stamp, err := hashFile(gctx, artifact, files[i].path, prog)
			if err != nil {
				return err
			}
			files[i].Digest, files[i].Size, files[i].stamp = d.Digest, d.Size, stamp
			files[i].MediaType = modelMediaType(files[i].rel)
			diffIDs[i] = d.Digest
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfg := modelConfig{Descriptor: modelDescriptor{Name: m.Name}, Config: struct{}{}, ModelFS: modelFS{Type: "layers", DiffIDs: diffIDs}}
	cfgRaw, err := marshalNoEscape(cfg)
	if err != nil {
		return nil, err
	}
	cd := ocispec.Descriptor{MediaType: MediaTypeModelConfig, Digest: digestOf(checked.Digest(cfgRaw)), Size: int64(len(cfgRaw))}
	rec := Artifact{Kind: KindModel, Name: m.Name, Source: m.Source, Target: m.Target}
	ann := map[string]string{AnnotationKind: KindModel, AnnotationTarget: m.Target, AnnotationTitle: m.Name}
	a, err := localArtifact(rec, ArtifactTypeModel, cd, cfgRaw, files, ann, nil)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	a.refName = "models/" + m.Name
	return a, nil
}

// modelConfig is the ModelPack model configuration (application/vnd.cncf.model.config.v1+json).
type modelConfig struct {
	Descriptor modelDescriptor `json:"descriptor"`
	Config     struct{}        `json:"config"`
	ModelFS    modelFS         `json:"modelfs"`
}

type modelDescriptor struct {
	Name string `json:"name"`
}

type modelFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

func packFile(ctx context.Context, spec *Spec, f FileSpec, prog Progress) (*packArtifact, error) {
	artifact := "file " + f.Source
	p := spec.resolve(f.Source)
	d, stamp, err := hashFile(ctx, artifact, p, prog)
	if err != nil {
		return nil, err
	}
	mode, err := fileMode(f, p)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	lb := localBlob{Descriptor: Descriptor{MediaType: MediaTypeOctetStream, Digest: d.Digest, Size: d.Size}, path: p, rel: path.Base(f.Target), stamp: stamp}
	rec := Artifact{Kind: KindFile, Source: f.Source, Target: f.Target, Mode: mode}
	ann := map[string]string{AnnotationKind: KindFile, AnnotationTarget: f.Target, AnnotationMode: mode}
	a, err := localArtifact(rec, ArtifactTypeFile, emptyConfig(), emptyJSON, []localBlob{lb}, ann, nil)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return a, nil
}

func packSBOM(ctx context.Context, spec *Spec, s SBOMSpec, roots map[string]Descriptor) (*packArtifact, error) {
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
	rec := Artifact{Kind: KindSBOM, Source: s.Source, Subject: s.Subject, SBOM: summary}
	var subject *ocispec.Descriptor
	if s.Subject != "" {
		root, ok := roots[s.Subject]
		if !ok {
			return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("subject %q is not an image of this release", s.Subject)}
		}
		subject = &ocispec.Descriptor{MediaType: root.MediaType, Digest: digestOf(root.Digest), Size: root.Size}
		rec.SubjectDigest = root.Digest
	}
	lb := localBlob{Descriptor: Descriptor{MediaType: mediaType, Digest: d.Digest, Size: d.Size}, path: p, rel: path.Base(filepath.ToSlash(s.Source)), stamp: stamp}
	ann := map[string]string{AnnotationKind: KindSBOM}
	a, err := localArtifact(rec, mediaType, emptyConfig(), emptyJSON, []localBlob{lb}, ann, subject)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return a, nil
}

// plan is the complete, ordered content of a bundle before it is written.
type plan struct {
	signatures     []byte // the DSSE envelope entry
	manifest       *Manifest
	manifestRaw    []byte
	manifestDigest string
	indexRaw       []byte
	head           []rawBlob  // manifests and configs, in order
	body           []bodyBlob // large blobs, in order
}

type bodyBlob struct {
	Descriptor
	open func(ctx context.Context) (readCloser, error)
	src  ImageSource // set when the blob must be staged
	ref  string      // artifact, for messages and progress
	// stamp, for a local file hashed earlier, proves it is unchanged so it
	// need not be hashed again; staged marks a blob this run already
	// verified into its own temporary directory. Every other blob is
	// hashed while it is written.
	stamp  *fileStamp
	staged bool
}

// planContent orders the head and body and builds index.json and bundle.json.
func planContent(spec *Spec, arts []*packArtifact, created time.Time) (*plan, error) {
	p := &plan{}
	idx := ocispec.Index{MediaType: MediaTypeOCIIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	inHead := map[string]bool{}
	inBody := map[string]bool{}
	refNames := map[string]string{}
	var totals Totals
	// Pass 1: every manifest and config goes to the head, once.
	for _, a := range arts {
		for _, rb := range append(append([]rawBlob{}, a.g.manifests...), a.g.configs...) {
			if !inHead[rb.Digest] {
				inHead[rb.Digest] = true
				p.head = append(p.head, rb)
				totals.Blobs++
				totals.Bytes += rb.Size
			}
		}
	}
	// Pass 2: index entries, per-artifact counts, and the body: every layer
	// that is not already in the head, once, in first-reference order.
	for _, a := range arts {
		root := a.g.root
		a.record.Descriptor = root
		ann := map[string]string{AnnotationKind: a.record.Kind}
		if a.refName != "" {
			if prev, dup := refNames[a.refName]; dup {
				return nil, fmt.Errorf("%w: %s and %s would share the layout name %q; rename one", ErrSpec, prev, describe(a.record), a.refName)
			}
			refNames[a.refName] = describe(a.record)
			ann[AnnotationRefName] = a.refName
		}
		desc := ocispec.Descriptor{MediaType: root.MediaType, Digest: digestOf(root.Digest), Size: root.Size, Annotations: ann}
		if a.record.Kind != KindImage {
			var m struct {
				ArtifactType string `json:"artifactType"`
			}
			_ = jsonUnmarshal(a.g.manifests[0].data, &m)
			desc.ArtifactType = m.ArtifactType
		}
		idx.Manifests = append(idx.Manifests, desc)

		seen := map[string]bool{}
		count := func(d Descriptor) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				a.record.Blobs++
				a.record.Bytes += d.Size
			}
		}
		for _, rb := range append(append([]rawBlob{}, a.g.manifests...), a.g.configs...) {
			count(rb.Descriptor)
		}
		for _, l := range a.g.layers {
			count(l)
			if inHead[l.Digest] || inBody[l.Digest] {
				continue
			}
			inBody[l.Digest] = true
			b := bodyBlob{Descriptor: l, ref: describe(a.record)}
			if a.src != nil {
				b.src = a.src
				b.open = sourceOpener(a.src, l)
			} else {
				lb, ok := a.local[l.Digest]
				if !ok {
					return nil, fmt.Errorf("internal error: local blob %s of %s has no source", l.Digest, describe(a.record))
				}
				b.open = fileOpener(lb.path)
				stamp := lb.stamp
				b.stamp = &stamp
			}
			p.body = append(p.body, b)
			totals.Blobs++
			totals.Bytes += l.Size
			totals.BodyBlobs++
			totals.BodyBytes += l.Size
		}
	}
	if n := 5 + len(p.head) + len(p.body); n > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries exceed the format's limit of %d; split the release", ErrSpec, n, MaxEntries)
	}
	var err error
	if p.indexRaw, err = marshalNoEscape(idx); err != nil {
		return nil, err
	}
	if len(p.indexRaw) > MaxManifestSize {
		return nil, fmt.Errorf("%w: index.json of %d bytes exceeds %d; split the release", ErrSpec, len(p.indexRaw), MaxManifestSize)
	}
	totals.Artifacts = len(arts)
	m := &Manifest{
		SchemaVersion: 1,
		MediaType:     MediaTypeBundleManifest,
		Name:          spec.Name,
		Version:       spec.Version,
		Created:       created,
		Root:          Descriptor{MediaType: MediaTypeOCIIndex, Digest: checked.Digest(p.indexRaw), Size: int64(len(p.indexRaw))},
		Totals:        totals,
	}
	for _, a := range arts {
		m.Artifacts = append(m.Artifacts, a.record)
	}
	if p.manifestRaw, err = marshalIndent(m); err != nil {
		return nil, err
	}
	if len(p.manifestRaw) > MaxBundleManifestSize {
		return nil, fmt.Errorf("%w: bundle manifest of %d bytes exceeds %d; split the release", ErrSpec, len(p.manifestRaw), MaxBundleManifestSize)
	}
	p.manifest = m
	p.manifestDigest = checked.Digest(p.manifestRaw)
	return p, nil
}

// sign builds the statement and its envelope, signed by signers.
func (p *plan) sign(ctx context.Context, o StatementOptions, signers []Signer) error {
	st, err := newStatement(p.manifest, p.manifestDigest, int64(len(p.manifestRaw)), o)
	if err != nil {
		return err
	}
	env, err := newEnvelope(st)
	if err != nil {
		return err
	}
	if err := env.sign(ctx, signers); err != nil {
		return err
	}
	p.signatures, err = marshalIndent(env)
	return err
}

// describe names an artifact for messages.
func describe(a Artifact) string {
	switch a.Kind {
	case KindImage:
		return "image " + a.Ref
	case KindModel:
		return "model " + a.Name
	case KindAttachment:
		what := a.Tag
		if what == "" {
			what = a.ArtifactType
		}
		return fmt.Sprintf("attachment %s of %s", what, a.Subject)
	}
	return a.Kind + " " + a.Source
}

// stage copies blobs from expensive sources to tmp, verifying each, so that
// writing the bundle reads only local disk.
func stage(ctx context.Context, p *plan, tmp string, opts PackOptions) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	var mu sync.Mutex
	for i := range p.body {
		b := &p.body[i]
		if b.src == nil || !b.src.Staged() {
			continue
		}
		g.Go(func() error {
			dst := filepath.Join(tmp, strings.TrimPrefix(b.Digest, "sha256:"))
			if err := stageBlob(gctx, b, dst, opts.Progress); err != nil {
				return err
			}
			mu.Lock()
			b.open = fileOpener(dst)
			b.staged = true
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}
