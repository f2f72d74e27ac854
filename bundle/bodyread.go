package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// FrameError names the frame of a v2 body a problem was found in, and
// where that frame lies, so that a volume can be named from it.
type FrameError struct {
	Frame  int
	Offset int64 // compressed offset from the start of the body
	Volume int   // the volume holding the frame; 0 for a single file
	Err    error
}

func (e *FrameError) Error() string {
	if e.Volume > 0 {
		return fmt.Sprintf("body frame %d (body byte %d, in volume %d): %v", e.Frame, e.Offset, e.Volume, e.Err)
	}
	return fmt.Sprintf("body frame %d (body byte %d): %v", e.Frame, e.Offset, e.Err)
}

// volumeOf returns the number of the volume holding body byte off, 0 when
// the bundle is one file.
func volumeOf(fi *FrameIndex, off int64) int {
	for _, v := range fi.Volumes {
		if off >= v.Offset && off < v.Offset+v.Size {
			return v.Number
		}
	}
	return 0
}

func (e *FrameError) Unwrap() error { return e.Err }

// newFrameDecoder returns a decoder for independent body frames: windows up
// to MaxWindow, output up to MaxFrameSize and never more than the capacity
// decodeFrame gives it (the frame's indexed size), usable from workers
// goroutines. It does not check the frames' xxhash64 (docs/format.md
// §18.5): every reader checks a frame's compressed bytes against its signed
// sha256 before decoding it, and every byte a frame decodes to is compared
// with the layout or hashed against its blob digest, so the xxhash adds
// time and no check.
func newFrameDecoder(workers int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers), zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(MaxFrameSize),
		zstd.WithDecodeAllCapLimit(true), zstd.IgnoreChecksum(true))
}

// frameHashError checks raw, the compressed bytes of a frame, against the
// frame's signed sha256.
func frameHashError(fr FrameRecord, raw []byte) error {
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != fr.SHA256 {
		return fmt.Errorf("%w: compressed bytes hash to %s, the signed frame index says %s", ErrIntegrity, got, fr.SHA256)
	}
	return nil
}

// decodeFrame checks that raw is exactly one zstd frame within the format's
// limits (no dictionary, no skippable frame, window at most MaxWindow) and
// decodes it into dst, which must come out at exactly want bytes. The
// decoder stops at want+1 bytes, so a frame that would decode to more (a
// decompression bomb) costs no more memory than one that is as indexed.
func decodeFrame(dec zstdDecoder, raw []byte, want int64, dst []byte) ([]byte, error) {
	s, err := scanFrames(raw, 1, MaxWindow, "frame")
	if err != nil {
		return nil, err
	}
	if s.frames != 1 || !s.atFrameBoundary() {
		return nil, malformed("not exactly one zstd frame")
	}
	if int64(cap(dst)) <= want {
		dst = make([]byte, 0, want+1)
	}
	out, err := dec.DecodeAll(raw, dst[:0:want+1])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, malformed("decodes to more than the %d bytes the frame index says", want)
	}
	if err != nil {
		return nil, malformed("zstd: %v", err)
	}
	if int64(len(out)) != want {
		return nil, malformed("decodes to %d bytes, the frame index says %d", len(out), want)
	}
	return out, nil
}

// frameStream is the uncompressed body of a v2 bundle read front to back:
// frames are read in order from r and decoded on several cores, and their
// bytes come out in order. Memory is bounded by the frames in flight.
type frameStream struct {
	cancel context.CancelFunc
	out    chan *streamFrame
	cur    []byte
	held   []byte // the decoded frame cur points into, recycled once read
	err    error
	closed bool
	bufs   sync.Pool // frame buffers (*[]byte), compressed and decoded
}

// buf returns a buffer of n bytes from the pool.
func (fs *frameStream) buf(n int64) []byte {
	if b, ok := fs.bufs.Get().(*[]byte); ok && int64(cap(*b)) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func (fs *frameStream) recycle(b []byte) {
	if cap(b) > 0 {
		fs.bufs.Put(&b)
	}
}

type streamFrame struct {
	data []byte
	err  error
	done chan struct{}
}

// streamWorkers bounds the frames a sequential reader decodes at once.
func streamWorkers() int { return min(max(runtime.GOMAXPROCS(0), 1), 8) }

func newFrameStream(r scanSource, fi *FrameIndex) (*frameStream, error) {
	frames := fi.Frames
	workers := streamWorkers()
	dec, err := newFrameDecoder(workers)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	fs := &frameStream{cancel: cancel, out: make(chan *streamFrame, workers+1)}
	work := make(chan func(), workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				f()
			}
		}()
	}
	go func() {
		wg.Wait()
		dec.Close()
	}()
	go func() {
		defer close(fs.out)
		defer close(work)
		for i, fr := range frames {
			sf := &streamFrame{done: make(chan struct{})}
			raw := fs.buf(fr.Size)
			if _, err := io.ReadFull(r, raw); err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					err = malformed("the body ends inside this frame (truncated copy?)")
				}
				sf.err = &FrameError{Frame: i, Offset: fr.Offset, Volume: volumeOf(fi, fr.Offset), Err: err}
				close(sf.done)
				select {
				case fs.out <- sf:
				case <-ctx.Done():
				}
				return
			}
			select {
			case fs.out <- sf:
			case <-ctx.Done():
				return
			}
			i, fr := i, fr
			select {
			case work <- func() {
				defer close(sf.done)
				err := frameHashError(fr, raw)
				var data []byte
				if err == nil {
					data, err = decodeFrame(dec, raw, fr.UncompressedSize, fs.buf(fr.UncompressedSize+1))
				}
				fs.recycle(raw)
				if err != nil {
					sf.err = &FrameError{Frame: i, Offset: fr.Offset, Volume: volumeOf(fi, fr.Offset), Err: err}
					return
				}
				sf.data = data
			}:
			case <-ctx.Done():
				return
			}
		}
		// Nothing may follow the last frame.
		if b, err := r.Peek(1); len(b) > 0 {
			sf := &streamFrame{err: malformed("%v: after the last frame of the index", errTrailing), done: make(chan struct{})}
			close(sf.done)
			select {
			case fs.out <- sf:
			case <-ctx.Done():
			}
		} else if err != nil && err != io.EOF {
			sf := &streamFrame{err: err, done: make(chan struct{})}
			close(sf.done)
			select {
			case fs.out <- sf:
			case <-ctx.Done():
			}
		}
	}()
	return fs, nil
}

func (fs *frameStream) Read(p []byte) (int, error) {
	for len(fs.cur) == 0 {
		if fs.held != nil {
			fs.recycle(fs.held)
			fs.held = nil
		}
		if fs.err != nil {
			return 0, fs.err
		}
		sf, ok := <-fs.out
		if !ok {
			fs.err = io.EOF
			continue
		}
		<-sf.done
		if sf.err != nil {
			fs.err = sf.err
			return 0, fs.err
		}
		fs.cur, fs.held = sf.data, sf.data
	}
	n := copy(p, fs.cur)
	fs.cur = fs.cur[n:]
	return n, nil
}

// Close stops the producer; frames in flight are dropped.
func (fs *frameStream) Close() {
	if !fs.closed {
		fs.closed = true
		fs.cancel()
	}
}

// v2Body walks a v2 body in the layout's order.
type v2Body struct {
	l      *bodyLayout
	stream *frameStream
	k      int   // next entry
	pad    int64 // padding left to read after the current entry
	hdr    []byte
}

// next returns the next entry's checked reader, or io.EOF after checking
// the end-of-archive marker and the end of the stream.
func (b *v2Body) next() (*Descriptor, io.Reader, error) {
	if b.pad > 0 {
		if err := b.zeros(b.pad, "padding after "+blobName(b.l.Entries[b.k-1].Desc.Digest)); err != nil {
			return nil, nil, err
		}
		b.pad = 0
	}
	if b.k == len(b.l.Entries) {
		if err := b.zeros(endOfArchive, "the end-of-archive marker"); err != nil {
			return nil, nil, err
		}
		var one [1]byte
		if n, err := b.stream.Read(one[:]); n > 0 {
			return nil, nil, malformed("%v: data after the end of the tar archive", errTrailing)
		} else if err != io.EOF {
			return nil, nil, err
		}
		return nil, nil, io.EOF
	}
	e := b.l.Entries[b.k]
	want, err := b.l.header(&e)
	if err == nil && int64(len(want)) != e.Data-e.Start {
		err = fmt.Errorf("internal error: a %d-byte tar header where the layout has %d", len(want), e.Data-e.Start)
	}
	if err != nil {
		return nil, nil, &EntryError{Entry: blobName(e.Desc.Digest), Err: err}
	}
	if cap(b.hdr) < len(want) {
		b.hdr = make([]byte, len(want))
	}
	hdr := b.hdr[:len(want)]
	if _, err := io.ReadFull(b.stream, hdr); err != nil {
		return nil, nil, b.short(err, "the tar header of "+blobName(e.Desc.Digest))
	}
	if !bytes.Equal(hdr, want) {
		return nil, nil, &EntryError{Entry: blobName(e.Desc.Digest), Err: malformed("tar header at body byte %d is not the one the layout gives (another entry, size, time or format)", e.Start)}
	}
	b.k++
	b.pad = e.End - e.Data - e.Desc.Size
	return &b.l.Entries[b.k-1].Desc, io.LimitReader(b.stream, e.Desc.Size), nil
}

func (b *v2Body) zeros(n int64, what string) error {
	buf := make([]byte, n)
	if _, err := io.ReadFull(b.stream, buf); err != nil {
		return b.short(err, what)
	}
	for _, c := range buf {
		if c != 0 {
			return malformed("%s holds data; it must be zeros", what)
		}
	}
	return nil
}

func (b *v2Body) short(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("the body ends inside %s (truncated copy?)", what)
	}
	return err
}
