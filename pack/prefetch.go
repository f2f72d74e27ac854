package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/ctxio"
	"github.com/airlock-dev/airlock/internal/diskspace"
)

// Defaults of the prefetcher.
const (
	// DefaultPrefetchMemory is Options.PrefetchMemory's default: how many
	// bytes of blobs pulled ahead of the writer are held in memory.
	DefaultPrefetchMemory = 32 << 20
	// prefetchChunk is the unit in which pulled bytes are held in memory.
	prefetchChunk = 1 << 20
	// prefetchHeadCap bounds the bytes of the blob the writer is reading
	// that are held in memory beyond the budget: the writer drains them.
	prefetchHeadCap = 4 * prefetchChunk
	// defaultPrefetchPause is how long a pull ahead of the writer waits for
	// memory before it continues into a spool file, so that no connection
	// sits idle for long.
	defaultPrefetchPause = 5 * time.Second
)

// prefetchOptions configures a prefetcher.
type prefetchOptions struct {
	jobs   int           // pulls at once besides the one the writer reads
	memory int64         // bytes held in memory ahead of the writer; < 0: none
	dir    string        // where spool files go
	pause  time.Duration // wait for memory this long before spooling
}

// prefetcher pulls body blobs from expensive sources (registries,
// on-the-fly compression) in the order the writer consumes them: the blob
// the writer reads streams through, and up to jobs blobs after it are
// pulled ahead into memory. When memory is full, a pull ahead waits for the
// writer to free some; if none frees within pause, the rest of that blob
// goes to a spool file, so that a connection never stalls for long. Bytes
// are not hashed here: the writer checks each blob's digest once, as it
// writes it.
type prefetcher struct {
	opts   prefetchOptions
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	cond    *sync.Cond
	slots   []*slot
	next    int // first slot not yet considered for starting
	head    int // slot the writer reads, -1 before the first
	running int // pulls in flight other than the head's
	mem     int64
	free    [][]byte // chunks to reuse
	stats   PullStats
	wg      sync.WaitGroup
}

// slot is one blob's pull and what it has delivered.
type slot struct {
	i    int
	blob *bundle.BodyBlob
	open func(context.Context) (io.ReadCloser, error)

	started, done, closed bool
	stop                  context.CancelFunc
	err                   error
	chunks                [][]byte // delivered, unread bytes in memory
	off                   int      // bytes of chunks[0] already read
	memLen                int64    // bytes [0, memLen) went to memory
	n                     int64    // bytes delivered
	read                  int64    // bytes the writer has read
	file                  *os.File // bytes [memLen, n) once spooling began
	pauseOver             bool
}

// newPrefetcher routes every blob of body for which fetch reports true
// through a prefetcher. ctx bounds all pulls; they stop when it ends or
// when close is called. A failed pull cancels ctx's derived context with
// an error naming the blob, which cause returns.
func newPrefetcher(ctx context.Context, body []*bundle.BodyBlob, fetch func(*bundle.BodyBlob) bool, opts prefetchOptions) (*prefetcher, context.Context) {
	if opts.jobs <= 0 {
		opts.jobs = 4
	}
	if opts.pause <= 0 {
		opts.pause = defaultPrefetchPause
	}
	ctx, cancel := context.WithCancelCause(ctx)
	p := &prefetcher{opts: opts, cancel: cancel, head: -1}
	p.cond = sync.NewCond(&p.mu)
	for _, b := range body {
		if !fetch(b) {
			continue
		}
		s := &slot{i: len(p.slots), blob: b, open: b.Open}
		p.slots = append(p.slots, s)
		b.Open = func(context.Context) (io.ReadCloser, error) { return p.openSlot(ctx, s) }
	}
	context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	p.mu.Lock()
	p.schedule(ctx)
	p.mu.Unlock()
	return p, ctx
}

// close stops every pull, waits for them, and removes the spool files.
func (p *prefetcher) close() PullStats {
	p.cancel(context.Canceled)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slots {
		s.closed = true
		p.release(s)
	}
	return p.stats
}

// schedule starts pulls in write order while fewer than jobs run, none is
// more than jobs blobs ahead of the writer, and memory is not full. Called
// with mu held.
func (p *prefetcher) schedule(ctx context.Context) {
	for p.next < len(p.slots) && p.running < p.opts.jobs {
		s := p.slots[p.next]
		if s.started {
			p.next++
			continue
		}
		if s.i > p.head+p.opts.jobs {
			return // at most jobs blobs ahead of the writer, whether in memory or spooled
		}
		if p.opts.memory >= 0 && p.mem >= p.opts.memory {
			return // the writer frees memory as it reads; schedule runs again then
		}
		p.start(ctx, s, false)
		p.next++
	}
}

// start pulls s in its own goroutine. Called with mu held.
func (p *prefetcher) start(ctx context.Context, s *slot, asHead bool) {
	s.started = true
	if !asHead {
		p.running++
	}
	p.stats.Blobs++
	sctx, stop := context.WithCancel(ctx)
	s.stop = stop
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer stop()
		err := p.pull(sctx, s)
		p.mu.Lock()
		defer p.mu.Unlock()
		s.done = true
		if err != nil && !s.closed {
			s.err = err
			p.cancel(err)
		}
		if !asHead {
			p.running--
		}
		if s.closed {
			p.release(s)
		}
		p.schedule(ctx)
		p.cond.Broadcast()
	}()
}

// pullError names the blob whose pull failed.
func pullError(b *bundle.BodyBlob, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return &SourceError{Artifact: b.Label, Err: fmt.Errorf("blob %s: %w", b.Digest, err)}
}

// pull copies s's bytes from its source into memory and, once spooling
// began, into its spool file. It reads at most Size+1 bytes, so that the
// writer sees a source that sends too much.
func (p *prefetcher) pull(ctx context.Context, s *slot) error {
	rc, err := s.open(ctx)
	if err != nil {
		return pullError(s.blob, err)
	}
	defer rc.Close()
	src := io.LimitReader(ctxio.Reader(ctx, rc), s.blob.Size+1)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var spool []byte
	for {
		p.mu.Lock()
		toMemory := s.file == nil
		for toMemory && !s.closed && ctx.Err() == nil && !p.mayHold(s) {
			if p.opts.memory < 0 || s.pauseOver {
				toMemory = false
				break
			}
			if timer == nil {
				timer = time.AfterFunc(p.opts.pause, func() {
					p.mu.Lock()
					s.pauseOver = true
					p.cond.Broadcast()
					p.mu.Unlock()
				})
			}
			p.cond.Wait()
		}
		if s.closed || ctx.Err() != nil {
			p.mu.Unlock()
			return ctx.Err()
		}
		var buf []byte
		if toMemory {
			buf = p.takeChunk()
			if timer != nil {
				timer.Stop()
				timer, s.pauseOver = nil, false
			}
		}
		p.mu.Unlock()

		if toMemory {
			n, err := readChunk(src, buf)
			p.mu.Lock()
			if n > 0 && !s.closed {
				s.chunks = append(s.chunks, buf[:n])
				s.memLen += int64(n)
				s.n += int64(n)
			} else {
				p.giveChunk(buf)
			}
			p.cond.Broadcast()
			p.mu.Unlock()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return pullError(s.blob, fmt.Errorf("the source stopped after %d of %d bytes: %w", s.n, s.blob.Size, err))
			}
			continue
		}

		if s.file == nil {
			f, err := os.CreateTemp(p.opts.dir, "blob-")
			if err != nil {
				return diskspace.Check(err, "holding pulled blobs ahead of the writer (one was "+s.blob.Digest+")", filepath.Join(p.opts.dir, "blob"), s.blob.Size)
			}
			p.mu.Lock()
			s.file = f
			p.mu.Unlock()
			spool = make([]byte, prefetchChunk)
		}
		n, err := readChunk(src, spool)
		if n > 0 {
			if _, werr := s.file.Write(spool[:n]); werr != nil {
				return diskspace.Check(werr, "holding pulled blobs ahead of the writer (one was "+s.blob.Digest+")", s.file.Name(), s.blob.Size-s.memLen)
			}
			p.mu.Lock()
			s.n += int64(n)
			p.stats.SpooledBytes += int64(n)
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return pullError(s.blob, fmt.Errorf("the source stopped after %d of %d bytes: %w", s.n, s.blob.Size, err))
		}
	}
}

// readChunk fills buf from r; it returns io.EOF only with the last bytes
// or none.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// mayHold reports whether s may take one more chunk of memory: when the
// budget has room, or when the writer reads s and has little of it left to
// read. Called with mu held.
func (p *prefetcher) mayHold(s *slot) bool {
	if s.i == p.head {
		return s.memLen-min(s.read, s.memLen) < prefetchHeadCap
	}
	return p.opts.memory >= 0 && p.mem+prefetchChunk <= p.opts.memory
}

// openSlot is the writer opening s: it becomes the head, and its pull
// starts now if it has not.
func (p *prefetcher) openSlot(ctx context.Context, s *slot) (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := context.Cause(ctx); ctx.Err() != nil {
		return nil, err
	}
	p.head = s.i
	if !s.started {
		p.start(ctx, s, true)
	}
	p.schedule(ctx)
	p.cond.Broadcast()
	return &slotReader{p: p, s: s, ctx: ctx}, nil
}

// takeChunk reserves one chunk of memory. Called with mu held.
func (p *prefetcher) takeChunk() []byte {
	p.mem += prefetchChunk
	p.stats.PeakMemoryBytes = max(p.stats.PeakMemoryBytes, p.mem)
	if k := len(p.free); k > 0 {
		c := p.free[k-1]
		p.free = p.free[:k-1]
		return c
	}
	return make([]byte, prefetchChunk)
}

// giveChunk returns a chunk taken with takeChunk. Called with mu held.
func (p *prefetcher) giveChunk(c []byte) {
	p.mem -= prefetchChunk
	if int64(len(p.free))*prefetchChunk < max(p.opts.memory, prefetchHeadCap) {
		p.free = append(p.free, c[:prefetchChunk])
	}
}

// release drops what s holds: its memory and its spool file. Called with
// mu held, once s is closed.
func (p *prefetcher) release(s *slot) {
	for _, c := range s.chunks {
		p.giveChunk(c)
	}
	s.chunks, s.off = nil, 0
	if s.file != nil && (s.done || !s.started) {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}

// slotReader is the writer's view of one slot; it lives for one copy.
type slotReader struct {
	p   *prefetcher
	s   *slot
	ctx context.Context
}

func (r *slotReader) Read(b []byte) (int, error) {
	p, s := r.p, r.s
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if s.closed {
			return 0, os.ErrClosed
		}
		if len(s.chunks) > 0 {
			c := s.chunks[0]
			n := copy(b, c[s.off:])
			s.off += n
			s.read += int64(n)
			if s.off == len(c) {
				s.chunks[0] = nil
				s.chunks, s.off = s.chunks[1:], 0
				p.giveChunk(c)
				p.schedule(r.ctx)
				p.cond.Broadcast()
			}
			return n, nil
		}
		if s.read < s.n {
			f, off, want := s.file, s.read-s.memLen, min(int64(len(b)), s.n-s.read)
			p.mu.Unlock()
			n, err := f.ReadAt(b[:want], off)
			p.mu.Lock()
			s.read += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		if s.done {
			if s.err != nil {
				return 0, s.err
			}
			return 0, io.EOF
		}
		if r.ctx.Err() != nil {
			return 0, context.Cause(r.ctx)
		}
		p.cond.Wait()
	}
}

// Close ends the writer's read of the slot: a pull still running stops,
// and memory and spool file are freed.
func (r *slotReader) Close() error {
	p, s := r.p, r.s
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.stop != nil && !s.done {
		s.stop()
	}
	p.release(s)
	p.schedule(r.ctx)
	p.cond.Broadcast()
	return nil
}
