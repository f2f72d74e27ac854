package bundle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/diskspace"
	"github.com/airlock-dev/airlock/internal/errclass"
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
	framesRaw      []byte      // airlock/frames.json, once the body is written
	head           []Blob      // manifests and configs, in order
	body           []*BodyBlob // large blobs, in order

	version     int // format version of the head; 0 is FormatVersion (tests write v1)
	stmtOpts    StatementOptions
	volumeCount int
	signers     []Signer
	signCalled  bool
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

// Volumes returns the number of volumes written (0 for one file).
func (w *Writer) Volumes() int { return w.volumeCount }

// ManifestDigest returns the digest of the planned bundle.json.
func (w *Writer) ManifestDigest() string { return w.manifestDigest }

// Body returns the body blobs in write order. A caller may replace a blob's
// Open and Verified (to read a staged copy) before WriteFile.
func (w *Writer) Body() []*BodyBlob { return w.body }

// Sign records the statement options and the signers. The statement is
// built and signed when the bundle is written, because in format v2 it
// covers the frame index, which exists only once the body is compressed.
// The options are checked now, so a wrong channel, expiry or sequence fails
// before anything is pulled. With no signers the bundle is written unsigned
// (sign it later with the package's Sign).
func (w *Writer) Sign(ctx context.Context, o StatementOptions, signers []Signer) error {
	if len(signers) > MaxSignatures {
		return errclass.Mark(errclass.Usage, overLimit("%d signers exceed %d", len(signers), MaxSignatures))
	}
	if _, err := newStatement(w.manifest, w.manifestDigest, int64(len(w.manifestRaw)), o); err != nil {
		// The options the caller gave are wrong (channel, expiry,
		// sequence): a usage error, not a rejected bundle.
		return errclass.Mark(errclass.Usage, err)
	}
	w.stmtOpts, w.signers, w.signCalled = o, signers, true
	return nil
}

// signNow builds the statement over the final bundle.json and signs it.
func (w *Writer) signNow(ctx context.Context) error {
	st, err := newStatement(w.manifest, w.manifestDigest, int64(len(w.manifestRaw)), w.stmtOpts)
	if err != nil {
		return errclass.Mark(errclass.Usage, err)
	}
	env, err := newEnvelope(st)
	if err != nil {
		return err
	}
	if err := env.sign(ctx, w.signers); err != nil {
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
	// (blobs are consumed in order), for progress by artifact.
	Written func(b *BodyBlob)
	// VolumeSize, when > 0, makes WriteFile write volumes OUT.001,
	// OUT.002, ... of at most VolumeSize bytes each instead of OUT.
	VolumeSize int64
	// FrameSize overrides the frame size (a multiple of 512 between
	// MinFrameSize and MaxFrameSize); 0 lets the writer choose.
	FrameSize int64
	// TempDir is where WriteStream keeps the compressed body until the
	// head is known; "" is the system's temporary directory.
	TempDir string
}

// VolumeName is the file name of volume n of a bundle written to out.
func VolumeName(out string, n int) string { return fmt.Sprintf("%s.%03d", out, n) }

// WriteFile writes the bundle to out (or, with VolumeSize, to its volumes):
// the body frames first, after room for the head, then the frame index,
// the statement and its signatures, then the head and padding frames into
// the room left at the start. Everything goes to temporary files next to
// out; the head is re-read before they are renamed into place. On error
// nothing is left. It returns the bundle's total size. Sign must have
// been called.
func (w *Writer) WriteFile(ctx context.Context, out string, opts WriteOptions) (int64, error) {
	if !w.signCalled {
		return 0, errors.New("bundle writer: Sign was not called")
	}
	l, room, err := w.prepare(opts)
	if err != nil {
		return 0, err
	}
	sink := &fileSink{out: out, volumeSize: opts.VolumeSize, room: room}
	defer sink.abort()
	if opts.VolumeSize > 0 {
		if least := room + maxCompressedFrame(l.FrameSize); opts.VolumeSize < least {
			return 0, errclass.Mark(errclass.Usage, fmt.Errorf("volume size %d is too small: the first volume needs room for the head and one frame, at least %d bytes", opts.VolumeSize, least))
		}
	}
	if err := sink.open(); err != nil {
		return 0, fmt.Errorf("create %s: %w", out, err)
	}
	n, err := w.compose(ctx, l, room, sink, opts)
	if err != nil {
		return 0, diskspace.Check(err, "writing the bundle "+out, out, w.manifest.Totals.BodyBytes+HeadPadding)
	}
	// Re-read what was produced before it replaces anything.
	again, err := ReadHeadFile(sink.vols[0].TempName())
	if err != nil {
		// The writer's own output failed its reader: not a judged input.
		return 0, errclass.Mark(errclass.CouldNotRun, fmt.Errorf("re-reading the new bundle: %w", err))
	}
	if again.ManifestDigest != w.manifestDigest {
		return 0, fmt.Errorf("re-reading the new bundle: manifest %s, expected %s", again.ManifestDigest, w.manifestDigest)
	}
	if err := sink.commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// WriteStream writes the bundle to out (a pipe, standard output), byte for
// byte what WriteFile would write to one file. The head comes first in the
// file but is known only after the body, so the compressed body is kept in
// a temporary file (opts.TempDir) and sent after the head. Volumes need
// WriteFile. Sign must have been called.
func (w *Writer) WriteStream(ctx context.Context, out io.Writer, opts WriteOptions) (int64, error) {
	if !w.signCalled {
		return 0, errors.New("bundle writer: Sign was not called")
	}
	if opts.VolumeSize > 0 {
		return 0, errclass.Mark(errclass.Usage, errors.New("volumes are written to files, not to a stream"))
	}
	l, room, err := w.prepare(opts)
	if err != nil {
		return 0, err
	}
	spool, err := os.CreateTemp(opts.TempDir, ".airlock-body-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	sink := &streamSink{spool: spool, bw: bufio.NewWriterSize(spool, 1<<20)}
	n, err := w.compose(ctx, l, room, sink, opts)
	if err != nil {
		return 0, diskspace.Check(err, "keeping the compressed body in "+spool.Name(), spool.Name(), w.manifest.Totals.BodyBytes)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	if _, err := bw.Write(sink.region); err != nil {
		return 0, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := io.Copy(bw, spool); err != nil {
		return 0, err
	}
	return n, bw.Flush()
}

// prepare lays out the body and works out the room the head will need.
func (w *Writer) prepare(opts WriteOptions) (*bodyLayout, int64, error) {
	l, err := planBody(w.bodyDescriptors(), w.manifest.Created, opts.FrameSize)
	if err != nil {
		return nil, 0, err
	}
	room, err := w.headRoom(l, opts)
	if err != nil {
		return nil, 0, err
	}
	return l, room, nil
}

// headRoom is the number of bytes reserved at the start of the file for the
// head frame and the padding frame: the compressed size of a stand-in head
// (a frame index of the right shape with stand-in numbers and digests, an
// unsigned statement), plus room for each signer's signature, plus
// HeadPadding for signatures added later in place. It depends only on the
// bundle's content, so the bytes written stay reproducible.
func (w *Writer) headRoom(l *bodyLayout, opts WriteOptions) (int64, error) {
	fi := w.frameIndex(l, placeholderFrames(l), nil)
	if opts.VolumeSize > 0 {
		bound := l.Total + int64(len(l.Frames))*64
		n := int(bound/opts.VolumeSize) + 2
		for i := range n {
			fi.Volumes = append(fi.Volumes, VolumeRecord{Number: i + 1, Offset: bound, Size: opts.VolumeSize, SHA256: placeholderHex(fmt.Sprint("volume", i))})
		}
	}
	stand := *w
	if err := stand.finish(fi); err != nil {
		return 0, err
	}
	st, err := newStatement(stand.manifest, stand.manifestDigest, int64(len(stand.manifestRaw)), w.stmtOpts)
	if err != nil {
		return 0, errclass.Mark(errclass.Usage, err)
	}
	env, err := newEnvelope(st)
	if err != nil {
		return 0, err
	}
	if stand.signatures, err = marshalIndent(env); err != nil {
		return 0, err
	}
	head, err := headBytes(&stand)
	if err != nil {
		return 0, err
	}
	enc, err := newEncoders(opts.Level)
	if err != nil {
		return 0, err
	}
	defer enc.close()
	return int64(len(enc.head.EncodeAll(head, nil))) + int64(len(w.signers))*signatureRoom + HeadPadding, nil
}

// signatureRoom is the head room reserved per signer at pack time.
const signatureRoom = 2048

func placeholderFrames(l *bodyLayout) []FrameRecord {
	out := make([]FrameRecord, len(l.Frames))
	var off int64
	for i, f := range l.Frames {
		f.Offset, f.Size = off, maxCompressedFrame(f.UncompressedSize)
		f.SHA256 = placeholderHex(fmt.Sprint("frame", i))
		off += f.Size
		out[i] = f
	}
	return out
}

// frameIndex builds the frame index from compressed frames and volumes.
func (w *Writer) frameIndex(l *bodyLayout, frames []FrameRecord, vols []VolumeRecord) *FrameIndex {
	fi := &FrameIndex{MediaType: MediaTypeFrameIndex, FrameSize: l.FrameSize, UncompressedSize: l.Total, Frames: frames, Volumes: vols}
	for _, f := range frames {
		fi.CompressedSize += f.Size
	}
	return fi
}

// finish puts the frame index into the head and bundle.json.
func (w *Writer) finish(fi *FrameIndex) error {
	raw, err := marshalIndent(fi)
	if err != nil {
		return err
	}
	if len(raw) > MaxFrameIndexSize {
		return overLimit("frame index of %d bytes exceeds %d; split the release", len(raw), MaxFrameIndexSize)
	}
	m := *w.manifest
	m.Frames = &Descriptor{MediaType: MediaTypeFrameIndex, Digest: checked.Digest(raw), Size: int64(len(raw))}
	mraw, err := marshalIndent(&m)
	if err != nil {
		return err
	}
	if len(mraw) > MaxBundleManifestSize {
		return overLimit("bundle manifest of %d bytes exceeds %d; split the release", len(mraw), MaxBundleManifestSize)
	}
	w.framesRaw, w.manifest, w.manifestRaw, w.manifestDigest = raw, &m, mraw, checked.Digest(mraw)
	return nil
}

// compose writes the body frames to sink, then builds the frame index,
// bundle.json, the signed statement and the head, and gives sink the head
// region (head frame and padding frame). It returns the bundle's size.
func (w *Writer) compose(ctx context.Context, l *bodyLayout, room int64, sink headSink, opts WriteOptions) (int64, error) {
	frames, err := w.encodeBody(ctx, l, sink, opts)
	if err != nil {
		return 0, err
	}
	vols, err := sink.volumes()
	if err != nil {
		return 0, err
	}
	fi := w.frameIndex(l, frames, vols)
	w.volumeCount = len(vols)
	if err := w.finish(fi); err != nil {
		return 0, err
	}
	if err := w.signNow(ctx); err != nil {
		return 0, err
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
	region := room
	if int64(len(frame))+8 > room {
		// The signatures took more room than reserved: the body moves.
		region = int64(len(frame)) + HeadPadding
	}
	buf := make([]byte, region)
	copy(buf, frame)
	copy(buf[len(frame):], paddingFrame(int(region)-len(frame)))
	if err := sink.head(buf, room); err != nil {
		return 0, err
	}
	return region + fi.CompressedSize, nil
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
