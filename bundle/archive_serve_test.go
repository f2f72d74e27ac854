package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	a := mustOpenArchive(t, p, ArchiveOptions{})
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
	a := mustOpenArchive(t, p, ArchiveOptions{})
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

// checkPoolIdle checks the pool once every reader and check of a is
// done: only the cache holds frames (once each), every buffer is either
// free or a cached frame's, and no more exist than the limit allows.
func checkPoolIdle(t *testing.T, a *Archive) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	cached := 0
	for _, fb := range a.cache {
		if fb.refs != 1 || fb.parked != 0 {
			t.Errorf("cached frame %d: %d pins, parked by %d readers, after every reader closed", fb.i, fb.refs-1, fb.parked)
		}
		if fb.buf != nil {
			cached++
		}
	}
	for i, fb := range a.frames {
		if !fb.cached {
			t.Errorf("frame %d is still held (%d pins) after every reader closed", i, fb.refs)
		}
	}
	if a.mem.count != len(a.mem.free)+cached {
		t.Errorf("buffers leaked: %d allocated, %d free, %d in cached frames", a.mem.count, len(a.mem.free), cached)
	}
	if a.mem.count > a.mem.max {
		t.Errorf("%d buffers allocated, limit %d", a.mem.count, a.mem.max)
	}
	if len(a.checks) != 0 {
		t.Errorf("%d blob checks still registered", len(a.checks))
	}
}

// TestArchiveMemoryLimit: frames take buffers from one pool; a read that
// needs buffers while every one is pinned waits, honoring its context, and
// goes on when the pin ends. Readers left open between Reads (a slow or
// stalled client) pin nothing: ten of them, each parked on its own frame,
// fit in a pool of three buffers, their frames dropped and decoded again
// as needed.
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

	var open []io.ReadCloser
	for _, i := range frames {
		rc, err := a.Open(context.Background(), d.Digest, rangeIn(a, d, i, 10), 100)
		if err == nil {
			_, err = rc.Read(make([]byte, 1))
		}
		if err != nil {
			t.Fatalf("reader of frame %d with nine others open: %v", i, err)
		}
		defer rc.Close()
		open = append(open, rc)
	}
	a.mu.Lock()
	count := a.mem.count
	a.mu.Unlock()
	if count > 3 {
		t.Errorf("%d buffers allocated, limit 3", count)
	}
	// Every open reader goes on, its frame loaded again if it was dropped.
	for k, rc := range open {
		if b, err := io.ReadAll(rc); err != nil || len(b) != 99 {
			t.Errorf("reader %d: %d bytes, %v", k, len(b), err)
		}
	}

	// Pin the pool: the first buffer of a decode is free again at its end,
	// so pin two frames by hand (a Read copying out of each).
	pinned := []*frameBuf{}
	for _, i := range all[1:3] {
		fb, err := a.acquire(context.Background(), i, false)
		if err != nil {
			t.Fatal(err)
		}
		pinned = append(pinned, fb)
	}
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rc, err := a.Open(short, d.Digest, rangeIn(a, d, other, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a read with every buffer pinned: %v, want it to wait until its context ends", err)
	}
	rc.Close()
	rc, err = a.Open(context.Background(), d.Digest, rangeIn(a, d, other, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make(chan error, 1)
	go func() { _, err := io.ReadAll(rc); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("a read went through with every buffer pinned: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	a.release(pinned[0])
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting read did not go on when a pin ended")
	}
	a.release(pinned[1])

	// The whole blob still reads, read-ahead included, within the limit.
	whole, err := a.Open(context.Background(), d.Digest, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, whole); err != nil || n != d.Size {
		t.Fatalf("whole blob: %d bytes, %v", n, err)
	}
	whole.Close()
	for _, rc := range open {
		rc.Close()
	}
	rc.Close()
	checkPoolIdle(t, a)

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
	checkPoolIdle(t, tiny)
}

// TestArchiveSlowReadersDoNotHoldThePool: readers of many frames each,
// left open between Reads as `serve --bundle` leaves them while it sends a
// chunk to a slow client, do not keep the frames they read from and the
// ones decoded ahead for them: another read of a frame nobody has decoded
// goes through at once with a pool of a few buffers (it used to wait until
// one of the slow readers moved on or was cut off).
func TestArchiveSlowReadersDoNotHoldThePool(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 16<<20, nil)
	set, err := OpenSet(p)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := NewArchive(set)
	if err != nil {
		t.Fatal(err)
	}
	size := probe.mem.size
	probe.Close()
	a, err := NewArchiveOptions(set, ArchiveOptions{MemoryLimit: 4 * size})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	all := blobFrames(a, d)
	const slow = 6
	var readers []io.ReadCloser
	slowCtx, cancelSlow := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelSlow()
	for k := range slow {
		rc, err := a.Open(slowCtx, d.Digest, rangeIn(a, d, all[1+2*k], 0), 3<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 64<<10)); err != nil {
			t.Fatalf("slow reader %d, with %d open: %v", k, k, err)
		}
		readers = append(readers, rc)
	}
	time.Sleep(50 * time.Millisecond) // let the reads ahead finish
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	rc, err := a.Open(ctx, d.Digest, rangeIn(a, d, all[len(all)-2], 100), 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || len(b) != 10 {
		t.Fatalf("a 10-byte range with %d slow readers open and a pool of 4 buffers: %d bytes, %v after %v", slow, len(b), err, time.Since(start))
	}
	t.Logf("a 10-byte range of an undecoded frame with %d slow readers open: %v", slow, time.Since(start))
	// The slow readers go on, and get the right bytes.
	want := noiseBytes(16 << 20)
	for k, rc := range readers {
		got, err := io.ReadAll(rc)
		off := rangeIn(a, d, all[1+2*k], 0) + 64<<10
		if err != nil || !bytes.Equal(got, want[off:off+int64(len(got))]) || len(got) != 3<<20-64<<10 {
			t.Errorf("slow reader %d: %d bytes, %v", k, len(got), err)
		}
		rc.Close()
	}
	checkPoolIdle(t, a)
}

// noiseBytes returns the bytes noiseBundle packs, for a blob of size.
func noiseBytes(size int) []byte {
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

// TestArchiveCheckOutlivesItsCallers: a blob check that every caller gave
// up on runs to its end, and a caller that asks again joins it: a large
// blob gets checked (once) even for callers whose timeouts are shorter
// than its check (it used to stop when its last caller left and start over
// from the first byte on the next request).
func TestArchiveCheckOutlivesItsCallers(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 24<<20, nil)
	a := mustOpenArchive(t, p, ArchiveOptions{MemoryLimit: 1})
	before := readChars(t)
	deadline := time.Now().Add(30 * time.Second)
	tries := 0
	for {
		tries++
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		err := a.CheckBlob(ctx, d.Digest)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d tries of 5 ms each the blob is still not checked", tries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	read := readChars(t) - before
	t.Logf("checked after %d tries of 5 ms; %d bytes read for a %d-byte body", tries, read, a.head.Frames.CompressedSize)
	if read > a.head.Frames.CompressedSize+a.head.Frames.CompressedSize/4 {
		t.Errorf("the check read %d bytes of a %d-byte body: it started over", read, a.head.Frames.CompressedSize)
	}
	checkPoolIdle(t, a)
}

// TestArchiveCheckAfterTransientChange: a check that fails because the
// copy being read is damaged (the file truncated or a byte flipped while
// it is served, the file unreadable) is not remembered: once the file is
// whole again the blob checks and reads. Only a blob whose frames all
// match the signed index but which fails its digest stays refused (see
// TestArchiveCheckBlob).
func TestArchiveCheckAfterTransientChange(t *testing.T) {
	p, d := noiseBundle(t, 64<<10, 1<<20, nil)
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []string{"truncated", "flipped", "unreadable"} {
		t.Run(damage, func(t *testing.T) {
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			a := mustOpenArchive(t, p, ArchiveOptions{})
			bf := blobFrames(a, d)
			mid := a.head.Frames.Frames[bf[len(bf)/2]]
			switch damage {
			case "truncated":
				err = os.Truncate(p, a.set.BodyStart+mid.Offset+10)
			case "flipped":
				b := bytes.Clone(orig)
				b[a.set.BodyStart+mid.Offset+100] ^= 1
				err = os.WriteFile(p, b, 0o644)
			case "unreadable":
				err = a.files[0].Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := a.CheckBlob(context.Background(), d.Digest); err == nil {
				t.Fatal("the check of a damaged copy passed")
			}
			if done, err := a.BlobChecked(d.Digest); done {
				t.Errorf("the damage is remembered as the blob's outcome: %v", err)
			}
			if damage == "unreadable" {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				a.files[0] = f
			} else if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := a.CheckBlob(context.Background(), d.Digest); err != nil {
				t.Errorf("after the file was restored: %v", err)
			}
			rc, err := a.Open(context.Background(), d.Digest, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || int64(len(got)) != d.Size {
				t.Errorf("whole read after the file was restored: %d bytes, %v", len(got), err)
			}
			checkPoolIdle(t, a)
		})
	}
}

// TestArchiveCheckBlob: a blob is checked against its digest once for
// the Archive's life, concurrent callers sharing one read; a blob that
// fails is remembered as failed, and no range of it is opened after.
func TestArchiveCheckBlob(t *testing.T) {
	p, d := noiseBundle(t, 1<<20, 6<<20, nil)
	a := mustOpenArchive(t, p, ArchiveOptions{})
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
	b := mustOpenArchive(t, lying, ArchiveOptions{})
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
	c := mustOpenArchive(t, p, ArchiveOptions{})
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

// TestArchiveConcurrentReadersSmallPool: 24 readers of random ranges at
// once, some cancelled, some abandoned mid-way, some checking the blob or
// copying frames, in pools of 2, 3 and 5 buffers: every complete read gets
// the packed bytes, nothing deadlocks, and once all are closed every buffer
// is free or cached.
func TestArchiveConcurrentReadersSmallPool(t *testing.T) {
	const frame = 64 << 10
	const size = 40 * frame
	p, d := noiseBundle(t, frame, size, nil)
	want := noiseBytes(size)
	for _, bufs := range []int64{2, 3, 5} {
		t.Run(fmt.Sprint(bufs), func(t *testing.T) {
			set, err := OpenSet(p)
			if err != nil {
				t.Fatal(err)
			}
			probe, _ := NewArchive(set)
			sz := probe.mem.size
			probe.Close()
			a, err := NewArchiveOptions(set, ArchiveOptions{MemoryLimit: bufs * sz})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var ok, cancelled, abandoned atomic.Int64
			errs := make(chan error, 1000)
			for g := 0; g < 24; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 1))
					for it := 0; it < 15; it++ {
						off := r.Int64N(size)
						n := r.Int64N(min(size-off, 6*frame)) + 1
						if r.IntN(8) == 0 {
							off, n = 0, -1
						}
						ctx, cancel := context.WithCancel(context.Background())
						mode := r.IntN(6)
						if mode == 0 {
							time.AfterFunc(time.Duration(r.IntN(3000))*time.Microsecond, cancel)
						}
						if mode == 5 && g%3 == 0 {
							if err := a.CheckBlob(ctx, d.Digest); err != nil && !errors.Is(err, context.Canceled) {
								errs <- fmt.Errorf("check: %w", err)
							}
						}
						if mode == 4 && g%4 == 0 {
							fi := r.IntN(len(a.head.Frames.Frames))
							b, err := a.Frame(fi)
							if err != nil {
								errs <- err
							} else {
								b[0] ^= 0xff // must be a copy
							}
						}
						rc, err := a.Open(ctx, d.Digest, off, n)
						if err != nil {
							errs <- err
							cancel()
							continue
						}
						if n < 0 {
							n = size
						}
						var got bytes.Buffer
						buf := make([]byte, 1+r.IntN(50000))
						stopAt := int64(-1)
						if mode == 1 {
							stopAt = r.Int64N(n) // client disconnects mid-way holding frames
						}
						var rerr error
						for {
							k, err := rc.Read(buf)
							got.Write(buf[:k])
							if r.IntN(40) == 0 {
								time.Sleep(time.Millisecond)
							}
							if err != nil {
								if err != io.EOF {
									rerr = err
								}
								break
							}
							if stopAt >= 0 && int64(got.Len()) >= stopAt {
								rerr = errors.New("abandon")
								break
							}
						}
						rc.Close()
						cancel()
						switch {
						case rerr == nil:
							if !bytes.Equal(got.Bytes(), want[off:off+n]) {
								errs <- fmt.Errorf("wrong bytes at %d+%d", off, n)
							}
							ok.Add(1)
						case errors.Is(rerr, context.Canceled):
							if !bytes.Equal(got.Bytes(), want[off:off+int64(got.Len())]) {
								errs <- fmt.Errorf("wrong partial bytes at %d", off)
							}
							cancelled.Add(1)
						case rerr.Error() == "abandon":
							abandoned.Add(1)
						default:
							errs <- fmt.Errorf("read %d+%d: %w", off, n, rerr)
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(120 * time.Second):
				t.Fatal("deadlock: readers did not finish")
			}
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("ok %d cancelled %d abandoned %d", ok.Load(), cancelled.Load(), abandoned.Load())
			checkPoolIdle(t, a)
			if done, err := a.BlobChecked(d.Digest); done && err != nil {
				t.Errorf("blob recorded bad: %v", err)
			}
			a.Close()
		})
	}
}

// TestArchiveCloseWhileBusy: Close while readers and checks run stops
// them all and returns; nothing hangs.
func TestArchiveCloseWhileBusy(t *testing.T) {
	const frame = 64 << 10
	p, d := noiseBundle(t, frame, 64*frame, nil)
	for round := 0; round < 10; round++ {
		a, err := OpenArchiveOptions(p, ArchiveOptions{MemoryLimit: 1})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), uint64(round)))
				for k := 0; k < 50; k++ {
					if g%4 == 0 {
						_ = a.CheckBlob(context.Background(), d.Digest)
						continue
					}
					off := r.Int64N(d.Size)
					rc, err := a.Open(context.Background(), d.Digest, off, -1)
					if err != nil {
						return
					}
					_, err = io.CopyN(io.Discard, rc, r.Int64N(4*frame)+1)
					rc.Close()
					if err != nil && err != io.EOF {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(20+round*10) * time.Millisecond)
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		all := make(chan struct{})
		go func() { wg.Wait(); close(all) }()
		for _, ch := range []chan struct{}{closed, all} {
			select {
			case <-ch:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: hang after Close", round)
			}
		}
	}
}

// multiBlobBundle writes a bundle of n file blobs of size random bytes
// each, in frames of frameSize; it returns its path, the blobs and their
// bytes.
func multiBlobBundle(t testing.TB, frameSize int64, n, size int) (string, []Descriptor, [][]byte) {
	t.Helper()
	files := memFiles{}
	var items []Item
	var ds []Descriptor
	var datas [][]byte
	for k := 0; k < n; k++ {
		b := make([]byte, size)
		rand.NewChaCha8([32]byte{byte(k + 1)}).Read(b)
		it, err := NewFileItem(fmt.Sprintf("data/b%d.bin", k), fmt.Sprintf("var/b%d.bin", k), "0644", files.layer(fmt.Sprintf("b%d.bin", k), b, ""))
		if err != nil {
			t.Fatal(err)
		}
		it.Open = files.open
		items = append(items, *it)
		ds = append(ds, Descriptor{Digest: checked.Digest(b), Size: int64(size)})
		datas = append(datas, b)
	}
	w, err := NewWriter("multi", "1.0.0", time.Unix(1767225600, 0), items)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "multi.airlock")
	if _, err := w.WriteFile(context.Background(), out, WriteOptions{FrameSize: frameSize}); err != nil {
		t.Fatal(err)
	}
	return out, ds, datas
}

// TestArchiveQueuedCheckClosed: a check queued behind the two slots when
// the Archive closes reports the Archive closed, never a match (nil) for a
// blob that was never read.
func TestArchiveQueuedCheckClosed(t *testing.T) {
	p, ds, _ := multiBlobBundle(t, 64<<10, 8, 2<<20)
	bad := 0
	for round := 0; round < 200 && bad == 0; round++ {
		a, err := OpenArchiveOptions(p, ArchiveOptions{MemoryLimit: 1})
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, len(ds))
		var wg sync.WaitGroup
		for k, d := range ds {
			wg.Add(1)
			go func() { defer wg.Done(); errs[k] = a.CheckBlob(context.Background(), d.Digest) }()
		}
		time.Sleep(2 * time.Millisecond)
		a.Close()
		wg.Wait()
		for k, d := range ds {
			done, cerr := a.BlobChecked(d.Digest)
			if errs[k] == nil && !(done && cerr == nil) {
				bad++
				t.Errorf("round %d: CheckBlob(blob %d) = nil (a match) but the blob was never checked (BlobChecked = %v, %v)", round, k, done, cerr)
			}
		}
	}
}

// mustOpenArchive opens the bundle at p with opts for the test, which
// closes it when it ends.
func mustOpenArchive(t *testing.T, p string, opts ArchiveOptions) *Archive {
	t.Helper()
	a, err := OpenArchiveOptions(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
