package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/ctxio"
)

// frameSink receives the compressed frames of the body in order.
type frameSink interface {
	frame(b []byte) error
}

// frameJob is one frame on its way from the tar stream to the sink.
type frameJob struct {
	raw  []byte
	out  []byte
	sum  string
	err  error
	done chan struct{}
}

// encodeBody writes the body blobs as the layout l says, cutting the tar
// stream into l's frames and compressing them on every core; each frame is
// compressed on its own (EncodeAll), so the bytes do not depend on how many
// goroutines did it. It fills in the frames' compressed offsets, sizes and
// digests and hands the frames to sink in order.
func (w *Writer) encodeBody(ctx context.Context, l *bodyLayout, sink frameSink, opts WriteOptions) ([]FrameRecord, error) {
	workers := max(runtime.GOMAXPROCS(0), 1)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(opts.Level.zstd()),
		zstd.WithEncoderConcurrency(workers),
		zstd.WithWindowSize(WriterWindow),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()

	frames := make([]FrameRecord, len(l.Frames))
	copy(frames, l.Frames)
	g, gctx := errgroup.WithContext(ctx)
	// At most about 2*workers+1 frames are in flight (being filled,
	// compressed, or waiting their turn); their buffers are reused.
	todo := make(chan *frameJob, workers)
	inOrder := make(chan *frameJob, workers)
	free := make(chan []byte, 2*workers+2)
	outs := make(chan []byte, 2*workers+2)
	for range workers {
		g.Go(func() error {
			for j := range todo {
				var dst []byte
				select {
				case dst = <-outs:
				default:
				}
				j.out = enc.EncodeAll(j.raw, dst[:0])
				sum := sha256.Sum256(j.out)
				j.sum = "sha256:" + hex.EncodeToString(sum[:])
				close(j.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		var off int64
		for i := 0; ; i++ {
			var j *frameJob
			select {
			case j = <-inOrder:
			case <-gctx.Done():
				return gctx.Err()
			}
			if j == nil {
				if i != len(frames) {
					return fmt.Errorf("bundle writer: %d frames written, %d planned", i, len(frames))
				}
				return nil
			}
			select {
			case <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if j.err != nil {
				return j.err
			}
			frames[i].Offset, frames[i].Size, frames[i].SHA256 = off, int64(len(j.out)), j.sum
			off += int64(len(j.out))
			if err := sink.frame(j.out); err != nil {
				return err
			}
			select {
			case free <- j.raw[:0]:
			default:
			}
			select {
			case outs <- j.out[:0]:
			default:
			}
		}
	})
	g.Go(func() error {
		defer close(inOrder)
		defer close(todo)
		c := &frameCutter{ctx: gctx, sizes: l.Frames, free: free, send: func(j *frameJob) error {
			select {
			case inOrder <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			select {
			case todo <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			return nil
		}}
		return w.fillBody(gctx, l, c, opts)
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return frames, nil
}

// fillBody writes the body's tar stream (headers, checked blob bytes,
// padding, the end-of-archive marker) into c.
func (w *Writer) fillBody(ctx context.Context, l *bodyLayout, c *frameCutter, opts WriteOptions) error {
	prog := opts.Progress
	const writeID = "write"
	if prog != nil {
		prog.Start(writeID, "write bundle", w.manifest.Totals.BodyBytes)
		defer prog.Done(writeID)
	}
	var zeros [endOfArchive]byte
	buf := make([]byte, 1<<20)
	for i, b := range w.body {
		e := l.Entries[i]
		hdr, err := l.header(&e)
		if err == nil && int64(len(hdr)) != e.Data-e.Start {
			err = fmt.Errorf("internal error: a %d-byte tar header where the layout has %d", len(hdr), e.Data-e.Start)
		}
		if err != nil {
			return err
		}
		if _, err := c.Write(hdr); err != nil {
			return err
		}
		if err := copyBlob(ctx, c, b, prog, writeID, buf); err != nil {
			return err
		}
		if pad := e.End - e.Data - b.Size; pad > 0 {
			if _, err := c.Write(zeros[:pad]); err != nil {
				return err
			}
		}
		if opts.Written != nil {
			opts.Written(b)
		}
	}
	if _, err := c.Write(zeros[:]); err != nil {
		return err
	}
	return c.finish()
}

// copyBlob copies one body blob into dst, checking it against its digest
// unless it was already checked in this run.
func copyBlob(ctx context.Context, dst io.Writer, b *BodyBlob, prog Progress, id string, buf []byte) error {
	if b.Open == nil {
		return fmt.Errorf("blob %s of %s: no opener", b.Digest, b.Label)
	}
	rc, err := b.Open(ctx)
	if err != nil {
		return &BlobError{Label: b.Label, Digest: b.Digest, Err: err}
	}
	defer rc.Close()
	var src io.Reader
	var cr *checked.Reader
	if b.Verified {
		src = io.LimitReader(ctxio.Reader(ctx, rc), b.Size)
	} else if cr, err = checked.NewReader(ctxio.Reader(ctx, rc), b.Digest, b.Size); err != nil {
		return &BlobError{Label: b.Label, Digest: b.Digest, Err: err}
	} else {
		src = cr
	}
	n, err := io.CopyBuffer(dst, WithProgress(src, prog, id), buf)
	if err == nil && n != b.Size {
		err = fmt.Errorf("%w: %d of %d bytes", checked.ErrSizeMismatch, n, b.Size)
	}
	if err == nil && cr != nil {
		err = cr.Verify()
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, context.Canceled) || errors.Is(err, errCutter) {
			return err
		}
		return &BlobError{Label: b.Label, Digest: b.Digest, Err: wrapIntegrity(err)}
	}
	return nil
}

// errCutter marks a failure of the frame pipeline (not of a blob's source).
var errCutter = errors.New("bundle writer: frame pipeline stopped")

// frameCutter is the io.Writer the tar stream goes into: it fills buffers of
// exactly the planned frame sizes and sends each full one on.
type frameCutter struct {
	ctx   context.Context
	sizes []FrameRecord
	free  chan []byte
	send  func(*frameJob) error
	i     int
	cur   []byte
}

func (c *frameCutter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if c.i >= len(c.sizes) {
			return written, fmt.Errorf("%w: more bytes than the %d planned frames hold", errCutter, len(c.sizes))
		}
		want := int(c.sizes[c.i].UncompressedSize)
		if c.cur == nil {
			select {
			case b := <-c.free:
				c.cur = b
			default:
				c.cur = make([]byte, 0, want)
			}
		}
		n := min(len(p), want-len(c.cur))
		c.cur = append(c.cur, p[:n]...)
		p = p[n:]
		written += n
		if len(c.cur) == want {
			j := &frameJob{raw: c.cur, done: make(chan struct{})}
			c.cur = nil
			c.i++
			if err := c.send(j); err != nil {
				return written, fmt.Errorf("%w: %w", errCutter, err)
			}
		}
	}
	return written, nil
}

func (c *frameCutter) finish() error {
	if c.i != len(c.sizes) || len(c.cur) != 0 {
		return fmt.Errorf("bundle writer: the tar stream filled %d of %d frames", c.i, len(c.sizes))
	}
	return nil
}

// bodyDescriptors lists the body blobs in write order.
func (w *Writer) bodyDescriptors() []Descriptor {
	out := make([]Descriptor, len(w.body))
	for i, b := range w.body {
		out[i] = b.Descriptor
	}
	return out
}

// placeholderHex is a deterministic stand-in for a digest not known yet,
// as hard to compress as a real one.
func placeholderHex(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(s[:])
}
