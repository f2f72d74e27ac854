package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/diskspace"
	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/internal/meter"
)

// Item is one artifact to write: its record, its content tree, and where
// the bytes of its layers come from.
type Item struct {
	// Record holds the kind and the kind's fields (Ref, Name, Source,
	// Target, Mode, Subject...). The writer fills its Descriptor, Blobs and
	// Bytes.
	Record Artifact
	// RefName is the org.opencontainers.image.ref.name of the artifact in
	// the layout's index.json; "" gives it none.
	RefName string
	// Graph is the artifact's content: manifests and configs go to the head,
	// layers to the body.
	Graph *Graph
	// Open opens a layer of Graph. Required when a layer is not in the head.
	Open func(ctx context.Context, d Descriptor) (io.ReadCloser, error)
	// Verified says Open yields bytes this run has already checked against
	// their digest (a local file hashed earlier and checked unchanged by
	// Open); the writer then copies exactly Size bytes without hashing them
	// again. Otherwise every byte is hashed and checked while it is written.
	Verified bool
}

// BodyBlob is one blob of the body, in write order.
type BodyBlob struct {
	Descriptor
	// Label names the artifact the blob belongs to, for messages and progress.
	Label string
	// Open opens the blob's bytes. A caller may replace it (with a staged
	// copy, say) before WriteFile.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Verified: Open yields bytes already checked in this run (see Item.Verified).
	Verified bool
}

// Writer lays out and writes one bundle deterministically: the same items,
// creation time and signatures give the same bytes. NewWriter plans the
// layout; Sign adds the signed statement; WriteFile writes it.
type Writer struct {
	signatures     []byte // the DSSE envelope entry
	manifest       *Manifest
	manifestRaw    []byte
	manifestDigest string
	indexRaw       []byte
	head           []Blob      // manifests and configs, in order
	body           []*BodyBlob // large blobs, in order
}

// NewWriter plans a bundle named name at version, created at created, that
// carries items in order: every manifest and config once in the head, every
// other layer once in the body in first-reference order, index.json and
// bundle.json built from the records. It reads no blob.
func NewWriter(name, version string, created time.Time, items []Item) (*Writer, error) {
	created = created.UTC().Truncate(time.Second)
	if len(items) > MaxArtifacts {
		return nil, overLimit("%d artifacts exceed %d; split the release", len(items), MaxArtifacts)
	}
	w := &Writer{}
	idx := ocispec.Index{MediaType: MediaTypeOCIIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	inHead := map[string]bool{}
	inBody := map[string]bool{}
	refNames := map[string]string{}
	var totals Totals
	// Pass 1: every manifest and config goes to the head, once.
	for i := range items {
		if items[i].Graph == nil || len(items[i].Graph.Manifests) == 0 {
			return nil, fmt.Errorf("item %d (%s) has no content", i, items[i].Record.Describe())
		}
		for _, rb := range append(append([]Blob{}, items[i].Graph.Manifests...), items[i].Graph.Configs...) {
			if !inHead[rb.Digest] {
				inHead[rb.Digest] = true
				w.head = append(w.head, rb)
				totals.Blobs++
				totals.Bytes += rb.Size
			}
		}
	}
	// Pass 2: index entries, per-artifact counts, and the body: every layer
	// that is not already in the head, once, in first-reference order.
	records := make([]Artifact, len(items))
	for i := range items {
		it := &items[i]
		rec := it.Record
		root := it.Graph.Root
		rec.Descriptor = root
		rec.Blobs, rec.Bytes = 0, 0
		label := rec.Describe()
		ann := map[string]string{AnnotationKind: rec.Kind}
		if it.RefName != "" {
			if prev, dup := refNames[it.RefName]; dup {
				return nil, &LayoutError{Name: it.RefName, First: prev, Second: label}
			}
			refNames[it.RefName] = label
			ann[AnnotationRefName] = it.RefName
		}
		desc := ocispec.Descriptor{MediaType: root.MediaType, Digest: digestOf(root.Digest), Size: root.Size, Annotations: ann}
		if rec.Kind != KindImage {
			var m struct {
				ArtifactType string `json:"artifactType"`
			}
			_ = jsonUnmarshal(it.Graph.Manifests[0].Data, &m)
			desc.ArtifactType = m.ArtifactType
		}
		idx.Manifests = append(idx.Manifests, desc)

		seen := map[string]bool{}
		count := func(d Descriptor) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				rec.Blobs++
				rec.Bytes += d.Size
			}
		}
		for _, rb := range append(append([]Blob{}, it.Graph.Manifests...), it.Graph.Configs...) {
			count(rb.Descriptor)
		}
		for _, l := range it.Graph.Layers {
			count(l)
			if inHead[l.Digest] || inBody[l.Digest] {
				continue
			}
			inBody[l.Digest] = true
			if it.Open == nil {
				return nil, fmt.Errorf("%s: layer %s has no opener", label, l.Digest)
			}
			open, d := it.Open, l
			w.body = append(w.body, &BodyBlob{
				Descriptor: l,
				Label:      label,
				Open:       func(ctx context.Context) (io.ReadCloser, error) { return open(ctx, d) },
				Verified:   it.Verified,
			})
			totals.Blobs++
			totals.Bytes += l.Size
			totals.BodyBlobs++
			totals.BodyBytes += l.Size
		}
		records[i] = rec
	}
	// Then a second name for each entry oras cannot address (layoutnames.go).
	idx.Manifests = append(idx.Manifests, layoutAliases(idx.Manifests)...)
	if n := 5 + len(w.head) + len(w.body); n > MaxEntries {
		return nil, overLimit("%d entries exceed the format's limit of %d; split the release", n, MaxEntries)
	}
	var err error
	if w.indexRaw, err = marshalNoEscape(idx); err != nil {
		return nil, err
	}
	if len(w.indexRaw) > MaxManifestSize {
		return nil, overLimit("index.json of %d bytes exceeds %d; split the release", len(w.indexRaw), MaxManifestSize)
	}
	totals.Artifacts = len(items)
	m := &Manifest{
		SchemaVersion: 1,
		MediaType:     MediaTypeBundleManifest,
		Name:          name,
		Version:       version,
		Created:       created,
		Root:          Descriptor{MediaType: MediaTypeOCIIndex, Digest: checked.Digest(w.indexRaw), Size: int64(len(w.indexRaw))},
		Artifacts:     records,
		Totals:        totals,
	}
	if w.manifestRaw, err = marshalIndent(m); err != nil {
		return nil, err
	}
	if len(w.manifestRaw) > MaxBundleManifestSize {
		return nil, overLimit("bundle manifest of %d bytes exceeds %d; split the release", len(w.manifestRaw), MaxBundleManifestSize)
	}
	w.manifest = m
	w.manifestDigest = checked.Digest(w.manifestRaw)
	return w, nil
}

// Manifest returns the planned bundle.json.
func (w *Writer) Manifest() *Manifest { return w.manifest }

// ManifestDigest returns the digest of the planned bundle.json.
func (w *Writer) ManifestDigest() string { return w.manifestDigest }

// Body returns the body blobs in write order. A caller may replace a blob's
// Open and Verified (to read a staged copy) before WriteFile.
func (w *Writer) Body() []*BodyBlob { return w.body }

// Sign builds the signed statement from o and signs it with signers; with
// no signers the bundle is written unsigned (sign it later with Sign).
func (w *Writer) Sign(ctx context.Context, o StatementOptions, signers []Signer) error {
	if len(signers) > MaxSignatures {
		return errclass.Mark(errclass.Usage, overLimit("%d signers exceed %d", len(signers), MaxSignatures))
	}
	st, err := newStatement(w.manifest, w.manifestDigest, int64(len(w.manifestRaw)), o)
	if err != nil {
		// The options the caller gave are wrong (channel, expiry,
		// sequence): a usage error, not a rejected bundle.
		return errclass.Mark(errclass.Usage, err)
	}
	env, err := newEnvelope(st)
	if err != nil {
		return err
	}
	if err := env.sign(ctx, signers); err != nil {
		return err
	}
	w.signatures, err = marshalIndent(env)
	return err
}

// WriteOptions configures WriteFile; the zero value works.
type WriteOptions struct {
	// Level is the compression level; the zero value is LevelDefault.
	Level Level
	// Progress receives the bytes written; nil reports nothing.
	Progress Progress
	// Written, when set, is called after each body blob is in the bundle
	// (writing is sequential), for progress by artifact.
	Written func(b *BodyBlob)
}

// WriteFile writes the head frame, the padding frame and the body frame to
// a temporary file next to out, re-reads the head it wrote, and renames the
// file to out. On error nothing is left at out. It returns the size of the
// bundle. Sign must have been called.
func (w *Writer) WriteFile(ctx context.Context, out string, opts WriteOptions) (int64, error) {
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", out, err)
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(atomicfile.NewWriteback(f.File), 1<<20)
	n, err := w.write(ctx, bw, "write "+out, opts)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The bundle is compressed: its uncompressed size is the most it needs.
		return 0, diskspace.Check(err, "writing the bundle "+out, out, w.manifest.Totals.BodyBytes+HeadPadding)
	}
	// Re-read what was produced before it replaces anything.
	again, err := ReadHeadFile(f.TempName())
	if err != nil {
		// The writer's own output failed its reader: not a judged input.
		return 0, errclass.Mark(errclass.CouldNotRun, fmt.Errorf("re-reading the new bundle: %w", err))
	}
	if again.ManifestDigest != w.manifestDigest {
		return 0, fmt.Errorf("re-reading the new bundle: manifest %s, expected %s", again.ManifestDigest, w.manifestDigest)
	}
	if err := f.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// WriteStream writes the bundle to out as it is made (a pipe, standard
// output), byte for byte what WriteFile would write. The head is decoded
// and checked before it is sent; the body cannot be re-read, and a failure
// part-way leaves out with a partial bundle that every reader refuses (it
// has no end). Sign must have been called.
func (w *Writer) WriteStream(ctx context.Context, out io.Writer, opts WriteOptions) (int64, error) {
	bw := bufio.NewWriterSize(out, 1<<20)
	n, err := w.write(ctx, bw, "write to stream", opts)
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// write lays out the head frame, the padding frame and the body frame on out.
func (w *Writer) write(ctx context.Context, out io.Writer, label string, opts WriteOptions) (int64, error) {
	if w.signatures == nil {
		return 0, errors.New("bundle writer: Sign was not called")
	}
	enc, err := newEncoders(opts.Level)
	if err != nil {
		return 0, err
	}
	defer enc.close()
	head, err := headBytes(w)
	if err != nil {
		return 0, err
	}
	frame := enc.head.EncodeAll(head, nil)
	if err := checkOwnHead(frame, w.manifestDigest); err != nil {
		return 0, errclass.Mark(errclass.CouldNotRun, fmt.Errorf("re-reading the new head: %w", err))
	}
	cw := &meter.Writer{W: out}
	if _, err := cw.Write(frame); err != nil {
		return cw.N, err
	}
	if _, err := cw.Write(paddingFrame(HeadPadding)); err != nil {
		return cw.N, err
	}
	zw, err := enc.body(cw)
	if err != nil {
		return cw.N, err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	prog := opts.Progress
	const writeID = "write"
	if prog != nil {
		prog.Start(writeID, label, w.manifest.Totals.BodyBytes)
		defer prog.Done(writeID)
	}
	for _, b := range w.body {
		if err := writeBlob(ctx, tw, b, w.manifest.Created, prog, writeID); err != nil {
			return cw.N, err
		}
		if opts.Written != nil {
			opts.Written(b)
		}
	}
	if err := tw.Close(); err != nil {
		return cw.N, err
	}
	if err := zw.Close(); err != nil {
		return cw.N, err
	}
	return cw.N, nil
}

// checkOwnHead decodes an encoded head frame and parses it as a reader
// would, expecting the bundle manifest digest want.
func checkOwnHead(frame []byte, want string) error {
	dec, err := zstd.NewReader(bytes.NewReader(frame), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxHeadSize), zstd.WithDecoderMaxMemory(MaxHeadSize))
	if err != nil {
		return err
	}
	defer dec.Close()
	raw, err := io.ReadAll(io.LimitReader(dec, MaxHeadSize+1))
	if err != nil {
		return err
	}
	h, err := parseHead(raw)
	if err != nil {
		return err
	}
	if h.ManifestDigest != want {
		return fmt.Errorf("manifest %s, expected %s", h.ManifestDigest, want)
	}
	return nil
}
