package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
	"github.com/klauspost/compress/zstd"
)

// smallFrames makes the test release span many frames: the 480 KB model
// file is sliced, the small files share frames.
const smallFrames = MinFrameSize

// writeV2 writes testItems with opts and returns the path of the bundle
// (or of its first volume).
func writeV2(t testing.TB, opts WriteOptions) string {
	t.Helper()
	w, err := NewWriter("test", "1.0.0", time.Unix(1767225600, 0), v2Items(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "test.airlock")
	if _, err := w.WriteFile(context.Background(), out, opts); err != nil {
		t.Fatal(err)
	}
	if opts.VolumeSize > 0 {
		return VolumeName(out, 1)
	}
	return out
}

// v2Items is testItems plus 600 KB that does not compress, so that small
// volume sizes give several volumes.
func v2Items(t testing.TB) []Item {
	items := testItems(t)
	files := memFiles{}
	noise := make([]byte, 600<<10)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	it, err := NewFileItem("data/noise.bin", "var/noise.bin", "0644", files.layer("noise.bin", noise, ""))
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	return append(items, *it)
}

func TestV2LayoutAndDeterminism(t *testing.T) {
	t.Parallel()
	p := writeV2(t, WriteOptions{FrameSize: smallFrames})
	b, h := fileAndHead(t, p)
	if h.Marker.Version != 2 || h.Frames == nil || len(h.Frames.Frames) < 8 {
		t.Fatalf("version %d, frame index %+v: want a v2 bundle of many frames", h.Marker.Version, h.Frames)
	}
	if err := readAll(b); err != nil {
		t.Fatalf("v2 bundle rejected by the streaming reader: %v", err)
	}
	// Any zstd decoder reads the whole file as one tar archive holding
	// every blob (the OCI layout after extraction).
	dec, _ := zstd.NewReader(bytes.NewReader(b))
	defer dec.Close()
	whole, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	entries := readEntries(t, whole)
	if got, want := len(entries), h.Entries+len(h.Body); got != want {
		t.Fatalf("decompressed archive has %d entries, want %d", got, want)
	}
	// Same items, same time: same bytes, whether written to a file, as
	// volumes (concatenated), or to a stream.
	again, _ := os.ReadFile(writeV2(t, WriteOptions{FrameSize: smallFrames}))
	if !bytes.Equal(b, again) {
		t.Fatal("two writes of the same items differ")
	}
	w, _ := NewWriter("test", "1.0.0", time.Unix(1767225600, 0), v2Items(t))
	_ = w.Sign(context.Background(), StatementOptions{}, nil)
	var stream bytes.Buffer
	if _, err := w.WriteStream(context.Background(), &stream, WriteOptions{FrameSize: smallFrames, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, stream.Bytes()) {
		t.Fatal("WriteStream differs from WriteFile")
	}
}

func TestV2VolumesConcatenateToABundle(t *testing.T) {
	t.Parallel()
	first := writeV2(t, WriteOptions{FrameSize: smallFrames, VolumeSize: 200 << 10})
	set, err := OpenSet(filepath.Dir(first))
	if err != nil {
		t.Fatal(err)
	}
	if !set.Volumes || len(set.Paths) < 3 {
		t.Fatalf("want at least 3 volumes, got %v", set.Paths)
	}
	var cat []byte
	for i, p := range set.Paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) > 200<<10 {
			t.Fatalf("volume %d is %d bytes, over the volume size", i+1, len(b))
		}
		cat = append(cat, b...)
	}
	if err := readAll(cat); err != nil {
		t.Fatalf("cat of the volumes is not a valid bundle: %v", err)
	}
	if err := set.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := set.Open()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, cat) {
		t.Fatal("the set reader does not give the concatenation")
	}
	for _, p := range set.Paths {
		vc, err := CheckVolume(context.Background(), set.Head, p)
		if err != nil || vc.Path != p {
			t.Fatalf("CheckVolume(%s) = %+v, %v", p, vc, err)
		}
	}
}

// volumeSet writes a volume set and returns its directory and paths.
func volumeSet(t *testing.T) (string, []string) {
	t.Helper()
	first := writeV2(t, WriteOptions{FrameSize: smallFrames, VolumeSize: 200 << 10})
	dir := filepath.Dir(first)
	set, err := OpenSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, set.Paths
}

func TestV2VolumeSetDamage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(t *testing.T, paths []string)
		want   string // in the error from OpenSet or Check
	}{
		{"missing", func(t *testing.T, p []string) { os.Remove(p[1]) }, "volume 2 of"},
		{"missing first", func(t *testing.T, p []string) { os.Remove(p[0]) }, "volume 1 is missing"},
		{"swapped", func(t *testing.T, p []string) {
			a, _ := os.ReadFile(p[1])
			b, _ := os.ReadFile(p[2])
			os.WriteFile(p[1], b, 0o644)
			os.WriteFile(p[2], a, 0o644)
		}, "volume 2"},
		{"truncated", func(t *testing.T, p []string) {
			st, _ := os.Stat(p[2])
			os.Truncate(p[2], st.Size()-1)
		}, "volume 3 ("},
		{"corrupt", func(t *testing.T, p []string) {
			b, _ := os.ReadFile(p[1])
			b[len(b)/2] ^= 1
			os.WriteFile(p[1], b, 0o644)
		}, "volume 2 of"},
		{"duplicated", func(t *testing.T, p []string) {
			b, _ := os.ReadFile(p[1])
			os.WriteFile(strings.TrimSuffix(p[1], ".002")+".0002", b, 0o644)
		}, "volume 2 is there twice"},
		{"extra", func(t *testing.T, p []string) {
			b, _ := os.ReadFile(p[1])
			os.WriteFile(strings.TrimSuffix(p[1], ".002")+".099", b, 0o644)
		}, "not part of this bundle"},
		// A FIFO or a directory in place of a volume is refused before
		// it is opened: a FIFO would block the reader for ever.
		{"FIFO first", func(t *testing.T, p []string) {
			os.Remove(p[0])
			if err := syscall.Mkfifo(p[0], 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"FIFO third", func(t *testing.T, p []string) {
			os.Remove(p[2])
			if err := syscall.Mkfifo(p[2], 0o644); err != nil {
				t.Fatal(err)
			}
		}, "volume 3 ("},
		{"directory second", func(t *testing.T, p []string) {
			os.Remove(p[1])
			os.Mkdir(p[1], 0o755)
		}, "is not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, paths := volumeSet(t)
			c.damage(t, paths)
			set, err := OpenSet(dir)
			if err == nil {
				err = set.Check(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to name %q", err, c.want)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrIntegrity) {
				t.Fatalf("err = %v: not a rejection", err)
			}
		})
	}
}

// TestVolumeSetOddNames: a bundle in one file named like a volume is read
// as the file it is; a directory of two bundle files asks which one;
// volumes linked into a directory are read through their links; a file
// given to CheckVolume is judged by its size before it is hashed, and a
// FIFO is refused without being opened.
func TestVolumeSetOddNames(t *testing.T) {
	t.Parallel()
	single := writeV2(t, WriteOptions{FrameSize: smallFrames})
	named := filepath.Join(t.TempDir(), "release.123")
	if err := os.WriteFile(named, mustRead(t, single), 0o644); err != nil {
		t.Fatal(err)
	}
	if IsVolumeSet(named) {
		t.Error("a whole bundle named release.123 is taken for a volume set")
	}
	if set, err := OpenSet(named); err != nil || set.Volumes {
		t.Fatalf("OpenSet(release.123): %v", err)
	}

	two := t.TempDir()
	for _, n := range []string{"a.airlock", "b.airlock"} {
		os.WriteFile(filepath.Join(two, n), mustRead(t, single), 0o644)
	}
	if _, err := OpenSet(two); err == nil || !strings.Contains(err.Error(), "holds 2 bundle files (a.airlock, b.airlock)") {
		t.Fatalf("OpenSet of a directory of two bundles: %v", err)
	}
	_, paths0 := volumeSet(t)
	os.WriteFile(filepath.Join(filepath.Dir(paths0[0]), "other.airlock"), mustRead(t, single), 0o644)
	if _, err := OpenSet(filepath.Dir(paths0[0])); err == nil || !strings.Contains(err.Error(), "holds both other.airlock and volumes of") {
		t.Fatalf("OpenSet of a directory of a file and a set: %v", err)
	}

	_, paths := volumeSet(t)
	linked := t.TempDir()
	for _, p := range paths {
		if err := os.Symlink(p, filepath.Join(linked, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	set, err := OpenSet(linked)
	if err != nil || len(set.Paths) != len(paths) {
		t.Fatalf("OpenSet of linked volumes: %v", err)
	}
	if err := set.Check(context.Background()); err != nil {
		t.Fatal(err)
	}

	renamed := filepath.Join(t.TempDir(), "test.airlock.002")
	os.WriteFile(renamed, mustRead(t, paths[2]), 0o644)
	if c, err := CheckVolume(context.Background(), set.Head, renamed); err != nil || c.Number != 3 || c.Misnamed != 2 {
		t.Fatalf("CheckVolume of volume 3 named .002: %+v, %v", c, err)
	}

	fifo := filepath.Join(t.TempDir(), "x.002")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckVolume(context.Background(), set.Head, fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("CheckVolume of a FIFO: %v", err)
	}
	big := filepath.Join(t.TempDir(), "x.003")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<40); err != nil { // sparse: hashing it would take hours
		t.Fatal(err)
	}
	if _, err := CheckVolume(context.Background(), set.Head, big); err == nil || !strings.Contains(err.Error(), "not hashed: no volume has its size") {
		t.Fatalf("CheckVolume of a 1 TiB file: %v", err)
	}
}

// TestVolumeSetReplacedHalfway: a pack that replaces a volume set and
// stops while renaming its volumes into place (here: volume 3 cannot be
// renamed) leaves no volume 1, so no reader takes a mix of the old and new
// volumes for a set.
func TestVolumeSetReplacedHalfway(t *testing.T) {
	t.Parallel()
	first := writeV2(t, WriteOptions{FrameSize: smallFrames, VolumeSize: 200 << 10})
	out := strings.TrimSuffix(first, ".001")
	third := VolumeName(out, 3)
	if err := os.Remove(third); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(third, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter("test", "1.0.1", time.Unix(1767225700, 0), v2Items(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteFile(context.Background(), out, WriteOptions{FrameSize: smallFrames, VolumeSize: 200 << 10}); err == nil {
		t.Fatal("the pack over a blocked volume 3 succeeded")
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("volume 1 is still there after a failed replacement: %v", err)
	}
	if _, err := OpenSet(filepath.Dir(first)); err == nil || !strings.Contains(err.Error(), "volume 1 is missing") {
		t.Fatalf("OpenSet after a failed replacement: %v", err)
	}
}

// relabel rewrites the head of a v2 bundle with a frame index changed by
// mutate, keeping everything consistent (bundle.json and the unsigned
// statement follow) unless keepManifest is set; the body is unchanged.
func relabel(t *testing.T, b []byte, keepManifest bool, mutate func(fi *FrameIndex)) []byte {
	t.Helper()
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var fi FrameIndex
	if err := json.Unmarshal(h.FramesBytes, &fi); err != nil {
		t.Fatal(err)
	}
	mutate(&fi)
	framesRaw, err := marshalIndent(&fi)
	if err != nil {
		t.Fatal(err)
	}
	repl := map[string][]byte{EntryFrames: framesRaw}
	if !keepManifest {
		m := h.Manifest
		m.Frames = &Descriptor{MediaType: MediaTypeFrameIndex, Digest: checkedDigest(framesRaw), Size: int64(len(framesRaw))}
		mraw, _ := marshalIndent(&m)
		p := h.Statement.Predicate
		st, err := newStatement(&m, checkedDigest(mraw), int64(len(mraw)), StatementOptions{Sequence: p.Sequence, Expires: p.Expires, Channel: p.Channel})
		if err != nil {
			t.Fatal(err)
		}
		env, _ := newEnvelope(st)
		sig, _ := marshalIndent(env)
		repl[EntryManifest], repl[EntrySignatures] = mraw, sig
	}
	return rewriteHead(t, b, func(_ *Head, e headEntry, _ *tar.Header) []byte {
		if r, ok := repl[e.name]; ok {
			return r
		}
		return e.data
	})
}

func TestV2FrameIndexLies(t *testing.T) {
	t.Parallel()
	p := writeV2(t, WriteOptions{FrameSize: smallFrames})
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(relabel(t, good, false, func(*FrameIndex) {})); err != nil {
		t.Fatalf("an unchanged relabel is refused: %v", err)
	}
	cases := []struct {
		name         string
		keepManifest bool
		mutate       func(fi *FrameIndex)
		want         string
	}{
		{"offset past the end", false, func(fi *FrameIndex) {
			fi.Frames[len(fi.Frames)-1].Size += 100
			fi.CompressedSize += 100
		}, "frame"},
		{"overlapping frames", false, func(fi *FrameIndex) { fi.Frames[2].Offset-- }, "frames must follow each other"},
		{"blob claimed by two frames", false, func(fi *FrameIndex) {
			fi.Frames[0].Blobs = append(fi.Frames[0].Blobs, fi.Frames[len(fi.Frames)-2].Blobs...)
		}, "lists blobs"},
		{"uncompressed size", false, func(fi *FrameIndex) { fi.Frames[1].UncompressedSize += 512 }, "uncompressed range"},
		{"frame dropped", false, func(fi *FrameIndex) { fi.Frames = fi.Frames[:len(fi.Frames)-1] }, "frames"},
		{"index digest not the signed one", true, func(fi *FrameIndex) { fi.Frames[0].SHA256 = placeholderHex("x") }, "does not match the frames descriptor"},
		{"frame size", false, func(fi *FrameIndex) { fi.FrameSize = 1000 }, "frame size"},
		{"compressed total", false, func(fi *FrameIndex) { fi.CompressedSize++ }, "compressedSize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := relabel(t, good, c.keepManifest, c.mutate)
			err := readAll(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("streaming reader: err = %v, want %q", err, c.want)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v: not a rejection", err)
			}
		})
	}
}

// damageFrame flips the bits mask of one byte of frame i of the v2 bundle
// at p, at offset at(frame) within the frame's compressed bytes, writes the
// file back and returns its bytes and the frame.
func damageFrame(t *testing.T, p string, i int, at func(FrameRecord) int64, mask byte) ([]byte, FrameRecord) {
	t.Helper()
	b, h := fileAndHead(t, p)
	fr := h.Frames.Frames[i]
	b[h.HeadSize+h.PaddingSize+fr.Offset+at(fr)] ^= mask
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b, fr
}

func middle(fr FrameRecord) int64 { return fr.Size / 2 }

func TestV2CorruptFrameNamed(t *testing.T) {
	t.Parallel()
	p := writeV2(t, WriteOptions{FrameSize: smallFrames})
	b, fr := damageFrame(t, p, 3, middle, 0x40)
	err := readAll(b)
	// The sequential reader names the blob whose bytes changed (or the
	// frame, when it no longer decodes).
	var fe *FrameError
	named := errors.As(err, &fe) && fe.Frame == 3
	for _, d := range fr.Blobs {
		named = named || errors.Is(err, ErrIntegrity) && strings.Contains(err.Error(), strings.TrimPrefix(d, "sha256:"))
	}
	if !named {
		t.Fatalf("streaming reader: err = %v, want frame 3 or one of its blobs %v named", err, fr.Blobs)
	}
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// CheckBody reports the blob and, from the frames' signed sha256,
	// the frame whose compressed bytes changed.
	err = a.CheckBody(context.Background(), 2, nil)
	var ie *IntegrityError
	if !errors.As(err, &ie) || len(ie.Findings) == 0 || !strings.HasPrefix(ie.Findings[0].Damaged, "body frame 3 ") {
		t.Fatalf("CheckBody: err = %v, want the blob found and frame 3 named as damaged", err)
	}
	if _, err := a.Frame(3); err == nil || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("random access to a frame whose bytes changed: err = %v, want its signed sha256 to refuse it", err)
	}
}

// TestV2FrameBytesChecked: a frame whose zstd checksum field changed
// still decodes to the signed bytes, but the file is not the one signed
// (docs/format.md §18.5): every reader refuses it by the frame's signed
// sha256, naming the frame, before decoding it: the streaming reader,
// CheckBody (verify) and random access (serve) alike.
func TestV2FrameBytesChecked(t *testing.T) {
	t.Parallel()
	p := writeV2(t, WriteOptions{FrameSize: smallFrames})
	lastByte := func(fr FrameRecord) int64 { return fr.Size - 1 } // of the checksum
	b, _ := damageFrame(t, p, 2, lastByte, 0x01)
	named := func(err error) bool {
		var fe *FrameError
		return errors.Is(err, ErrIntegrity) && errors.As(err, &fe) && fe.Frame == 2
	}
	if err := readAll(b); !named(err) {
		t.Fatalf("streaming reader: %v, want frame 2 refused by its signed sha256", err)
	}
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CheckBody(context.Background(), 2, nil); !named(err) {
		t.Fatalf("CheckBody: %v, want frame 2 refused by its signed sha256", err)
	}
	if _, err := a.Frame(2); !named(err) {
		t.Fatalf("random access: err = %v, want the frame's signed sha256 to refuse it", err)
	}
}

func TestArchiveRandomAccess(t *testing.T) {
	t.Parallel()
	for _, vol := range []int64{0, 200 << 10} {
		p := writeV2(t, WriteOptions{FrameSize: smallFrames, VolumeSize: vol})
		a, err := OpenArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CheckBody(context.Background(), 3, nil); err != nil {
			t.Fatalf("CheckBody of a good bundle: %v", err)
		}
		// Every body blob whole, and a range of it, read out of order.
		stream, _ := readBodyBlobs(t, a.Set())
		for i := len(a.Head().Body) - 1; i >= 0; i-- {
			d := a.Head().Body[i]
			rc, err := a.Open(context.Background(), d.Digest, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, stream[d.Digest]) {
				t.Fatalf("blob %s: %d bytes, err %v", d.Digest, len(got), err)
			}
			if d.Size > 10 {
				rc, _ := a.Open(context.Background(), d.Digest, d.Size/3, d.Size/3)
				part, _ := io.ReadAll(rc)
				if !bytes.Equal(part, stream[d.Digest][d.Size/3:d.Size/3+d.Size/3]) {
					t.Fatalf("range of %s differs", d.Digest)
				}
			}
		}
		a.Close()
	}
}

// TestArchiveReadAhead: a blob spanning many frames is read with its next
// frames decoded ahead; a damaged frame ahead fails the read when it is
// reached (no byte of it is returned), and closing a reader early stops
// its read-ahead.
func TestArchiveReadAhead(t *testing.T) {
	p := writeV2(t, WriteOptions{FrameSize: smallFrames})
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	var big Descriptor
	for _, d := range a.Head().Body {
		if d.Size > big.Size {
			big = d
		}
	}
	e := a.head.layout.Entries[a.blobs[big.Digest]]
	first, last := a.frameAt(e.Data), a.frameAt(e.Data+big.Size-1)
	if last-first < 3 {
		t.Fatalf("the largest blob spans frames %d-%d; the test needs more", first, last)
	}
	// Close early, many times: the read-ahead goroutines end.
	before := runtime.NumGoroutine()
	for range 20 {
		rc, err := a.Open(context.Background(), big.Digest, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left after closing the readers (%d before)", n, before)
	}
	// The Archive closed under a reader still reading ahead: Close waits
	// for the frame being decoded, then closes the decoder; no panic, no hang.
	rc, err := a.Open(context.Background(), big.Digest, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Archive.Close hangs while a reader is open")
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("a reader of a closed Archive read to its end")
	}

	// A damaged frame in the middle of the blob.
	_, bad := damageFrame(t, p, first+2, middle, 0x40)
	if a, err = OpenArchive(p); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err = a.Open(context.Background(), big.Digest, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Frame != first+2 {
		t.Fatalf("read through a damaged frame: err = %v, want frame %d named", err, first+2)
	}
	if limit := bad.UncompressedOffset - e.Data; int64(len(got)) > limit {
		t.Errorf("%d bytes returned, past the damaged frame's start (%d)", len(got), limit)
	}
}

// readBodyBlobs reads every body blob with the streaming reader.
func readBodyBlobs(t *testing.T, set *Set) (map[string][]byte, error) {
	t.Helper()
	rc, err := set.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string][]byte{}
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(e)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Digest] = b
	}
}

func TestV2SignInPlaceKeepsVolumes(t *testing.T) {
	t.Parallel()
	first := writeV2(t, WriteOptions{FrameSize: smallFrames, VolumeSize: 200 << 10})
	before, _ := os.Stat(first)
	res, err := Sign(context.Background(), first, []Signer{newEdSigner(t, 7)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InPlace {
		t.Fatal("signing a volume set did not happen in place")
	}
	after, _ := os.Stat(first)
	if before.Size() != after.Size() {
		t.Fatalf("volume 1 changed size: %d -> %d", before.Size(), after.Size())
	}
	set, err := OpenSet(filepath.Dir(first))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check(context.Background()); err != nil {
		t.Fatalf("after signing: %v", err)
	}
	if _, err := readBodyBlobs(t, set); err != nil {
		t.Fatal(err)
	}
}

// TestPlanBodyHeaderLengths: planBody takes one ustar header's length for
// every blob under 8 GiB and each larger blob's own PAX header length; each
// entry's span must equal the length of the header actually written.
func TestPlanBodyHeaderLengths(t *testing.T) {
	mtime := time.Unix(1767225600, 0).UTC()
	var blobs []Descriptor
	for i, size := range []int64{0, 1, 511, 512, 4 << 20, ustarMaxSize - 1, ustarMaxSize, ustarMaxSize + 1, 1 << 36, 3, 999999999999} {
		blobs = append(blobs, Descriptor{MediaType: "application/octet-stream", Digest: checked.Digest([]byte{byte(i)}), Size: size})
	}
	l, err := planBody(blobs, mtime, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		hdr, err := l.header(e)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(hdr)) != e.Data-e.Start {
			t.Errorf("blob of %d bytes: header of %d bytes, layout gives %d", e.Desc.Size, len(hdr), e.Data-e.Start)
		}
	}
}

// fileAndHead reads the bundle file p and its head.
func fileAndHead(t *testing.T, p string) ([]byte, *Head) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestHeadDocumentsOfTinyValues: a head whose bundle.json, frames.json or
// index.json is an array of hundreds of thousands of "{}" (a few MB of
// JSON, each element a whole Go value once decoded) is refused as too
// large for its size, naming the entry, without decoding it: reading the
// head allocates a small multiple of the document, not gigabytes.
func TestHeadDocumentsOfTinyValues(t *testing.T) {
	b, _ := fileAndHead(t, writeV2(t, WriteOptions{FrameSize: smallFrames}))
	tinyArray := func(prefix string) []byte {
		return []byte(prefix + strings.Repeat("{},", 300_000) + "{}]}")
	}
	for _, c := range []struct {
		entry string
		data  []byte
	}{
		{EntryManifest, tinyArray(`{"schemaVersion":1,"created":"2026-01-02T03:04:05Z","artifacts":[`)},
		{EntryFrames, tinyArray(`{"frames":[`)},
		{EntryIndex, tinyArray(`{"schemaVersion":2,"manifests":[`)},
	} {
		t.Run(c.entry, func(t *testing.T) {
			bad := rewriteHead(t, b, func(h *Head, e headEntry, _ *tar.Header) []byte {
				switch {
				case e.name == c.entry:
					return c.data
				case e.name == EntryManifest && c.entry == EntryIndex:
					// bundle.json names the new index.json, so that it is
					// the index's own content that is refused.
					at := bytes.Index(e.data, []byte(h.Manifest.Root.Digest))
					root := bytes.Replace(e.data[at:], []byte(h.Manifest.Root.Digest), []byte(checked.Digest(c.data)), 1)
					root = bytes.Replace(root, fmt.Appendf(nil, `"size": %d`, h.Manifest.Root.Size), fmt.Appendf(nil, `"size": %d`, len(c.data)), 1)
					return append(bytes.Clone(e.data[:at]), root...)
				}
				return e.data
			})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := ReadHead(bytes.NewReader(bad))
			runtime.ReadMemStats(&after)
			var ee *EntryError
			if !errors.Is(err, strictjson.ErrTooLarge) || !errors.As(err, &ee) || ee.Entry != c.entry {
				t.Fatalf("ReadHead: %v, want %s refused as too large", err, c.entry)
			}
			// The head is decompressed (a few MB) and scanned; 300,000
			// decoded values would be 20-150 MB.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*uint64(len(c.data))+(4<<20) {
				t.Errorf("reading the refused head allocated %d MB for a %d MB document", alloc>>20, len(c.data)>>20)
			}
		})
	}
}

// zeros is an io.Reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestDecodeFrameStopsAtIndexedSize: a frame that decodes to 256 MiB
// (zeros, no content size in its header) where the index says 64 KiB is
// refused after at most 64 KiB + 1 of output: decoding it costs memory of
// the indexed size, not of the bomb.
func TestDecodeFrameStopsAtIndexedSize(t *testing.T) {
	var bomb bytes.Buffer
	enc, err := zstd.NewWriter(&bomb, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(enc, io.LimitReader(zeros{}, 256<<20)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	dec, err := newFrameDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = decodeFrame(dec, bomb.Bytes(), 64<<10, nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "more than the 65536 bytes") {
		t.Fatalf("decodeFrame of a 256 MiB frame indexed as 64 KiB: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("decoding it allocated %d MiB", alloc>>20)
	}
}

// TestLargeFramesAtEveryLevel: a frame of the largest size, of bytes that
// do not compress, is within the format's bound on its compressed size at
// every level (the fastest level cuts 64 KiB blocks, each with a header).
func TestLargeFramesAtEveryLevel(t *testing.T) {
	t.Parallel()
	noise := make([]byte, MaxFrameSize+MaxFrameSize/2)
	rand.NewChaCha8([32]byte{7}).Read(noise)
	files := memFiles{}
	it, err := NewFileItem("data/noise.bin", "var/noise.bin", "0644", files.layer("noise.bin", noise, ""))
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	for _, level := range []Level{LevelFastest, LevelDefault} {
		w, err := NewWriter("big", "1.0.0", time.Unix(1767225600, 0), []Item{*it})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "big.airlock")
		if _, err := w.WriteFile(context.Background(), out, WriteOptions{Level: level, FrameSize: MaxFrameSize}); err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if _, err := OpenArchive(out); err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
	}
}
