package benchmark

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixtureTime is the mtime of every generated tar entry: 2026-01-01T00:00:00Z.
var fixtureTime = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// layerFile is one file in a generated layer.
type layerFile struct {
	name string
	size int64
	kind func(int64) chunkKind
}

// layoutWriter writes an OCI image layout by hand, streaming each layer to
// disk while hashing it, so that no layer is ever held in memory. Layers are
// uncompressed tar archives (application/vnd.oci.image.layer.v1.tar), which
// the image spec allows and which keeps generation fast.
type layoutWriter struct {
	dir       string
	manifests []ocispec.Descriptor
}

func newLayoutWriter(dir string) (*layoutWriter, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	return &layoutWriter{dir: dir}, nil
}

// streamBlob writes what fill produces to the blob store and describes it.
func (lw *layoutWriter) streamBlob(mediaType string, fill func(io.Writer) error) (ocispec.Descriptor, error) {
	f, err := os.CreateTemp(filepath.Join(lw.dir, "blobs", "sha256"), ".tmp-")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := fill(cw); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := f.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(lw.dir, "blobs", "sha256", sum)); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: godigest.Digest("sha256:" + sum), Size: cw.n}, nil
}

func (lw *layoutWriter) jsonBlob(mediaType string, v any) (ocispec.Descriptor, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return lw.streamBlob(mediaType, func(w io.Writer) error {
		_, err := w.Write(raw)
		return err
	})
}

// addImage writes a linux/amd64 image with one layer per element of layers
// and names it tag in index.json.
func (lw *layoutWriter) addImage(tag, label string, layers [][]layerFile) error {
	var descs []ocispec.Descriptor
	var diffIDs []godigest.Digest
	for i, files := range layers {
		d, err := lw.streamBlob(ocispec.MediaTypeImageLayer, func(w io.Writer) error {
			return writeLayer(w, fmt.Sprintf("%s/layer%d", label, i), files)
		})
		if err != nil {
			return err
		}
		descs = append(descs, d)
		diffIDs = append(diffIDs, d.Digest) // uncompressed: the diff ID is the digest
	}
	created := fixtureTime
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cd, err := lw.jsonBlob(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
		Layers:    descs,
	}
	md, err := lw.jsonBlob(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return err
	}
	md.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	lw.manifests = append(lw.manifests, md)
	return nil
}

// finish writes oci-layout and index.json.
func (lw *layoutWriter) finish() error {
	marker, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(lw.dir, ocispec.ImageLayoutFile), marker, 0o644); err != nil {
		return err
	}
	idx, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: lw.manifests,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(lw.dir, "index.json"), idx, 0o644)
}

// writeLayer writes an uncompressed tar archive of generated files.
func writeLayer(w io.Writer, label string, files []layerFile) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: f.size, Mode: 0o644, ModTime: fixtureTime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := generate(tw, label+"/"+f.name, f.size, f.kind); err != nil {
			return err
		}
	}
	return tw.Close()
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
