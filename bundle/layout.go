package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/checked"
)

// Format v2 cuts the body into independent zstd frames (docs/format.md §18).
// Where the cuts fall is decided by the uncompressed tar stream alone: the
// body blobs in bundle order, their sizes, the creation time (the tar
// headers' mtime) and the frame size. A writer and a reader compute the same
// layout from the same head, so a reader checks every uncompressed number of
// the frame index by computing it again; only the compressed offsets, sizes
// and digests are facts it learns from the index.

// FrameIndex is airlock/frames.json, the frame index of a v2 bundle. It is
// named by digest in bundle.json, so the signatures cover it.
type FrameIndex struct {
	MediaType string `json:"mediaType"`
	// FrameSize is the cut size: small entries are grouped into frames of at
	// most FrameSize uncompressed bytes, a larger entry is sliced into frames
	// of exactly FrameSize bytes (its last slice shorter).
	FrameSize int64 `json:"frameSize"`
	// UncompressedSize is the size of the body's tar stream, end-of-archive
	// marker included; CompressedSize the sum of the frames' sizes.
	UncompressedSize int64         `json:"uncompressedSize"`
	CompressedSize   int64         `json:"compressedSize"`
	Frames           []FrameRecord `json:"frames"`
	// Volumes is empty for a single-file bundle.
	Volumes []VolumeRecord `json:"volumes,omitempty"`
}

// FrameRecord is one zstd frame of the body. Offsets count from the first
// byte of the body (the first byte after the padding frame), so the index
// does not change when `airlock sign` moves the body.
type FrameRecord struct {
	Offset             int64  `json:"offset"`
	Size               int64  `json:"size"`
	UncompressedOffset int64  `json:"uncompressedOffset"`
	UncompressedSize   int64  `json:"uncompressedSize"`
	SHA256             string `json:"sha256"` // of the frame's compressed bytes
	// Blobs are the body blobs whose tar entry (header, data or padding)
	// has bytes in this frame, in stream order.
	Blobs []string `json:"blobs"`
}

// VolumeRecord is one volume of a bundle written in pieces. Offset and Size
// count body bytes; volume 1 also holds the head and padding before them.
// SHA256 is over the volume's body bytes (for volume 1, the bytes after
// the padding frame; for the others, the whole file).
type VolumeRecord struct {
	Number int    `json:"number"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Limits of the frame index.
const (
	// FrameSizeDefault is the frame size the writer uses for bodies up to
	// FrameSizeDefault * MaxFramesPlanned bytes; above that it grows the
	// frame size so that the index stays small.
	FrameSizeDefault = 4 << 20
	// MinFrameSize and MaxFrameSize bound a declared frame size.
	MinFrameSize = 64 << 10
	MaxFrameSize = 64 << 20
	// MaxFramesPlanned is how many frames the writer aims at, at most.
	MaxFramesPlanned = 16384
	// MaxFrames bounds the frames a reader accepts.
	MaxFrames = 1 << 20
	// MaxVolumes bounds the volumes of one bundle.
	MaxVolumes = 9999
	// MaxFrameIndexSize bounds airlock/frames.json.
	MaxFrameIndexSize = 32 << 20
)

// MediaTypeFrameIndex is the media type of airlock/frames.json.
const MediaTypeFrameIndex = "application/vnd.airlock.bundle.frames.v1+json"

// maxCompressedFrame bounds a frame's compressed size. Bytes that do not
// compress are stored in raw blocks of their own size plus a 3-byte header,
// and a frame adds at most 18 bytes of header and a 4-byte checksum; how
// many blocks there are is the encoder's choice (128 KiB at most, 64 KiB at
// klauspost's fastest level), so the bound allows a header for every 768
// bytes: the content plus 1/256 of it plus 64 bytes.
func maxCompressedFrame(uncompressed int64) int64 {
	return uncompressed + uncompressed/256 + 64
}

// entrySpan is where one body blob's tar entry lies in the uncompressed body.
type entrySpan struct {
	Desc  Descriptor
	Start int64 // offset of the header (its bytes: bodyLayout.header)
	Data  int64 // offset of the first data byte
	End   int64 // offset after the data's padding to 512 bytes
}

// bodyLayout is the uncompressed layout of a v2 body.
type bodyLayout struct {
	FrameSize int64
	Entries   []entrySpan
	// Frames carry only their uncompressed fields and blobs.
	Frames []FrameRecord
	Total  int64 // uncompressed body size, end-of-archive marker included
	mtime  time.Time
}

// header returns the exact tar header bytes of e (one block, or three with
// a PAX size record), as the writer writes them.
func (l *bodyLayout) header(e *entrySpan) ([]byte, error) {
	return entryHeader(e.Desc, l.mtime)
}

// ustarMaxSize is the first size the ustar header's 11 octal digits cannot hold.
const ustarMaxSize = 1 << 33

// endOfArchive is the size of tar's end-of-archive marker.
const endOfArchive = 1024

// entryHeader returns the tar header bytes of a body blob exactly as the
// writer writes them.
func entryHeader(d Descriptor, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(tarHeader(blobName(d.Digest), d.Size, mtime)); err != nil {
		return nil, err
	}
	// The header is in buf now; the writer is dropped without Close (which
	// would complain about the missing data).
	return buf.Bytes(), nil
}

// chooseFrameSize is the writer's frame size for an uncompressed body of total bytes.
func chooseFrameSize(total int64) int64 {
	f := int64(FrameSizeDefault)
	if total/f > MaxFramesPlanned {
		f = (total/MaxFramesPlanned + (1 << 20) - 1) &^ ((1 << 20) - 1)
	}
	return min(f, MaxFrameSize)
}

// planBody lays out the body blobs in order and cuts the stream into frames
// of frameSize (0 chooses it from the body's size). It gives up once the
// layout needs more than MaxFrames frames, so that a hostile head cannot
// make a reader plan without end.
func planBody(blobs []Descriptor, mtime time.Time, frameSize int64) (*bodyLayout, error) {
	l := &bodyLayout{Entries: make([]entrySpan, 0, len(blobs)), mtime: mtime}
	var pos int64
	// Every name has the same length, so a header's length depends only
	// on whether the size fits the ustar field (under 8 GiB: one block) or
	// needs a PAX record: it is taken from one real header of the first
	// size that fits, and from each larger blob's own header. The headers
	// themselves are made when the body is read or written.
	var ustarLen int64
	for _, d := range blobs {
		var n int64
		if d.Size >= 0 && d.Size < ustarMaxSize && ustarLen != 0 {
			n = ustarLen
		} else {
			hdr, err := entryHeader(d, mtime)
			if err != nil {
				return nil, fmt.Errorf("tar header of %s: %w", d.Digest, err)
			}
			n = int64(len(hdr))
			if d.Size >= 0 && d.Size < ustarMaxSize {
				ustarLen = n
			}
		}
		data := pos + n
		end := data + (d.Size+511)&^511
		l.Entries = append(l.Entries, entrySpan{Desc: d, Start: pos, Data: data, End: end})
		pos = end
	}
	l.Total = pos + endOfArchive
	if frameSize == 0 {
		frameSize = chooseFrameSize(l.Total)
	}
	if frameSize < MinFrameSize || frameSize > MaxFrameSize || frameSize%512 != 0 {
		return nil, malformed("frame size %d: must be a multiple of 512 between %d and %d", frameSize, MinFrameSize, MaxFrameSize)
	}
	l.FrameSize = frameSize
	if l.Total/frameSize > MaxFrames {
		return nil, overLimit("a body of %d bytes in frames of %d bytes needs more than %d frames", l.Total, frameSize, MaxFrames)
	}
	var cur *FrameRecord
	closeFrame := func() {
		if cur != nil && cur.UncompressedSize > 0 {
			l.Frames = append(l.Frames, *cur)
		}
		cur = nil
	}
	open := func(at int64) *FrameRecord { return &FrameRecord{UncompressedOffset: at, Blobs: []string{}} }
	place := func(start, end int64, digest string) {
		n := end - start
		if n <= frameSize {
			if cur != nil && cur.UncompressedSize+n > frameSize {
				closeFrame()
			}
			if cur == nil {
				cur = open(start)
			}
			cur.UncompressedSize += n
			if digest != "" {
				cur.Blobs = append(cur.Blobs, digest)
			}
			return
		}
		closeFrame()
		for off := start; off < end; off += frameSize {
			cur = open(off)
			cur.UncompressedSize = min(frameSize, end-off)
			cur.Blobs = append(cur.Blobs, digest)
			closeFrame()
		}
	}
	for _, e := range l.Entries {
		place(e.Start, e.End, e.Desc.Digest)
	}
	place(pos, l.Total, "")
	closeFrame()
	return l, nil
}

// checkFrameIndex checks a v2 head's frame index against the layout the
// head implies: every uncompressed number and blob list must be what
// planBody computes, compressed offsets must be contiguous from 0, and the
// volumes must cover the body in order, cut at frame boundaries.
func checkFrameIndex(fi *FrameIndex, body []Descriptor, mtime time.Time) (*bodyLayout, error) {
	if fi.MediaType != MediaTypeFrameIndex {
		return nil, malformed("mediaType %q, expected %s", clip(fi.MediaType), MediaTypeFrameIndex)
	}
	if len(fi.Frames) == 0 || len(fi.Frames) > MaxFrames {
		return nil, malformed("%d frames (1 to %d allowed)", len(fi.Frames), MaxFrames)
	}
	l, err := planBody(body, mtime, fi.FrameSize)
	if err != nil {
		return nil, err
	}
	if fi.UncompressedSize != l.Total {
		return nil, malformed("uncompressedSize %d; the blobs lay out to %d bytes", fi.UncompressedSize, l.Total)
	}
	if len(fi.Frames) != len(l.Frames) {
		return nil, malformed("%d frames; the blobs and frame size give %d", len(fi.Frames), len(l.Frames))
	}
	var off int64
	for i, f := range fi.Frames {
		want := l.Frames[i]
		where := fmt.Sprintf("frame %d", i)
		if f.UncompressedOffset != want.UncompressedOffset || f.UncompressedSize != want.UncompressedSize {
			return nil, malformed("%s: uncompressed range %d+%d, the layout gives %d+%d", where, f.UncompressedOffset, f.UncompressedSize, want.UncompressedOffset, want.UncompressedSize)
		}
		if strings.Join(f.Blobs, ",") != strings.Join(want.Blobs, ",") {
			return nil, malformed("%s: lists blobs %s; the layout puts %s in it", where, shortList(f.Blobs), shortList(want.Blobs))
		}
		if f.Offset != off {
			return nil, malformed("%s: compressed offset %d, expected %d (frames must follow each other without gaps or overlaps)", where, f.Offset, off)
		}
		if f.Size < 9 || f.Size > maxCompressedFrame(f.UncompressedSize) {
			return nil, malformed("%s: compressed size %d is impossible for %d bytes", where, f.Size, f.UncompressedSize)
		}
		if !checked.ValidDigest(f.SHA256) {
			return nil, malformed("%s: sha256 %q is not a sha256 digest", where, clip(f.SHA256))
		}
		off += f.Size
	}
	if fi.CompressedSize != off {
		return nil, malformed("compressedSize %d, the frames add up to %d", fi.CompressedSize, off)
	}
	if err := checkVolumes(fi); err != nil {
		return nil, err
	}
	return l, nil
}

func checkVolumes(fi *FrameIndex) error {
	if len(fi.Volumes) == 0 {
		return nil
	}
	if len(fi.Volumes) > MaxVolumes {
		return overLimit("%d volumes exceed %d", len(fi.Volumes), MaxVolumes)
	}
	starts := make(map[int64]bool, len(fi.Frames))
	for _, f := range fi.Frames {
		starts[f.Offset] = true
	}
	var off int64
	for i, v := range fi.Volumes {
		if v.Number != i+1 {
			return malformed("volume record %d has number %d", i+1, v.Number)
		}
		if v.Offset != off || v.Size < 0 || (v.Size == 0 && i > 0) {
			return malformed("volume %d: body range %d+%d, expected to start at %d", v.Number, v.Offset, v.Size, off)
		}
		if !starts[v.Offset] && v.Offset != fi.CompressedSize {
			return malformed("volume %d starts inside a frame (at body byte %d)", v.Number, v.Offset)
		}
		if !checked.ValidDigest(v.SHA256) {
			return malformed("volume %d: sha256 %q is not a sha256 digest", v.Number, clip(v.SHA256))
		}
		off += v.Size
	}
	if off != fi.CompressedSize {
		return malformed("volumes hold %d body bytes, the body has %d", off, fi.CompressedSize)
	}
	return nil
}

func shortList(ds []string) string {
	if len(ds) == 0 {
		return "no blob"
	}
	out := make([]string, 0, 3)
	for i, d := range ds {
		if i == 2 {
			out = append(out, fmt.Sprintf("and %d more", len(ds)-2))
			break
		}
		out = append(out, short(d))
	}
	return strings.Join(out, ", ")
}
