package benchmark

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/klauspost/compress/zstd"
)

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int64
		kind func(int64) chunkKind
	}{
		{"random", 3*chunkSize + 17, allRandom},
		{"text", 2*chunkSize + 5, allText},
		{"mixed", 5 * chunkSize, halfAndHalf},
		{"empty", 0, halfAndHalf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var a, b bytes.Buffer
			if err := generate(&a, tc.name, tc.size, tc.kind); err != nil {
				t.Fatal(err)
			}
			if err := generate(&b, tc.name, tc.size, tc.kind); err != nil {
				t.Fatal(err)
			}
			if int64(a.Len()) != tc.size {
				t.Fatalf("generated %d bytes, want %d", a.Len(), tc.size)
			}
			if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
				t.Fatal("two runs generated different bytes")
			}
		})
	}
}

// TestCompressibility checks that text compresses like text and random
// chunks do not compress, so the pack benchmark exercises both paths.
func TestCompressibility(t *testing.T) {
	t.Parallel()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, tc := range []struct {
		name     string
		kind     func(int64) chunkKind
		min, max float64 // bounds of input/output size
	}{
		{"text", allText, 3, 12},
		{"random", allRandom, 0.99, 1.01},
	} {
		var buf bytes.Buffer
		if err := generate(&buf, tc.name, 2*chunkSize, tc.kind); err != nil {
			t.Fatal(err)
		}
		out := enc.EncodeAll(buf.Bytes(), nil)
		ratio := float64(buf.Len()) / float64(len(out))
		if ratio < tc.min || ratio > tc.max {
			t.Errorf("%s: zstd ratio %.2f, want %.2f..%.2f", tc.name, ratio, tc.min, tc.max)
		}
	}
}

// TestLayoutIsValidOCI reads a small generated layout back with
// go-containerregistry and validates every image in it.
func TestLayoutIsValidOCI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lw, err := newLayoutWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	layers := [][]layerFile{
		{{name: "bin/tool", size: chunkSize + 3, kind: allRandom}},
		{{name: "var/log/a.log", size: 1000, kind: allText}, {name: "etc/empty", size: 0, kind: allText}},
	}
	for _, tag := range []string{"one", "two"} {
		if err := lw.addImage(tag, tag, layers); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.finish(); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index lists %d manifests, want 2", len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkImage(img); err != nil {
			t.Errorf("%s: %v", d.Annotations["org.opencontainers.image.ref.name"], err)
		}
	}
}

// checkImage re-hashes every layer of img against its manifest digest and its
// config diff ID, and reads each layer as a tar archive.
func checkImage(img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		return errors.New("config does not say linux/amd64")
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return errors.New("config lists a different number of diff IDs than the manifest has layers")
	}
	for i, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h := sha256.New()
		tr := tar.NewReader(io.TeeReader(rc, h))
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				rc.Close()
				return err
			}
		}
		_, err = io.Copy(h, rc) // the end-of-archive blocks
		rc.Close()
		if err != nil {
			return err
		}
		got := "sha256:" + hex.EncodeToString(h.Sum(nil))
		if got != want.String() || got != cfg.RootFS.DiffIDs[i].String() {
			return errors.New("layer " + want.String() + " hashes to " + got + " or its diff ID differs")
		}
	}
	return nil
}
