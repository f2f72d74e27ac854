package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/internal/checked"
)

// ErrNeedsV2 reports a bundle that cannot be read out of order: version 1
// bundles have one body frame and no frame index.
var ErrNeedsV2 = fmt.Errorf("%w: random access needs a format version 2 bundle (repack it with this airlock)", ErrUnsupportedVersion)

// Archive reads a v2 bundle out of order, straight from its file or volume
// set: any blob, or any byte range of one, by decompressing only the frames
// that hold it. Every frame read is checked against the sha256 the signed
// frame index gives it before it is decompressed, so every byte an Archive
// returns is a byte the signers packed; a whole blob is also checked against
// its own digest at its end. The head is not trusted by opening: check it
// (package verify) before serving what it lists.
type Archive struct {
	set   *Set
	head  *Head
	files []*os.File
	dec   *zstd.Decoder
	blobs map[string]int // body blob digest -> layout entry

	mu    sync.Mutex
	cache []cachedFrame // recently decoded frames, most recent last

	// ahead counts the read-ahead goroutines of open readers: Close stops
	// them (closing) and waits for them before it closes the decoder.
	ahead     sync.WaitGroup
	closing   chan struct{}
	closeOnce sync.Once
}

type cachedFrame struct {
	i    int
	data []byte
}

const archiveCache = 4

// OpenArchive opens the bundle at path (a file, a volume of a set, or a
// directory) for random access.
func OpenArchive(path string) (*Archive, error) {
	set, err := OpenSet(path)
	if err != nil {
		return nil, err
	}
	return NewArchive(set)
}

// NewArchive opens an already found set for random access.
func NewArchive(set *Set) (*Archive, error) {
	h := set.Head
	if h.layout == nil {
		return nil, ErrNeedsV2
	}
	a := &Archive{set: set, head: h, blobs: make(map[string]int, len(h.layout.Entries)), closing: make(chan struct{})}
	for i, e := range h.layout.Entries {
		a.blobs[e.Desc.Digest] = i
	}
	for _, p := range set.Paths {
		f, err := os.Open(p)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.files = append(a.files, f)
	}
	if !set.Volumes {
		st, err := a.files[0].Stat()
		if err != nil {
			a.Close()
			return nil, err
		}
		if want := set.BodyStart + h.Frames.CompressedSize; st.Size() != want {
			a.Close()
			return nil, malformed("%s is %d bytes; its head and frame index say %d (truncated copy, or data after the end?)", set.Paths[0], st.Size(), want)
		}
	}
	dec, err := newFrameDecoder(streamWorkers())
	if err != nil {
		a.Close()
		return nil, err
	}
	a.dec = dec
	return a, nil
}

// Head returns the bundle's head (manifests and configs are in Head().Blobs).
func (a *Archive) Head() *Head { return a.head }

// Set returns where the bundle's bytes are.
func (a *Archive) Set() *Set { return a.set }

// Close releases the files and the decoder. Readers still open stop
// reading ahead; a frame being decoded for one is finished first.
func (a *Archive) Close() error {
	a.closeOnce.Do(func() { close(a.closing) })
	a.ahead.Wait()
	for _, f := range a.files {
		f.Close()
	}
	if a.dec != nil {
		a.dec.Close()
	}
	return nil
}

// Lookup returns the descriptor of a blob the bundle holds (head or body).
func (a *Archive) Lookup(digest string) (Descriptor, bool) {
	if b, ok := a.head.Blobs[digest]; ok {
		return Descriptor{Digest: digest, Size: int64(len(b))}, true
	}
	if i, ok := a.blobs[digest]; ok {
		return a.head.layout.Entries[i].Desc, true
	}
	return Descriptor{}, false
}

// readBody reads len(p) compressed body bytes at body offset off, across
// volumes.
func (a *Archive) readBody(off int64, p []byte) error {
	if !a.set.Volumes {
		_, err := a.files[0].ReadAt(p, a.set.BodyStart+off)
		return err
	}
	vols := a.head.Frames.Volumes
	for len(p) > 0 {
		i := sort.Search(len(vols), func(i int) bool { return vols[i].Offset+vols[i].Size > off })
		if i == len(vols) {
			return io.ErrUnexpectedEOF
		}
		v := vols[i]
		at := off - v.Offset
		if i == 0 {
			at += a.set.BodyStart
		}
		n := min(int64(len(p)), v.Offset+v.Size-off)
		if _, err := a.files[i].ReadAt(p[:n], at); err != nil {
			return &VolumeError{Number: v.Number, Of: len(vols), Path: a.set.Paths[i], Err: err}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// Frame returns the uncompressed bytes of frame i, checked against the
// frame index. The slice must not be modified.
func (a *Archive) Frame(i int) ([]byte, error) {
	a.mu.Lock()
	for _, c := range a.cache {
		if c.i == i {
			a.mu.Unlock()
			return c.data, nil
		}
	}
	a.mu.Unlock()
	fr := a.head.Frames.Frames[i]
	raw := make([]byte, fr.Size)
	if err := a.readBody(fr.Offset, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = malformed("the file ends inside this frame (truncated copy?)")
		}
		return nil, &FrameError{Frame: i, Offset: fr.Offset, Err: err}
	}
	if err := a.checkFrameHash(i, raw); err != nil {
		return nil, err
	}
	data, err := decodeFrame(a.dec, raw, fr.UncompressedSize, nil)
	if err != nil {
		return nil, a.frameError(i, err)
	}
	a.mu.Lock()
	if len(a.cache) == archiveCache {
		a.cache = a.cache[1:]
	}
	a.cache = append(a.cache, cachedFrame{i: i, data: data})
	a.mu.Unlock()
	return data, nil
}

// checkFrameHash checks raw, the compressed bytes of frame i, against the
// frame's signed sha256.
func (a *Archive) checkFrameHash(i int, raw []byte) error {
	if err := frameHashError(a.head.Frames.Frames[i], raw); err != nil {
		return a.frameError(i, err)
	}
	return nil
}

// frameError names frame i and, in a volume set, its volume.
func (a *Archive) frameError(i int, err error) error {
	fr := a.head.Frames.Frames[i]
	ferr := &FrameError{Frame: i, Offset: fr.Offset, Err: err}
	if vols := a.head.Frames.Volumes; a.set.Volumes && len(vols) > 0 {
		n := sort.Search(len(vols), func(k int) bool { return vols[k].Offset+vols[k].Size > fr.Offset })
		if n < len(vols) {
			return &VolumeError{Number: n + 1, Of: len(vols), Path: a.set.Paths[n], Err: ferr}
		}
	}
	return ferr
}

// frameAt returns the index of the frame holding uncompressed body byte u.
func (a *Archive) frameAt(u int64) int {
	fs := a.head.Frames.Frames
	return sort.Search(len(fs), func(i int) bool { return fs[i].UncompressedOffset+fs[i].UncompressedSize > u })
}

// Open returns n bytes of the blob digest from offset off (n < 0: to the
// end). Head blobs come from the head. A read of a whole body blob is also
// checked against the blob's digest: the reader fails at its end, before
// io.EOF, if the bytes do not match.
func (a *Archive) Open(ctx context.Context, digest string, off, n int64) (io.ReadCloser, error) {
	d, ok := a.Lookup(digest)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the bundle", ErrMalformed, digest)
	}
	if off < 0 || off > d.Size {
		return nil, fmt.Errorf("offset %d outside blob %s of %d bytes", off, digest, d.Size)
	}
	if n < 0 || off+n > d.Size {
		n = d.Size - off
	}
	if b, ok := a.head.Blobs[digest]; ok {
		return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
	}
	e := a.head.layout.Entries[a.blobs[digest]]
	r := a.newBlobReader(ctx, e.Data+off, e.Data+off+n)
	if off == 0 && n == d.Size {
		cr, err := checked.NewReader(r, d.Digest, d.Size)
		if err != nil {
			r.Close()
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{cr, r}, nil
	}
	return r, nil
}

// blobReader reads uncompressed body bytes [pos, end) frame by frame. When
// they span several frames, the next ones are read, checked and decoded
// ahead on another core (readAhead frames at most, in order), while the
// caller consumes the current one.
type blobReader struct {
	ctx      context.Context
	cancel   context.CancelFunc
	a        *Archive
	pos, end int64
	ahead    chan *aheadFrame // frames after the first, in order
	cur      *aheadFrame
}

type aheadFrame struct {
	i    int
	data []byte
	err  error
	done chan struct{}
}

// readAhead bounds the frames one reader holds: the one being consumed and
// the next, decoded meanwhile on another core (as much memory per request
// as the read-ahead `serve --bundle` had before: about three frames).
const readAhead = 2

func (a *Archive) newBlobReader(ctx context.Context, pos, end int64) *blobReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &blobReader{ctx: ctx, cancel: cancel, a: a, pos: pos, end: end}
	if end <= pos {
		return r
	}
	first, last := a.frameAt(pos), a.frameAt(end-1)
	if first == last {
		return r
	}
	r.ahead = make(chan *aheadFrame, readAhead-1)
	a.ahead.Add(1)
	go func() {
		defer a.ahead.Done()
		defer close(r.ahead)
		for i := first; i <= last; i++ {
			f := &aheadFrame{i: i, done: make(chan struct{})}
			select {
			case r.ahead <- f:
			case <-ctx.Done():
				return
			case <-a.closing:
				return
			}
			a.ahead.Add(1)
			go func() {
				defer a.ahead.Done()
				defer close(f.done)
				select {
				case <-ctx.Done():
					f.err = ctx.Err() // the reader was closed: nobody waits for this frame
					return
				case <-a.closing:
					f.err = errors.New("the bundle was closed")
					return
				default:
				}
				f.data, f.err = a.Frame(f.i)
			}()
		}
	}()
	return r
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	i := r.a.frameAt(r.pos)
	var data []byte
	if r.ahead == nil {
		var err error
		if data, err = r.a.Frame(i); err != nil {
			return 0, err
		}
	} else {
		for r.cur == nil || r.cur.i != i {
			f, ok := <-r.ahead
			if !ok {
				if err := r.ctx.Err(); err != nil {
					return 0, err
				}
				return 0, fmt.Errorf("frame %d: read ahead ended early", i)
			}
			r.cur = f
		}
		select {
		case <-r.cur.done:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		data = r.cur.data
	}
	fr := r.a.head.Frames.Frames[i]
	from := r.pos - fr.UncompressedOffset
	to := min(int64(len(data)), r.end-fr.UncompressedOffset)
	k := copy(p, data[from:to])
	r.pos += int64(k)
	return k, nil
}

// Close stops the frames read ahead (a frame being decoded finishes; the
// Archive's Close waits for it).
func (r *blobReader) Close() error {
	r.cancel()
	return nil
}
