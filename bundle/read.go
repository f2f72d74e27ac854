package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// MaxSignaturesSize bounds the signatures entry.
const MaxSignaturesSize = 1 << 20

// Head is the verified-by-structure metadata of a bundle. Every byte in it was
// checked against the digests that chain up to Manifest.Root; whether the
// root itself is trusted is for package verify to decide.
type Head struct {
	Marker         FormatMarker
	Manifest       Manifest
	ManifestBytes  []byte // exact bytes of airlock/bundle.json
	ManifestDigest string
	IndexBytes     []byte // exact bytes of index.json
	// Signatures is the raw signatures entry: the DSSE envelope.
	Signatures []byte
	// Envelope is the parsed signatures entry; its signatures are not yet
	// checked (package verify does that against a policy).
	Envelope *Envelope
	// Statement is the envelope's statement, checked to describe this head.
	Statement *Statement
	// Blobs holds the manifests and configs stored in the head, by digest.
	Blobs map[string][]byte
	// Body lists the blobs the body must contain, each exactly once.
	Body []Descriptor
	// Files lists every file the file and model artifacts install, derived
	// from their manifests and checked (safe, unique after case folding and
	// Unicode NFC normalisation), in artifact and layer order.
	Files []InstallFile
	// HeadSize is the compressed size of the head frame in bytes.
	HeadSize int64
	// Entries counts the tar entries in the head.
	Entries int
	// PaddingSize is the size of the zero padding frame after the head frame.
	PaddingSize int64
	// Frames is the frame index (format v2; nil in v1), FramesBytes its
	// exact bytes.
	Frames      *FrameIndex
	FramesBytes []byte

	layout *bodyLayout // the v2 body layout the frame index was checked against

	raw     []headEntry     // the head's entries in order
	rawHead []byte          // the head's tar bytes, for signing to change one entry in
	roots   []*rootManifest // by artifact: its root manifest as decoded by Walk, or nil (rootmanifest.go)
	index   headIndex       // index.json as decoded, while the rest of the head is read
}

// headIndex is index.json as checkTree reads it; err is why it could not
// be read.
type headIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []indexEntry    `json:"manifests"`
	Annotations   json.RawMessage `json:"annotations"`
	err           error
}

type headEntry struct {
	name       string
	data       []byte
	start, end int       // the entry in rawHead: from its header to the end of its padding
	mtime      time.Time // its header's
}

// headEntryAt returns the entry whose header tar has just read from src, a
// reader of raw, starting at start: its data where it lies in raw (tar
// reads exactly the header's blocks, so the data starts at src's offset,
// and Next skips over it).
func headEntryAt(raw []byte, src *bytes.Reader, start int, hdr *tar.Header) (headEntry, error) {
	if err := checkHeader(hdr); err != nil { // a regular file of a size >= 0
		return headEntry{}, err
	}
	data := len(raw) - src.Len()
	if hdr.Size > int64(src.Len()) {
		return headEntry{}, &EntryError{Entry: hdr.Name, Err: malformed("%v", io.ErrUnexpectedEOF)}
	}
	b := raw[data : data+int(hdr.Size) : data+int(hdr.Size)]
	end := min(data+(len(b)+511)&^511, len(raw))
	return headEntry{name: hdr.Name, data: b, start: start, end: end, mtime: hdr.ModTime}, nil
}

// ReadHeadFile reads only the head of the bundle at path.
func ReadHeadFile(path string) (*Head, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, _, err := readHead(f)
	return h, err
}

// ReadHead reads and checks the head frame of a bundle from r, reading no
// further than the end of that frame's compressed bytes (plus buffering).
func ReadHead(r io.Reader) (*Head, error) {
	h, _, err := readHead(r)
	return h, err
}

func readHead(r io.Reader) (*Head, *frameScanner, error) {
	raw, frameLen, s, err := readHeadBytes(r)
	if err != nil {
		return nil, nil, err
	}
	h, err := parseHead(raw)
	if err != nil {
		return nil, nil, withStage(err, "head")
	}
	h.HeadSize = frameLen
	h.PaddingSize = s.padding
	return h, s, nil
}

// readHeadBytes reads the head frame and the padding after it, and returns
// the head's tar bytes (not yet checked) and the frame's length.
func readHeadBytes(r io.Reader) ([]byte, int64, *frameScanner, error) {
	s := newFrameScanner(r, 2, MaxWindow)
	s.maxWindow = MaxHeadSize // the head is one frame whose window may be its size
	frame, err := s.nextFrame(MaxHeadCompressed)
	if err != nil {
		return nil, 0, nil, err
	}
	s.maxWindow = MaxWindow
	if err := s.skipPadding(); err != nil {
		return nil, 0, nil, err
	}
	dec, err := zstd.NewReader(bytes.NewReader(frame), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxHeadSize), zstd.WithDecoderMaxMemory(MaxHeadSize))
	if err != nil {
		return nil, 0, nil, err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(frame, nil)
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, 0, nil, overLimit("head larger than %d bytes", MaxHeadSize)
		}
		return nil, 0, nil, malformed("head frame: %v", err)
	}
	if len(raw) > MaxHeadSize {
		return nil, 0, nil, overLimit("head larger than %d bytes", MaxHeadSize)
	}
	return raw, int64(len(frame)), s, nil
}

// checkHeader enforces the only tar header airlock writes: a regular file,
// mode 0644, owner 0:0, no links, no extended attributes, a valid name.
func checkHeader(hdr *tar.Header) error {
	if len(hdr.Name) > MaxNameLen || !validEntryName(hdr.Name) {
		return &EntryError{Entry: clip(hdr.Name), Err: malformed("entry name not allowed")}
	}
	if hdr.Typeflag != tar.TypeReg {
		return &EntryError{Entry: hdr.Name, Err: malformed("type %q is not a regular file (links, devices and directories are refused)", hdr.Typeflag)}
	}
	if hdr.Mode != 0o644 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Linkname != "" || hdr.Uname != "" || hdr.Gname != "" {
		return &EntryError{Entry: hdr.Name, Err: malformed("unexpected mode, owner or link in header")}
	}
	for k := range hdr.PAXRecords {
		if k != "size" && k != "mtime" {
			return &EntryError{Entry: hdr.Name, Err: malformed("extended header record %q is not allowed", clip(k))}
		}
	}
	if hdr.Size < 0 {
		return &EntryError{Entry: hdr.Name, Err: malformed("negative size")}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return fmt.Sprintf("%q", s)[1 : len(fmt.Sprintf("%q", s))-1]
}

func validEntryName(name string) bool {
	switch name {
	case EntryFormat, EntrySignatures, EntryManifest, EntryFrames, EntryOCILayout, EntryIndex:
		return true
	}
	d, ok := strings.CutPrefix(name, "blobs/sha256/")
	return ok && validDigest("sha256:"+d)
}

// parseHead checks the head's entries, their order, and the content tree.
func parseHead(raw []byte) (*Head, error) {
	src := bytes.NewReader(raw)
	tr := tar.NewReader(src)
	h := &Head{Blobs: map[string][]byte{}, rawHead: raw}
	entryStart := 0 // where the entry being read begins in raw
	read := func(hdr *tar.Header, limit int64) ([]byte, error) {
		if hdr.Size > limit {
			return nil, &EntryError{Entry: hdr.Name, Err: overLimit("%d bytes exceed %d", hdr.Size, limit)}
		}
		e, err := headEntryAt(raw, src, entryStart, hdr)
		if err != nil {
			return nil, err
		}
		h.raw = append(h.raw, e)
		entryStart = e.end
		return e.data, nil
	}
	order := []string{EntryFormat, EntrySignatures, EntryManifest, EntryFrames, EntryOCILayout, EntryIndex}
	pos := 0 // next allowed position in order
	// bundle.json and frames.json are decoded on other cores while the
	// entries after them are read; their errors come first, in entry order.
	var decoding sync.WaitGroup
	var stampErr, manifestErr, framesErr error
	scan := func() error {
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				// The head ends exactly after its last entry and its
				// padding: no end-of-archive marker (which would hide
				// whatever follows it from tar) and no other bytes.
				if junk := len(raw) - entryStart; src.Len() != 0 || junk > 0 {
					return malformed("head: %d bytes after the last entry (an end-of-archive marker or junk)", junk)
				}
				break
			}
			if err != nil {
				return malformed("head: %v", err)
			}
			h.Entries++
			if h.Entries == 1 && hdr.Name != EntryFormat {
				return fmt.Errorf("%w: first entry is %q, not %s", ErrNotBundle, clip(hdr.Name), EntryFormat)
			}
			if err := checkHeader(hdr); err != nil {
				return err
			}
			if strings.HasPrefix(hdr.Name, "blobs/") {
				if pos < len(order) {
					return &EntryError{Entry: hdr.Name, Err: malformed("blob before %s", order[len(order)-1])}
				}
				d := "sha256:" + strings.TrimPrefix(hdr.Name, "blobs/sha256/")
				if _, dup := h.Blobs[d]; dup {
					return &EntryError{Entry: hdr.Name, Err: malformed("duplicate entry")}
				}
				b, err := read(hdr, MaxConfigSize)
				if err != nil {
					return err
				}
				if got := checked.Digest(b); got != d {
					return &EntryError{Entry: hdr.Name, Err: fmt.Errorf("%w: content hashes to %s", ErrIntegrity, got)}
				}
				h.Blobs[d] = b
				continue
			}
			i := pos
			for i < len(order) && order[i] != hdr.Name {
				i++
			}
			if i == len(order) || i != pos {
				return &EntryError{Entry: hdr.Name, Err: malformed("duplicate or out-of-order entry")}
			}
			pos = i + 1
			switch hdr.Name {
			case EntryFormat:
				b, err := read(hdr, 4096)
				if err != nil {
					return err
				}
				if err := strictjson.Unmarshal(b, &h.Marker); err != nil || h.Marker.Format != FormatName {
					return fmt.Errorf("%w: bad format marker", ErrNotBundle)
				}
				if h.Marker.Version < MinFormatVersion || h.Marker.Version > FormatVersion {
					return fmt.Errorf("%w: version %d (this airlock reads versions %d to %d; use a matching release of airlock)", ErrUnsupportedVersion, h.Marker.Version, MinFormatVersion, FormatVersion)
				}
				if h.Marker.Version < 2 {
					// Version 1 has no frame index.
					order = []string{EntryFormat, EntrySignatures, EntryManifest, EntryOCILayout, EntryIndex}
				}
			case EntrySignatures:
				if h.Signatures, err = read(hdr, MaxSignaturesSize); err != nil {
					return err
				}
			case EntryManifest:
				if h.ManifestBytes, err = read(hdr, MaxBundleManifestSize); err != nil {
					return err
				}
				decoding.Go(func() {
					if err := checkStamps(EntryManifest, h.ManifestBytes, "created"); err != nil {
						stampErr = &EntryError{Entry: EntryManifest, Err: err}
					}
				})
				decoding.Go(func() {
					if err := strictjson.Unmarshal(h.ManifestBytes, &h.Manifest); err != nil {
						manifestErr = &EntryError{Entry: EntryManifest, Err: malformed("%w", err)}
					}
					h.ManifestDigest = checked.Digest(h.ManifestBytes)
				})
			case EntryFrames:
				if h.FramesBytes, err = read(hdr, MaxFrameIndexSize); err != nil {
					return err
				}
				h.Frames = &FrameIndex{}
				decoding.Go(func() {
					if err := strictjson.Unmarshal(h.FramesBytes, h.Frames); err != nil {
						framesErr = &EntryError{Entry: EntryFrames, Err: malformed("%w", err)}
					}
				})
			case EntryOCILayout:
				b, err := read(hdr, 4096)
				if err != nil {
					return err
				}
				if string(b) != ociLayoutContent {
					return &EntryError{Entry: hdr.Name, Err: malformed("unexpected content")}
				}
			case EntryIndex:
				if h.IndexBytes, err = read(hdr, MaxManifestSize); err != nil {
					return err
				}
				decoding.Go(func() {
					if err := strictjson.Check(h.IndexBytes); err != nil {
						h.index.err = &EntryError{Entry: EntryIndex, Err: malformed("%w", err)}
					} else if err := strictjson.Decode(h.IndexBytes, &h.index); err != nil {
						h.index.err = &EntryError{Entry: EntryIndex, Err: malformed("not an OCI image index")}
					}
				})
			}
		}
		return nil
	}
	err := scan()
	decoding.Wait()
	for _, e := range []error{stampErr, manifestErr, framesErr, err} {
		if e != nil {
			return nil, e
		}
	}
	if pos < len(order) {
		return nil, malformed("head ends before %s", order[len(order)-1])
	}
	if err := h.checkTree(); err != nil {
		return nil, err
	}
	env, err := ParseEnvelope(h.Signatures)
	if err != nil {
		return nil, err
	}
	st, err := env.Statement(h)
	if err != nil {
		return nil, &EntryError{Entry: EntrySignatures, Err: err}
	}
	h.Envelope, h.Statement = env, st
	return h, nil
}

// checkTree checks bundle.json against index.json and the manifests, and
// derives the list of body blobs.
func (h *Head) checkTree() error {
	m := &h.Manifest
	if m.SchemaVersion != 1 || m.MediaType != MediaTypeBundleManifest {
		return &EntryError{Entry: EntryManifest, Err: malformed("schemaVersion %d / mediaType %q", m.SchemaVersion, m.MediaType)}
	}
	if !ValidName(m.Name) || !ValidVersion(m.Version) {
		return &EntryError{Entry: EntryManifest, Err: malformed("invalid name %q or version %q", clip(m.Name), clip(m.Version))}
	}
	if m.Root.MediaType != MediaTypeOCIIndex || m.Root.Digest != checked.Digest(h.IndexBytes) || m.Root.Size != int64(len(h.IndexBytes)) {
		return &EntryError{Entry: EntryIndex, Err: fmt.Errorf("%w: does not match the root descriptor in %s", ErrIntegrity, EntryManifest)}
	}
	if len(m.Artifacts) > MaxArtifacts {
		return overLimit("%d artifacts exceed %d", len(m.Artifacts), MaxArtifacts)
	}
	idx := &h.index
	if idx.err != nil {
		return idx.err
	}
	if idx.SchemaVersion != 2 || idx.MediaType != MediaTypeOCIIndex {
		return &EntryError{Entry: EntryIndex, Err: malformed("not an OCI image index")}
	}
	if len(idx.Manifests) < len(m.Artifacts) {
		return &EntryError{Entry: EntryIndex, Err: malformed("%d entries for %d artifacts", len(idx.Manifests), len(m.Artifacts))}
	}
	// The artifacts' entries come first; in v2 the rest are their oras
	// names (version 1 had none).
	if h.Marker.Version < 2 {
		if len(idx.Manifests) != len(m.Artifacts) {
			return &EntryError{Entry: EntryIndex, Err: malformed("%d entries for %d artifacts", len(idx.Manifests), len(m.Artifacts))}
		}
	} else if err := checkLayoutAliases(h.IndexBytes, len(m.Artifacts), idx.Manifests); err != nil {
		return &EntryError{Entry: EntryIndex, Err: err}
	}
	// Sized for about a blob or two per artifact, as most heads are.
	used := make(map[string]bool, 2*len(m.Artifacts))
	inBody := make(map[string]bool, len(m.Artifacts))
	h.Body = make([]Descriptor, 0, len(m.Artifacts))
	imageManifests := map[string]map[string]bool{} // image ref -> digests of its manifests
	var totals Totals
	targets, files := safepath.NewSet(), safepath.NewSet()
	subjects := newSubjectIndex(m.Artifacts)
	// Trees are walked a batch ahead of the checks below, on other cores.
	var cur, next *walkedBatch
	for i, a := range m.Artifacts {
		e := idx.Manifests[i]
		if e.Digest != a.Digest || e.Size != a.Size || e.MediaType != a.MediaType || e.Annotations[AnnotationKind] != a.Kind {
			return &EntryError{Entry: EntryIndex, Artifact: artifactWhere(i, a), Err: malformed("index entry does not match %s", EntryManifest)}
		}
		if err := checkArtifact(a, targets); err != nil {
			return &EntryError{Entry: EntryManifest, Artifact: artifactWhere(i, a), Err: err}
		}
		raw, ok := h.Blobs[a.Digest]
		if !ok {
			return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: malformed("the artifact's manifest is not in the head")}
		}
		if int64(len(raw)) != a.Size {
			return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: fmt.Errorf("%w: %d bytes, the artifact says %d", ErrIntegrity, len(raw), a.Size)}
		}
		if err := checkSubject(a, raw, subjects, imageManifests); err != nil {
			return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: err}
		}
		if cur == nil || i >= cur.to {
			if cur = next; cur == nil {
				cur = h.walkAhead(i)
			}
			<-cur.done
			next = nil
			if cur.to < len(m.Artifacts) {
				next = h.walkAhead(cur.to)
			}
		}
		g, err := cur.res[i-cur.from].g, cur.res[i-cur.from].err
		cur.res[i-cur.from] = walkResult{} // its graph is not kept longer than needed
		if err != nil {
			return withArtifact(err, artifactWhere(i, a), blobName(a.Digest))
		}
		h.roots = append(h.roots, g.root)
		if err := checkClaims(a, g, e.Annotations[AnnotationRefName]); err != nil {
			return &EntryError{Entry: EntryManifest, Artifact: artifactWhere(i, a), Err: err}
		}
		if a.Info().Target {
			fs, err := installFiles(i, a, g)
			if err != nil {
				return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: err}
			}
			for _, f := range fs {
				if err := files.Add(f.Path); err != nil {
					return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
				}
			}
			h.Files = append(h.Files, fs...)
		}
		if a.Kind == KindImage {
			set := map[string]bool{}
			for _, mf := range g.Manifests {
				set[mf.Digest] = true
			}
			imageManifests[a.Ref] = set
		}
		if err := checkAnnotations(a, g); err != nil {
			return &EntryError{Entry: blobName(a.Digest), Artifact: artifactWhere(i, a), Err: err}
		}
		if err := checkKindContent(a, g); err != nil {
			return &EntryError{Entry: blobName(a.Digest), Err: fmt.Errorf("%s: %w", artifactWhere(i, a), err)}
		}
		seen := map[string]bool{}
		blobs, bytes := 0, int64(0)
		count := func(d Descriptor) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				blobs++
				bytes += d.Size
			}
		}
		for _, list := range [][]Blob{g.Manifests, g.Configs} {
			for _, rb := range list {
				count(rb.Descriptor)
				if !used[rb.Digest] {
					used[rb.Digest] = true
					totals.Blobs++
					totals.Bytes += rb.Size
				}
			}
		}
		for _, l := range g.Layers {
			count(l)
			if _, head := h.Blobs[l.Digest]; head {
				if !used[l.Digest] {
					used[l.Digest] = true
					totals.Blobs++
					totals.Bytes += l.Size
				}
				continue
			}
			if !inBody[l.Digest] {
				inBody[l.Digest] = true
				h.Body = append(h.Body, l)
				totals.Blobs++
				totals.Bytes += l.Size
				totals.BodyBlobs++
				totals.BodyBytes += l.Size
			}
		}
		if blobs != a.Blobs || bytes != a.Bytes {
			return &EntryError{Entry: EntryManifest, Artifact: artifactWhere(i, a), Err: claimError("%d blobs of %d bytes, its content has %d of %d", a.Blobs, a.Bytes, blobs, bytes)}
		}
	}
	for d := range h.Blobs {
		if !used[d] {
			return &EntryError{Entry: blobName(d), Err: malformed("blob is not referenced by any artifact")}
		}
	}
	totals.Artifacts = len(m.Artifacts)
	if totals != m.Totals {
		return &EntryError{Entry: EntryManifest, Err: malformed("totals %+v do not match the content %+v", m.Totals, totals)}
	}
	if n := h.Entries + len(h.Body); n > MaxEntries {
		return overLimit("%d entries exceed %d", n, MaxEntries)
	}
	return h.checkFrames()
}

// artifactWhere names artifact i for an error message.
func artifactWhere(i int, a Artifact) string {
	return fmt.Sprintf("artifact %d (%s)", i, a.Describe())
}

type walkResult struct {
	g   *Graph
	err error
}

// walkBatch is how many artifacts' trees are walked in one batch; one
// batch is walked ahead of checkTree's checks, so a head refused at an
// artifact costs at most two batches of walks more, and at most two
// batches of graphs are held at once.
const walkBatch = 64

// walkedBatch is the trees of artifacts [from, to), ready when done is closed.
type walkedBatch struct {
	from, to int
	res      []walkResult
	done     chan struct{}
}

// walkAhead starts walking the batch of artifacts from from.
func (h *Head) walkAhead(from int) *walkedBatch {
	b := &walkedBatch{from: from, to: min(from+walkBatch, len(h.Manifest.Artifacts)), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.res = h.walkArtifacts(b.from, b.to)
	}()
	return b
}

// walkArtifacts reads the content trees of artifacts [from, to) whose
// manifest is in the head, on every core: Walk only reads the head's
// blobs, and its results are used (and its errors reported) in artifact
// order by checkTree, exactly as if each were walked in turn.
func (h *Head) walkArtifacts(from, to int) []walkResult {
	arts := h.Manifest.Artifacts[from:to]
	out := make([]walkResult, len(arts))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(arts)/8, 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(arts) {
					return
				}
				a := arts[i]
				raw, ok := h.Blobs[a.Digest]
				if !ok || int64(len(raw)) != a.Size {
					continue // refused by checkTree before the walk
				}
				out[i].g, out[i].err = Walk(context.Background(), a.Descriptor, raw, headContent(h.Blobs), nil)
			}
		})
	}
	wg.Wait()
	return out
}

// checkFrames checks a v2 head's frame index: named by bundle.json, and
// describing exactly the layout of the body blobs the head lists.
func (h *Head) checkFrames() error {
	m := &h.Manifest
	if h.Frames == nil {
		if m.Frames != nil {
			return &EntryError{Entry: EntryManifest, Err: malformed("names a frame index, which a version %d bundle does not have", h.Marker.Version)}
		}
		return nil
	}
	if m.Frames == nil || m.Frames.MediaType != MediaTypeFrameIndex || m.Frames.Digest != checked.Digest(h.FramesBytes) || m.Frames.Size != int64(len(h.FramesBytes)) {
		return &EntryError{Entry: EntryFrames, Err: fmt.Errorf("%w: does not match the frames descriptor in %s", ErrIntegrity, EntryManifest)}
	}
	l, err := checkFrameIndex(h.Frames, h.Body, m.Created)
	if err != nil {
		return &EntryError{Entry: EntryFrames, Err: err}
	}
	h.layout = l
	return nil
}

type indexEntry struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type headContent map[string][]byte

func (c headContent) Manifest(_ context.Context, d Descriptor) ([]byte, error) { return c.get(d) }
func (c headContent) Config(_ context.Context, d Descriptor) ([]byte, error)   { return c.get(d) }
func (c headContent) get(d Descriptor) ([]byte, error) {
	b, ok := c[d.Digest]
	if !ok {
		return nil, &EntryError{Entry: blobName(d.Digest), Err: malformed("referenced but missing from the head")}
	}
	if int64(len(b)) != d.Size {
		return nil, &EntryError{Entry: blobName(d.Digest), Err: fmt.Errorf("%w: %d bytes, descriptor says %d", ErrIntegrity, len(b), d.Size)}
	}
	return b, nil
}

// checkArtifact validates one bundle.json artifact record on its own.
func checkArtifact(a Artifact, targets *safepath.Set) error {
	if !validDigest(a.Digest) || a.Size < 0 || a.Size > MaxManifestSize {
		return malformed("bad descriptor")
	}
	if a.PackCheck != "" && a.Kind != KindImage {
		return malformed("a %s artifact records packCheck (only images are checked by images[].verify)", a.Kind)
	}
	if len(a.PackCheck) > 1024 {
		return malformed("packCheck of %d bytes (at most 1024)", len(a.PackCheck))
	}
	switch a.Kind {
	case KindImage:
		if a.Ref == "" {
			return malformed("image without ref")
		}
	case KindModel, KindFile, KindDir:
		if err := safepath.Check(a.Target); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if err := targets.Add(a.Target); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if (a.Kind == KindFile || a.Kind == KindDir && a.Mode != "") && !recordModeRE.MatchString(a.Mode) {
			return malformed("%s mode %q: bundle.json records exactly four octal digits starting with 0, such as \"0640\" (no setuid, setgid or sticky bits)", a.Kind, clip(a.Mode))
		}
	case KindChart:
		// Checked with its manifest and config (checkKindContent).
	case KindSBOM:
		if a.SBOM == nil {
			return malformed("sbom without summary")
		}
	case KindAttachment:
		if a.Subject == "" || !validDigest(a.SubjectDigest) {
			return malformed("attachment without a subject image and digest")
		}
	case KindTrustedRoot:
		if a.Source == "" {
			return malformed("trusted root without source")
		}
	default:
		return malformed("unknown artifact kind %q", clip(a.Kind))
	}
	return nil
}

// checkSubject requires an artifact that names a subject (an SBOM or an
// attachment) to carry that subject in its manifest, and the subject to be an
// image of this bundle with that digest.
func checkSubject(a Artifact, raw []byte, subjects subjectIndex, imageManifests map[string]map[string]bool) error {
	if a.Kind != KindSBOM && a.Kind != KindAttachment {
		if a.Subject != "" || a.SubjectDigest != "" {
			return malformed("a %s artifact has no subject", a.Kind)
		}
		return nil
	}
	var m struct {
		Subject *ociDescriptor `json:"subject"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return malformed("%v", err)
	}
	if a.SubjectDigest == "" {
		if a.Subject != "" || (m.Subject != nil && a.Kind == KindSBOM) {
			return malformed("subject recorded inconsistently")
		}
		return nil
	}
	if a.Kind == KindSBOM && (m.Subject == nil || m.Subject.Digest != a.SubjectDigest) {
		return malformed("manifest subject does not match subjectDigest %s", a.SubjectDigest)
	}
	if subjects.has(a) {
		return nil
	}
	// An attachment may belong to any manifest of its image (a platform's).
	if a.Kind == KindAttachment && imageManifests[a.Subject][a.SubjectDigest] {
		return nil
	}
	return malformed("subject %q (%s) is not an image of this bundle", clip(a.Subject), a.SubjectDigest)
}

// checkAnnotations requires the target and mode inside an artifact's OCI
// manifest to equal those in bundle.json, so consumers cannot disagree.
func checkAnnotations(a Artifact, g *Graph) error {
	if a.Kind != KindModel && a.Kind != KindFile && a.Kind != KindDir {
		return nil
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if r := g.decodedRoot(); r != nil {
		m.Annotations = r.Annotations
	} else if err := json.Unmarshal(g.Manifests[0].Data, &m); err != nil {
		return malformed("%v", err)
	}
	if m.Annotations[AnnotationTarget] != a.Target || m.Annotations[AnnotationKind] != a.Kind || ((a.Kind == KindFile || a.Kind == KindDir) && m.Annotations[AnnotationMode] != a.Mode) {
		return malformed("target or mode annotations differ from %s", EntryManifest)
	}
	return nil
}
