package pack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
)

// memImage is an image held in memory and served as an expensive
// (Staged) source, the way a registry is: Pack pulls its layers ahead of
// the writer. serve, when set, replaces the bytes of a blob as they are
// read (to lie, slow down or die).
type memImage struct {
	root  bundle.Descriptor
	raw   []byte
	blobs map[string][]byte
	serve func(d bundle.Descriptor, r io.Reader) io.Reader
}

func (m *memImage) Resolve(context.Context, string) (ImageSource, error) { return m, nil }
func (m *memImage) Root() (bundle.Descriptor, []byte)                    { return m.root, m.raw }
func (m *memImage) Repository() string                                   { return "registry.test/app" }
func (m *memImage) Staged() bool                                         { return true }
func (m *memImage) Manifest(context.Context, bundle.Descriptor) ([]byte, error) {
	return nil, errors.New("no child manifests")
}

func (m *memImage) Blob(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
	b, ok := m.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", d.Digest)
	}
	var r io.Reader = bytes.NewReader(b)
	if m.serve != nil {
		r = m.serve(d, r)
	}
	return io.NopCloser(r), nil
}

// newMemImage builds an OCI image of n layers of size random bytes each
// (incompressible, so the writer is slower than the pulls).
func newMemImage(t *testing.T, n, size int) (*memImage, []bundle.Descriptor) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	m := &memImage{blobs: map[string][]byte{}}
	var layers []bundle.Descriptor
	for i := range n {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = byte(i)
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(b, types.OCILayer)); err != nil {
			t.Fatal(err)
		}
		d := bundle.Descriptor{MediaType: string(types.OCILayer), Digest: checked.Digest(b), Size: int64(len(b))}
		m.blobs[d.Digest] = b
		layers = append(layers, d)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	m.blobs[checked.Digest(cfg)] = cfg
	m.raw = raw
	m.root = bundle.Descriptor{MediaType: string(types.OCIManifestSchema1), Digest: checked.Digest(raw), Size: int64(len(raw))}
	var _ v1.Image = img
	return m, layers
}

const memImageSpec = "name: prefetch\nversion: 1.0.0\nimages:\n  - ref: registry.test/app:1.0\n"

// slowReader delivers at most 64 KiB per read, after a pause.
type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// TestPackPrefetchMemoryBound packs more layers than the prefetch memory
// budget holds, with a first layer that arrives slowly, so that the pulls
// ahead of it fill the budget: they must hold no more than the budget in
// memory (plus what the writer is draining), spool the rest, leave no
// spool file behind, and give the same bundle, byte for byte, as a pack
// whose budget holds everything and one that spools everything ahead.
func TestPackPrefetchMemoryBound(t *testing.T) {
	t.Parallel()
	const layerSize = 3 << 20
	img, layers := newMemImage(t, 6, layerSize)
	img.serve = func(d bundle.Descriptor, r io.Reader) io.Reader {
		if d.Digest == layers[0].Digest {
			return &slowReader{r: r, pause: 2 * time.Millisecond}
		}
		return r
	}
	const budget = 2 << 20
	cases := []struct {
		name    string
		memory  int64
		spooled func(int64) bool
		peak    int64 // most bytes in memory at once
	}{
		{"budget smaller than the layers", budget, func(n int64) bool { return n > 0 }, budget + prefetchHeadCap + prefetchChunk},
		{"budget holding everything", 0, func(n int64) bool { return n == 0 }, 6*layerSize + 4*prefetchChunk},
		{"no memory: everything ahead spooled", -1, func(n int64) bool { return n >= 3*layerSize }, prefetchHeadCap + prefetchChunk},
	}
	var first []byte
	for _, c := range cases {
		dir, tmp := t.TempDir(), t.TempDir()
		var res *Result
		out, err := packSpecResult(t, dir, memImageSpec, Options{Images: img, TempDir: tmp, Jobs: 4, PrefetchMemory: c.memory, prefetchPause: time.Millisecond}, &res)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		st := res.Pulled
		t.Logf("%s: pulled %d blobs, spooled %d bytes, peak memory %d bytes", c.name, st.Blobs, st.SpooledBytes, st.PeakMemoryBytes)
		if st.Blobs != len(layers) {
			t.Errorf("%s: pulled %d blobs, want %d", c.name, st.Blobs, len(layers))
		}
		if !c.spooled(st.SpooledBytes) {
			t.Errorf("%s: spooled %d bytes", c.name, st.SpooledBytes)
		}
		if st.PeakMemoryBytes > c.peak {
			t.Errorf("%s: held %d bytes in memory at once, bound is %d", c.name, st.PeakMemoryBytes, c.peak)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%s: left %d entries in the temporary directory", c.name, len(left))
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Errorf("%s: the bundle differs from the first case's", c.name)
		}
	}
}

// TestPackPullFailures: a source that sends other bytes for a layer, one
// that dies in the middle of a layer, and one that sends a layer too long
// each stop the pack with an error naming the image and the layer, and
// leave nothing at the output nor in the temporary directory; whether the
// layer is the one the writer reads or one pulled ahead of it.
func TestPackPullFailures(t *testing.T) {
	t.Parallel()
	errDied := errors.New("connection reset by peer")
	faults := []struct {
		name  string
		serve func(io.Reader) io.Reader
		is    error
	}{
		{"other bytes", func(r io.Reader) io.Reader {
			b, _ := io.ReadAll(r)
			b = bytes.Clone(b)
			b[len(b)/2] ^= 1
			return bytes.NewReader(b)
		}, checked.ErrDigestMismatch},
		{"dies mid-layer", func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, 1<<20), iotestErr{errDied})
		}, errDied},
		{"too long", func(r io.Reader) io.Reader { return io.MultiReader(r, bytes.NewReader([]byte{0})) }, checked.ErrSizeMismatch},
	}
	for _, f := range faults {
		for _, which := range []int{0, 3} { // the first layer, one pulled ahead
			t.Run(fmt.Sprintf("%s/layer %d", f.name, which), func(t *testing.T) {
				t.Parallel()
				img, layers := newMemImage(t, 5, 2<<20)
				bad := layers[which].Digest
				img.serve = func(d bundle.Descriptor, r io.Reader) io.Reader {
					if d.Digest == bad {
						return f.serve(r)
					}
					return r
				}
				dir, tmp := t.TempDir(), t.TempDir()
				out, err := packSpec(t, dir, memImageSpec, Options{Images: img, TempDir: tmp, Jobs: 4})
				if err == nil {
					t.Fatal("pack succeeded")
				}
				t.Log(err)
				var se *SourceError
				if !errors.As(err, &se) || se.Artifact != "image registry.test/app:1.0" {
					t.Errorf("error does not name the image: %v", err)
				}
				if !bytes.Contains([]byte(err.Error()), []byte(bad)) {
					t.Errorf("error does not name the layer %s: %v", bad, err)
				}
				if !errors.Is(err, f.is) {
					t.Errorf("error is not %v: %v", f.is, err)
				}
				if _, serr := os.Stat(out); !os.IsNotExist(serr) {
					t.Errorf("output exists after a failed pack: %v", serr)
				}
				for _, d := range []string{filepath.Dir(out), tmp} {
					if left, _ := os.ReadDir(d); len(left) != 0 {
						t.Errorf("left %d entries in %s", len(left), d)
					}
				}
			})
		}
	}
}

// iotestErr is a reader that fails with err.
type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// packSpecResult is packSpec that also returns the Result.
func packSpecResult(t *testing.T, dir, yaml string, opts Options, res **Result) (string, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadSpec(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(t.TempDir(), "out.airlock")
	opts.Output = out
	opts.Created = time.Unix(1767225600, 0)
	*res, err = Pack(context.Background(), spec, opts)
	return out, err
}
