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
// its own digest at its end (CheckBlob checks one before a range of it is
// used). The head is not trusted by opening: check it (package verify)
// before serving what it lists.
//
// An Archive is safe for concurrent use. Concurrent reads of the same frame
// share one read and decode; the frames being read, decoded and kept take
// their buffers from one pool bounded by ArchiveOptions.MemoryLimit, and a
// read that needs a buffer when none is left waits for one. A reader pins
// a frame only while a Read copies out of it: between Reads (while its
// caller sends the bytes to a slow client, say) the frame it reads from
// and the one decoded ahead for it are only kept, and are dropped when
// another read needs their buffers (then decoded again if still needed).
type Archive struct {
	set   *Set
	head  *Head
	files []*os.File
	dec   *zstd.Decoder
	blobs map[string]int // body blob digest -> layout entry

	mu     sync.Mutex
	frames map[int]*frameBuf // frames being loaded, held by readers or cached
	cache  []*frameBuf       // recently decoded frames, most recent last
	mem    frameMemory

	// checks are the blob checks in progress, checked their outcomes
	// (nil: the blob matched its digest; else why it did not).
	checks  map[string]*blobCheck
	checked map[string]error
	// checkSlots bounds the checks that read at once (checkParallel).
	checkSlots chan struct{}

	// ahead counts the goroutines of open readers and checks, and the
	// frame loads in progress: Close stops them (closing) and waits for
	// them before it closes the decoder.
	ahead     sync.WaitGroup
	closing   chan struct{}
	closeOnce sync.Once
}

// ArchiveOptions configures an Archive. The zero value works.
type ArchiveOptions struct {
	// MemoryLimit bounds the bytes of frame buffers the Archive holds at
	// once, across all its readers: the compressed and decoded bytes of
	// the frames being decoded, and the decoded frames it keeps (the ones
	// open readers read from or decoded ahead, and recently decoded ones
	// for the next reader). Every buffer has room for the bundle's
	// largest frame (compressed or decoded), so the limit is a number of
	// such buffers; a decode takes two. A read that needs buffers when the
	// limit is reached first drops kept frames that no Read is copying
	// from (least recently used first, the frames of open readers last),
	// then waits (honoring its context) until a decode or a copy ends.
	// Buffers are reused, not given back to the system. <= 0 means
	// DefaultMemoryLimit (512 MiB), or 16 of the bundle's largest frames
	// when that is more (1 GiB with 64 MiB frames); a limit below two
	// buffers is raised to two.
	MemoryLimit int64
}

// DefaultMemoryLimit is the MemoryLimit of an Archive opened without one:
// 512 MiB, 127 buffers with the default 4 MiB frames; with frames over
// 32 MiB the default is 16 buffers instead (1 GiB with 64 MiB frames).
const DefaultMemoryLimit = 512 << 20

// archiveCache is how many recently decoded frames that no open reader
// reads from an Archive keeps while memory allows.
const archiveCache = 4

// checkParallel bounds the blob checks (CheckBlob) that read at once; more
// wait for their turn.
const checkParallel = 2

// frameBuf is one decoded frame, shared by every reader that holds it and,
// while cached, the Archive's cache.
type frameBuf struct {
	i      int
	data   []byte        // the decoded frame (a prefix of buf)
	buf    []byte        // the pool buffer data lives in
	refs   int           // pins: Reads copying from it or loads, plus one while cached (Archive.mu)
	cached bool          // (Archive.mu)
	parked int           // open readers that will read it again (Archive.mu); keeps it cached longer
	done   chan struct{} // closed once loaded: data or err is set
	err    error
}

// frameMemory is the Archive's pool of frame buffers (guarded by
// Archive.mu): every buffer has size bytes of room, at most max exist.
type frameMemory struct {
	size  int64
	max   int
	count int           // buffers allocated: held or free
	free  [][]byte      // buffers nobody holds, ready for reuse
	wake  chan struct{} // closed (and replaced) when a buffer is freed or a cached frame becomes idle
}

// OpenArchive opens the bundle at path (a file, a volume of a set, or a
// directory) for random access, with the default options.
func OpenArchive(path string) (*Archive, error) {
	return OpenArchiveOptions(path, ArchiveOptions{})
}

// OpenArchiveOptions opens the bundle at path for random access with opts.
func OpenArchiveOptions(path string, opts ArchiveOptions) (*Archive, error) {
	set, err := OpenSet(path)
	if err != nil {
		return nil, err
	}
	return NewArchiveOptions(set, opts)
}

// NewArchive opens an already found set for random access, with the
// default options.
func NewArchive(set *Set) (*Archive, error) { return NewArchiveOptions(set, ArchiveOptions{}) }

// NewArchiveOptions opens an already found set for random access with opts.
func NewArchiveOptions(set *Set, opts ArchiveOptions) (*Archive, error) {
	h := set.Head
	if h.layout == nil {
		return nil, ErrNeedsV2
	}
	a := &Archive{
		set: set, head: h, blobs: make(map[string]int, len(h.layout.Entries)), closing: make(chan struct{}),
		frames: map[int]*frameBuf{}, checks: map[string]*blobCheck{}, checked: map[string]error{},
		checkSlots: make(chan struct{}, checkParallel),
	}
	for i, e := range h.layout.Entries {
		a.blobs[e.Desc.Digest] = i
	}
	// Every buffer holds the largest frame, compressed or decoded (plus
	// the byte decodeFrame needs to see a frame that decodes to more).
	// The index was checked when the head was read: sizes are bounded by
	// MaxFrameSize and the zstd bound of it.
	var size int64
	for _, fr := range h.Frames.Frames {
		size = max(size, fr.Size, fr.UncompressedSize+1)
	}
	limit := opts.MemoryLimit
	if limit <= 0 {
		// At least 16 buffers: readers taking turns beyond what the
		// pool holds make frames be decoded again on every Read.
		limit = max(DefaultMemoryLimit, 16*size)
	}
	a.mem = frameMemory{size: size, max: int(max(limit/max(size, 1), 2)), wake: make(chan struct{})}
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

// MemoryLimit returns the bytes of frame buffers the Archive may hold at
// once (ArchiveOptions.MemoryLimit, rounded down to whole buffers).
func (a *Archive) MemoryLimit() int64 { return int64(a.mem.max) * a.mem.size }

// Head returns the bundle's head (manifests and configs are in Head().Blobs).
func (a *Archive) Head() *Head { return a.head }

// Set returns where the bundle's bytes are.
func (a *Archive) Set() *Set { return a.set }

// Close releases the files and the decoder. Readers still open stop
// reading ahead; a frame being decoded for one is finished first. Reads
// waiting for memory fail.
func (a *Archive) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		close(a.closing)
		a.mu.Unlock()
	})
	a.ahead.Wait()
	for _, f := range a.files {
		f.Close()
	}
	if a.dec != nil {
		a.dec.Close()
	}
	a.mu.Lock()
	a.mem.free = nil
	a.cache = nil
	a.mu.Unlock()
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

// Frame returns a copy of the uncompressed bytes of frame i, checked
// against the frame index.
func (a *Archive) Frame(i int) ([]byte, error) {
	fb, err := a.acquire(context.Background(), i, false)
	if err != nil {
		return nil, err
	}
	defer a.release(fb)
	return bytes.Clone(fb.data), nil
}

// errArchiveClosed reports a read of an Archive that was closed.
var errArchiveClosed = errors.New("the bundle was closed")

// errNoSpare reports a read ahead that found no spare buffers (see
// acquire).
var errNoSpare = errors.New("no spare frame buffers to read ahead")

// acquire returns frame i, decoded and pinned for the caller, who must
// release it. A frame another caller is loading is waited for, not loaded
// again; a frame nobody holds is loaded with buffers from the pool. spare
// (a read ahead) takes only buffers that are free or hold frames no open
// reader parked, and returns errNoSpare at once when there are not enough:
// a read ahead never drops the frame its own reader (or another) is on.
func (a *Archive) acquire(ctx context.Context, i int, spare bool) (*frameBuf, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-a.closing:
			return nil, errArchiveClosed
		default:
		}
		a.mu.Lock()
		if fb := a.frames[i]; fb != nil {
			fb.refs++
			if fb.cached {
				a.touchLocked(fb)
			}
			a.mu.Unlock()
			select {
			case <-fb.done:
			case <-ctx.Done():
				a.release(fb)
				return nil, ctx.Err()
			}
			if fb.err == nil {
				return fb, nil
			}
			err := fb.err
			a.release(fb)
			if (isContextErr(err) || errors.Is(err, errNoSpare)) && ctx.Err() == nil {
				continue // its loader gave up; load it for this caller
			}
			return nil, err
		}
		// Close waits for the loads in progress before it closes the
		// decoder; none starts once it began.
		if !a.goAheadLocked() {
			a.mu.Unlock()
			return nil, errArchiveClosed
		}
		fb := &frameBuf{i: i, refs: 1, done: make(chan struct{})}
		a.frames[i] = fb
		a.mu.Unlock()

		buf, data, err := a.load(ctx, i, spare)
		a.ahead.Done()
		a.mu.Lock()
		fb.buf, fb.data, fb.err = buf, data, err
		if err != nil {
			if a.frames[i] == fb {
				delete(a.frames, i) // the next caller tries again
			}
		} else {
			a.cacheLocked(fb)
		}
		close(fb.done)
		a.mu.Unlock()
		if err != nil {
			a.release(fb)
			return nil, err
		}
		return fb, nil
	}
}

// release drops the caller's hold on fb; the last holder returns its
// buffer to the pool.
func (a *Archive) release(fb *frameBuf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked(fb)
}

func (a *Archive) releaseLocked(fb *frameBuf) {
	fb.refs--
	if fb.refs == 1 && fb.cached {
		a.wakeLocked() // only the cache holds it now: it may be dropped for a waiting read
	}
	if fb.refs > 0 {
		return
	}
	if a.frames[fb.i] == fb {
		delete(a.frames, fb.i)
	}
	if fb.buf != nil {
		a.putBufLocked(fb.buf)
		fb.buf, fb.data = nil, nil
	}
}

// cacheLocked keeps fb as the most recent cached frame, and drops the
// oldest that no open reader parked beyond archiveCache of those. Parked
// frames stay until memory is needed (evictIdleLocked).
func (a *Archive) cacheLocked(fb *frameBuf) {
	fb.cached = true
	fb.refs++
	a.cache = append(a.cache, fb)
	loose := 0
	for _, c := range a.cache {
		if c.parked == 0 {
			loose++
		}
	}
	for k := 0; loose > archiveCache && k < len(a.cache); {
		if c := a.cache[k]; c.parked == 0 && c != fb {
			a.uncacheLocked(k)
			loose--
			continue
		}
		k++
	}
}

// touchLocked makes the cached fb the most recent.
func (a *Archive) touchLocked(fb *frameBuf) {
	for k, c := range a.cache {
		if c == fb {
			copy(a.cache[k:], a.cache[k+1:])
			a.cache[len(a.cache)-1] = fb
			return
		}
	}
}

// uncacheLocked drops cache entry k.
func (a *Archive) uncacheLocked(k int) {
	fb := a.cache[k]
	a.cache = append(a.cache[:k], a.cache[k+1:]...)
	fb.cached = false
	a.releaseLocked(fb)
}

// evictIdleLocked drops the least recent cached frame that nothing pins,
// one no open reader parked first (only such a one unless parkedToo);
// false when there is none.
func (a *Archive) evictIdleLocked(parkedToo bool) bool {
	for _, parked := range []bool{false, true} {
		if parked && !parkedToo {
			break
		}
		for k, fb := range a.cache {
			if fb.refs == 1 && (fb.parked > 0) == parked {
				a.uncacheLocked(k)
				return true
			}
		}
	}
	return false
}

// pinParked pins fb, a frame a reader parked, if its bytes are still
// there (nothing dropped it since); the caller releases it.
func (a *Archive) pinParked(fb *frameBuf) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if fb.refs == 0 || fb.err != nil || fb.buf == nil {
		return false
	}
	fb.refs++
	if fb.cached {
		a.touchLocked(fb)
	}
	return true
}

// park turns the caller's pin of fb into a mark that an open reader will
// read it again: it stays cached while memory allows, but any read that
// needs its buffer may drop it.
func (a *Archive) park(fb *frameBuf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fb.parked++
	a.releaseLocked(fb)
}

// unpark drops a reader's mark on fb (see park).
func (a *Archive) unpark(fb *frameBuf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fb.parked--
}

// getBufs returns n buffers of the pool's size, waiting while the pool is
// exhausted (cached frames that nothing pins are dropped first). spare
// drops no frame an open reader parked and, rather than wait, returns
// errNoSpare.
func (a *Archive) getBufs(ctx context.Context, n int, spare bool) ([][]byte, error) {
	for {
		a.mu.Lock()
		m := &a.mem
		for len(m.free)+m.max-m.count < n && a.evictIdleLocked(!spare) {
		}
		if len(m.free)+m.max-m.count >= n {
			out := make([][]byte, 0, n)
			for len(out) < n && len(m.free) > 0 {
				out = append(out, m.free[len(m.free)-1])
				m.free = m.free[:len(m.free)-1]
			}
			fresh := n - len(out)
			m.count += fresh
			a.mu.Unlock()
			for range fresh {
				out = append(out, make([]byte, m.size))
			}
			return out, nil
		}
		wake := m.wake
		a.mu.Unlock()
		if spare {
			return nil, errNoSpare
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-a.closing:
			return nil, errArchiveClosed
		}
	}
}

// putBufLocked returns a buffer to the pool and wakes the callers waiting
// for one.
func (a *Archive) putBufLocked(b []byte) {
	a.mem.free = append(a.mem.free, b[:cap(b)])
	a.wakeLocked()
}

// wakeLocked wakes the callers waiting for buffers, to look again.
func (a *Archive) wakeLocked() {
	close(a.mem.wake)
	a.mem.wake = make(chan struct{})
}

// load reads frame i with two buffers from the pool (its compressed and
// its decoded bytes), checks its compressed bytes against the signed
// sha256 and decodes it. It returns the decoded frame and the buffer it
// lives in; the other buffer goes back to the pool.
func (a *Archive) load(ctx context.Context, i int, spare bool) (buf, data []byte, err error) {
	bufs, err := a.getBufs(ctx, 2, spare)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		a.mu.Lock()
		a.putBufLocked(bufs[0])
		if err != nil {
			a.putBufLocked(bufs[1])
		}
		a.mu.Unlock()
	}()
	fr := a.head.Frames.Frames[i]
	raw := bufs[0][:fr.Size]
	if err := a.readBody(fr.Offset, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = malformed("the file ends inside this frame (truncated copy?)")
		}
		return nil, nil, &FrameError{Frame: i, Offset: fr.Offset, Err: err}
	}
	if err := a.checkFrameHash(i, raw); err != nil {
		return nil, nil, err
	}
	data, err = decodeFrame(a.dec, raw, fr.UncompressedSize, bufs[1])
	if err != nil {
		return nil, nil, a.frameError(i, err)
	}
	return bufs[1], data, nil
}

// goAhead counts a goroutine of the Archive's readers or checks, unless
// the Archive is closing (false).
func (a *Archive) goAhead() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.goAheadLocked()
}

func (a *Archive) goAheadLocked() bool {
	select {
	case <-a.closing:
		return false
	default:
		a.ahead.Add(1)
		return true
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
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
// io.EOF, if the bytes do not match, and the Archive remembers the outcome
// (see CheckBlob). A body blob known to fail its digest is not opened: Open
// returns that failure, for any range.
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
	if done, err := a.BlobChecked(digest); done && err != nil {
		return nil, err
	}
	e := a.head.layout.Entries[a.blobs[digest]]
	r := a.newBlobReader(ctx, e.Data+off, e.Data+off+n)
	if off == 0 && n == d.Size {
		cr, err := checked.NewReader(r, d.Digest, d.Size)
		if err != nil {
			r.Close()
			return nil, err
		}
		return &wholeBlob{a: a, digest: digest, cr: cr, r: r}, nil
	}
	return r, nil
}

// wholeBlob reads a whole body blob through the verifying reader and
// records the outcome of its check.
type wholeBlob struct {
	a      *Archive
	digest string
	cr     *checked.Reader
	r      *blobReader
}

func (w *wholeBlob) Read(p []byte) (int, error) {
	n, err := w.cr.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		w.a.recordCheck(w.digest, nil)
	default:
		err = w.a.blobError(w.digest, err)
		if signersFault(err) {
			w.a.recordCheck(w.digest, err)
		}
	}
	return n, err
}

func (w *wholeBlob) Close() error { return w.r.Close() }

// blobError classes a failed read of blob digest: a digest or size
// mismatch is an integrity failure of that blob.
func (a *Archive) blobError(digest string, err error) error {
	var me *checked.MismatchError
	if errors.As(err, &me) && !errors.Is(err, ErrIntegrity) {
		return &EntryError{Stage: "body", Entry: blobName(digest), Err: fmt.Errorf("%w: %w", ErrIntegrity, err)}
	}
	return err
}

// signersFault reports whether err, from a whole read of a blob, says the
// signed bundle itself is wrong about the blob: its bytes do not match its
// digest or size although every frame matched its signed sha256. Only such
// a failure is the same on every read and remembered; a frame that fails
// its sha256 or does not decode, a short file, an I/O error are the copy
// being read (a file changed or damaged while served, a flaky device) and
// are checked again on the next read.
func signersFault(err error) bool {
	var me *checked.MismatchError
	return errors.As(err, &me)
}

// recordCheck remembers the outcome of a whole read of blob digest: nil or
// a failure signersFault accepts.
func (a *Archive) recordCheck(digest string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.checked[digest]; ok && prev != nil {
		return // a failure stays
	}
	a.checked[digest] = err
}

// BlobChecked reports whether blob digest is known to match its digest
// (done, nil) or known to fail it (done, why: its frames matched the signed
// frame index and the blob did not match its digest), from a whole read of
// it by Open or CheckBlob since the Archive was opened. Head blobs are
// checked with the head.
func (a *Archive) BlobChecked(digest string) (done bool, err error) {
	if _, ok := a.head.Blobs[digest]; ok {
		return true, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	err, done = a.checked[digest]
	return done, err
}

// blobCheck is a check of one blob in progress, shared by its waiters.
type blobCheck struct {
	done chan struct{}
	err  error
}

// CheckBlob reads body blob digest whole and checks it against its digest,
// once for the Archive's life: the outcome is remembered (a match, or a
// mismatch of a blob whose frames all matched the signed frame index; not
// a read that failed because the file could not be read or changed), and
// concurrent callers share one read. It returns nil when the blob matches,
// an error wrapping ErrIntegrity when it does not (or when a frame fails
// its signed sha256; ErrMalformed when one does not decode), and ctx's
// error when ctx ends first.
//
// A check, once started, runs to its end even when every caller has gone
// (only Close stops it), so a caller that gives up and asks again joins
// it instead of starting over: a large blob gets checked even for callers
// with short timeouts. At most checkParallel (2) checks read at once;
// others wait for their turn.
func (a *Archive) CheckBlob(ctx context.Context, digest string) error {
	if _, ok := a.Lookup(digest); !ok {
		return fmt.Errorf("%w: %s is not in the bundle", ErrMalformed, digest)
	}
	if done, err := a.BlobChecked(digest); done {
		return err
	}
	a.mu.Lock()
	c := a.checks[digest]
	if c == nil {
		if !a.goAheadLocked() {
			a.mu.Unlock()
			return errArchiveClosed
		}
		c = &blobCheck{done: make(chan struct{})}
		a.checks[digest] = c
		go a.runCheck(digest, c)
	}
	a.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCheck is the goroutine of check c of blob digest (counted in ahead).
func (a *Archive) runCheck(digest string, c *blobCheck) {
	defer a.ahead.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-a.closing:
			cancel()
		case <-stop:
		}
	}()
	// Closed unless the blob is read: a check that leaves its queue
	// because the Archive closes has matched nothing.
	err := errArchiveClosed
	select {
	case a.checkSlots <- struct{}{}:
		err = a.readWhole(ctx, digest)
		<-a.checkSlots
	case <-a.closing:
	}
	if ctx.Err() != nil {
		err = errArchiveClosed // only Close cancels a check
	}
	a.mu.Lock()
	c.err = err
	if a.checks[digest] == c {
		delete(a.checks, digest)
	}
	close(c.done)
	a.mu.Unlock()
}

// readWhole reads blob digest whole through Open, which checks and
// records it.
func (a *Archive) readWhole(ctx context.Context, digest string) error {
	rc, err := a.Open(ctx, digest, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// blobReader reads uncompressed body bytes [pos, end) frame by frame. It
// pins a frame only while a Read copies out of it; between Reads the frame
// it reads from is parked (kept while memory allows, see park), so that a
// caller that writes each chunk to a slow client holds no buffer while it
// does. When the bytes span several frames, the next one is read, checked
// and decoded ahead on another core (one frame ahead, loaded in order,
// parked too), while the caller consumes the current one.
type blobReader struct {
	ctx      context.Context
	cancel   context.CancelFunc
	a        *Archive
	pos, end int64
	ahead    chan *aheadFrame // frames after the first, in order
	cur      *aheadFrame      // the frame being read from, with read-ahead
	held     *frameBuf        // the frame being read from (parked), without
	closed   bool
}

type aheadFrame struct {
	i    int
	fb   *frameBuf // parked, when err is nil; nil when no spare buffers
	err  error
	done chan struct{}
	// reached is closed by the reader once it has frame i (or failed to
	// get it): only then is the frame after it loaded ahead, so that a
	// read ahead never takes the buffers of the frame its reader is
	// loading itself.
	reached     chan struct{}
	reachedOnce bool // (the reader's)
}

// readAhead bounds the frames one reader keeps: the one being consumed and
// the next, decoded meanwhile on another core.
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
	if !a.goAhead() {
		return r // closed: reads fail
	}
	r.ahead = make(chan *aheadFrame, readAhead-1)
	go func() {
		defer a.ahead.Done()
		defer close(r.ahead)
		// One frame at a time, in order: a frame's buffers are taken only
		// once the one before it is decoded, so a reader never holds
		// buffers while it waits for the pool.
		var prev *aheadFrame
		for i := first; i <= last; i++ {
			f := &aheadFrame{i: i, done: make(chan struct{}), reached: make(chan struct{})}
			select {
			case r.ahead <- f:
			case <-ctx.Done():
				return
			case <-a.closing:
				return
			}
			if prev != nil {
				select {
				case <-prev.reached:
				case <-ctx.Done():
				case <-a.closing:
				}
			}
			prev = f
			f.fb, f.err = a.acquire(ctx, i, true)
			switch {
			case f.err == nil:
				a.park(f.fb)
			case errors.Is(f.err, errNoSpare):
				f.fb, f.err = nil, nil // the reader loads it when it gets there
			}
			close(f.done)
			if f.err != nil {
				return
			}
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
	fb, err := r.pin(i)
	if err != nil {
		return 0, err
	}
	fr := r.a.head.Frames.Frames[i]
	from := r.pos - fr.UncompressedOffset
	to := min(int64(len(fb.data)), r.end-fr.UncompressedOffset)
	k := copy(p, fb.data[from:to])
	r.a.release(fb)
	r.pos += int64(k)
	return k, nil
}

// pin returns frame i pinned for one copy: the frame the reader parked
// if it is still kept, else loaded again (and parked in its place).
func (r *blobReader) pin(i int) (*frameBuf, error) {
	fb, err := r.pinFrame(i)
	if f := r.cur; f != nil && !f.reachedOnce {
		f.reachedOnce = true
		close(f.reached)
	}
	return fb, err
}

func (r *blobReader) pinFrame(i int) (*frameBuf, error) {
	slot := &r.held
	if r.ahead != nil {
		for r.cur == nil || r.cur.i != i {
			if r.cur != nil {
				// Done with it: it may be dropped for the frames ahead.
				if r.cur.fb != nil {
					r.a.unpark(r.cur.fb)
				}
				r.cur = nil
			}
			f, ok := <-r.ahead
			if !ok {
				if err := r.ctx.Err(); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("frame %d: read ahead ended early", i)
			}
			r.cur = f
			select {
			case <-f.done:
			case <-r.ctx.Done():
				return nil, r.ctx.Err()
			}
		}
		if r.cur.err != nil {
			return nil, r.cur.err
		}
		slot = &r.cur.fb
	} else if r.held != nil && r.held.i != i {
		r.a.unpark(r.held)
		r.held = nil
	}
	if fb := *slot; fb != nil && r.a.pinParked(fb) {
		return fb, nil
	}
	// Dropped for another read (or never loaded): load it again.
	fb, err := r.a.acquire(r.ctx, i, false)
	if err != nil {
		return nil, err
	}
	r.a.mu.Lock()
	if old := *slot; old != nil {
		old.parked--
	}
	fb.parked++
	r.a.mu.Unlock()
	*slot = fb
	return fb, nil
}

// Close stops the frames read ahead and drops the reader's marks on the
// frames it kept (a frame being decoded for it is finished first).
func (r *blobReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	if r.held != nil {
		r.a.unpark(r.held)
		r.held = nil
	}
	if r.ahead == nil {
		return nil
	}
	// Frames still being decoded for the reader are waited for (at most
	// one decode: the others see the cancelled context).
	for f := r.cur; ; {
		if f != nil {
			<-f.done
			if f.fb != nil && f.err == nil {
				r.a.unpark(f.fb)
			}
		}
		var ok bool
		if f, ok = <-r.ahead; !ok {
			break
		}
	}
	r.cur = nil
	return nil
}
