package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/checked"
)

// What `airlock serve --bundle` asks of an Archive under load: concurrent
// requests share a frame's decoding, a reader keeps its frame between
// reads, the frames held across all readers stay within a memory limit,
// and a blob is checked against its digest once.

// noiseBundle writes a bundle whose body is one file of size random bytes
// (which do not compress: a frame's compressed size is about its size),
// cut into frames of frameSize, and returns its path and the blob. tamper,
// when set, changes the bytes written (the writer is told they are checked
// already): the frames then match the frame index, the blob not its digest.
func noiseBundle(t testing.TB, frameSize int64, size int, tamper func([]byte) []byte) (string, Descriptor) {
	t.Helper()
	noise := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(noise)
	files := memFiles{}
	it, err := NewFileItem("data/noise.bin", "var/noise.bin", "0644", files.layer("noise.bin", noise, ""))
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	if tamper != nil {
		it.Verified = true
		it.Open = func(context.Context, Descriptor) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(tamper(bytes.Clone(noise)))), nil
		}
	}
	w, err := NewWriter("noise", "1.0.0", time.Unix(1767225600, 0), []Item{*it})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "noise.airlock")
	if _, err := w.WriteFile(context.Background(), out, WriteOptions{FrameSize: frameSize}); err != nil {
		t.Fatal(err)
	}
	return out, Descriptor{Digest: checked.Digest(noise), Size: int64(size)}
}

// readChars returns the bytes this process has read with read(2) and
// pread(2) so far (/proc/self/io rchar), or skips the test where the
// kernel does not say.
func readChars(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("/proc/self/io has no rchar")
	return 0
}

// blobFrames returns the frames that hold blob d's data, in order.
func blobFrames(a *Archive, d Descriptor) []int {
	e := a.head.layout.Entries[a.blobs[d.Digest]]
	var out []int
	for i := a.frameAt(e.Data); i <= a.frameAt(e.Data+d.Size-1); i++ {
		out = append(out, i)
	}
	return out
}

// rangeIn returns the blob offset of byte k of frame i.
func rangeIn(a *Archive, d Descriptor, i int, k int64) int64 {
	e := a.head.layout.Entries[a.blobs[d.Digest]]
	return a.head.Frames.Frames[i].UncompressedOffset + k - e.Data
}

// TestArchiveConcurrentMissesShareOneDecode: many requests for a few bytes
// of the same frame, at once, read and decode that frame once (they used
// to read, hash and decode it once each, and hold as many copies).
func TestArchiveConcurrentMissesShareOneDecode(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 8<<20, nil)
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const n = 32
	var read, size int64
	for _, i := range blobFrames(a, d)[1:7] {
		off := rangeIn(a, d, i, 1000)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, n)
		before := readChars(t)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rc, err := a.Open(context.Background(), d.Digest, off, 10)
				if err != nil {
					errs <- err
					return
				}
				defer rc.Close()
				if b, err := io.ReadAll(rc); err != nil || len(b) != 10 {
					errs <- errors.Join(err, errors.New("short range"))
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		read += readChars(t) - before
		size += a.head.Frames.Frames[i].Size
	}
	t.Logf("%d concurrent 10-byte reads of each of 6 frames (%d compressed bytes together) read %d bytes", n, size, read)
	if read > size+size/4 {
		t.Errorf("%d concurrent reads of a frame read %.2f times its bytes from the file; want each frame read once", n, float64(read)/float64(size))
	}
}

// TestArchiveReaderKeepsItsFrame: readers of ranges inside one frame each,
// more of them than the Archive keeps decoded frames, read in small
// chunks in turn: each frame is read and decoded once, not once per Read.
func TestArchiveReaderKeepsItsFrame(t *testing.T) {
	p, d := noiseBundle(t, MinFrameSize, 1<<20, nil)
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	frames := blobFrames(a, d)[1:7] // six frames, each wholly inside the blob
	var readers []io.ReadCloser
	var want [][]byte
	var sum int64
	before := readChars(t)
	for _, i := range frames {
		off := rangeIn(a, d, i, 100)
		rc, err := a.Open(context.Background(), d.Digest, off, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		readers = append(readers, rc)
		want = append(want, nil)
		sum += a.head.Frames.Frames[i].Size
	}
	buf := make([]byte, 1<<10)
	for more := true; more; {
		more = false
		for k, rc := range readers {
			n, err := rc.Read(buf)
			want[k] = append(want[k], buf[:n]...)
			if err == nil {
				more = true
			} else if err != io.EOF {
				t.Fatal(err)
			}
		}
	}
	read := readChars(t) - before
	t.Logf("6 readers of 32 KiB in 1 KiB reads, each inside one frame (%d compressed bytes together): %d bytes read", sum, read)
	if read > 2*sum {
		t.Errorf("read %d bytes from the file for frames of %d bytes together (%.1fx): a frame is read again on every Read", read, sum, float64(read)/float64(sum))
	}
	for k, got := range want {
		if len(got) != 32<<10 {
			t.Errorf("reader %d: %d bytes", k, len(got))
		}
	}
}

// TestArchiveMemoryLimit: readers holding frames take buffers from one
// pool; once it is exhausted, a reader that needs another frame waits,
// honoring its context, and goes on when a holder releases its frame.
func TestArchiveMemoryLimit(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 12<<20, nil)
	set, err := OpenSet(p)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := NewArchive(set)
	if err != nil {
		t.Fatal(err)
	}
	size := probe.mem.size
	if got := probe.MemoryLimit(); got != DefaultMemoryLimit/size*size {
		t.Errorf("default limit %d, want %d", got, DefaultMemoryLimit/size*size)
	}
	probe.Close()
	a, err := NewArchiveOptions(set, ArchiveOptions{MemoryLimit: 3 * size})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	all := blobFrames(a, d)
	frames, other := all[1:11], all[11]

	// Ten readers of one frame each, that hold it (a stalled client): two
	// fit (a decode takes two buffers, a held frame one).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	type result struct {
		rc  io.ReadCloser
		err error
	}
	results := make(chan result, len(frames))
	for _, i := range frames {
		go func() {
			rc, err := a.Open(ctx, d.Digest, rangeIn(a, d, i, 10), 100)
			if err == nil {
				_, err = rc.Read(make([]byte, 1))
			}
			results <- result{rc, err}
		}()
	}
	var held []io.ReadCloser
	for range frames {
		r := <-results
		switch {
		case r.err == nil:
			held = append(held, r.rc)
		case errors.Is(r.err, context.DeadlineExceeded):
			r.rc.Close()
		default:
			t.Fatalf("a reader failed: %v", r.err)
		}
	}
	a.mu.Lock()
	count := a.mem.count
	a.mu.Unlock()
	if len(held) != 2 || count > 3 {
		t.Errorf("%d readers hold a frame, %d buffers allocated; want 2 readers within 3 buffers", len(held), count)
	}

	// A reader waits while the pool is held, and goes on when a holder
	// is done.
	rc, err := a.Open(context.Background(), d.Digest, rangeIn(a, d, other, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make(chan error, 1)
	go func() { _, err := io.ReadAll(rc); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("a read went through with the pool exhausted: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	held[0].Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting reader did not go on when a frame was released")
	}
	for _, rc := range held[1:] {
		rc.Close()
	}

	// The whole blob still reads, read-ahead included, in what the pool
	// has left while a reader holds a frame.
	whole, err := a.Open(context.Background(), d.Digest, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, whole); err != nil || n != d.Size {
		t.Fatalf("whole blob: %d bytes, %v", n, err)
	}
	whole.Close()
	a.mu.Lock()
	if a.mem.count > 3 {
		t.Errorf("%d buffers allocated, limit 3", a.mem.count)
	}
	a.mu.Unlock()

	// The smallest pool (a limit under two buffers is raised to two)
	// reads the blob too.
	tiny, err := NewArchiveOptions(set, ArchiveOptions{MemoryLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	if tiny.MemoryLimit() != 2*size {
		t.Errorf("limit 1 gave %d bytes, want two buffers (%d)", tiny.MemoryLimit(), 2*size)
	}
	if err := tiny.CheckBlob(context.Background(), d.Digest); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveCheckBlob: a blob is checked against its digest once for
// the Archive's life, concurrent callers sharing one read; a blob that
// fails is remembered as failed, and no range of it is opened after.
func TestArchiveCheckBlob(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 6<<20, nil)
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if done, _ := a.BlobChecked(d.Digest); done {
		t.Fatal("checked before any read")
	}
	// A caller that leaves stops nothing for the others, and is not a result.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.CheckBlob(gone, d.Digest); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckBlob with a cancelled context: %v", err)
	}
	before := readChars(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- a.CheckBlob(context.Background(), d.Digest) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	read := readChars(t) - before
	if read > a.head.Frames.CompressedSize+a.head.Frames.CompressedSize/4 {
		t.Errorf("8 concurrent checks read %d bytes of a %d-byte body", read, a.head.Frames.CompressedSize)
	}
	before = readChars(t)
	if err := a.CheckBlob(context.Background(), d.Digest); err != nil {
		t.Fatal(err)
	}
	if read := readChars(t) - before; read > 4096 { // readChars reads /proc/self/io
		t.Errorf("a second check read %d bytes", read)
	}

	lying, ld := noiseBundle(t, 1<<20, 6<<20, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	b, err := OpenArchive(lying)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A range of the blob reads: its frames are the signed ones.
	rc, err := b.Open(context.Background(), ld.Digest, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	err = b.CheckBlob(context.Background(), ld.Digest)
	var ee *EntryError
	if !errors.Is(err, ErrIntegrity) || !errors.Is(err, checked.ErrDigestMismatch) || !errors.As(err, &ee) || ee.Entry != blobName(ld.Digest) {
		t.Fatalf("CheckBlob of a blob that fails its digest: %v", err)
	}
	if done, err := b.BlobChecked(ld.Digest); !done || !errors.Is(err, ErrIntegrity) {
		t.Errorf("BlobChecked after the failure: %v %v", done, err)
	}
	if _, err := b.Open(context.Background(), ld.Digest, 0, 100); !errors.Is(err, ErrIntegrity) {
		t.Errorf("a range of a blob known to fail opened: %v", err)
	}

	// A whole read through Open records its outcome too.
	c, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err = c.Open(context.Background(), d.Digest, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if done, err := c.BlobChecked(d.Digest); !done || err != nil {
		t.Errorf("after a whole read: %v %v", done, err)
	}
}
