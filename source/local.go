package source

import (
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/pack"
)

// maxManifest bounds a root manifest read from a local source.
const maxManifest = bundle.MaxManifestSize

// layoutSource reads an image or index from an OCI image layout directory.
type layoutSource struct {
	path layout.Path
	root bundle.Descriptor
	raw  []byte
}

func openLayout(ref string) (pack.ImageSource, error) {
	dir, tag, dig, err := pack.ParseOCIRef(ref)
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err, Hint: "the path must be an OCI image layout directory (oci-layout, index.json, blobs/)"}
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	// An exact name wins; otherwise a name ending in ":TAG" (a layout written
	// by skopeo names entries REPO:TAG), if only one does.
	var found, bySuffix []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[bundle.AnnotationRefName]
		names = append(names, n)
		switch {
		case dig != "" && d.Digest.String() == dig:
			found = append(found, d)
		case tag != "" && n == tag:
			found = append(found, d)
		case tag != "" && strings.HasSuffix(n, ":"+tag):
			bySuffix = append(bySuffix, d)
		case tag == "" && dig == "":
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		found = bySuffix
	}
	if len(found) != 1 {
		err := fmt.Errorf("%w: no image matches in %s", ErrNotFound, dir)
		if len(found) > 1 {
			err = fmt.Errorf("%w: %d images match in %s", ErrAmbiguous, len(found), dir)
		}
		return nil, &SourceError{Ref: ref, Err: err, Hint: fmt.Sprintf("name one with oci:%s:NAME or @sha256:...; the layout has %q", dir, names)}
	}
	d := found[0]
	if d.Size > maxManifest {
		return nil, &SourceError{Ref: ref, Err: fmt.Errorf("manifest of %d bytes exceeds %d", d.Size, maxManifest)}
	}
	raw, err := p.Bytes(d.Digest)
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	return &layoutSource{path: p, raw: raw, root: bundle.Descriptor{MediaType: string(d.MediaType), Digest: d.Digest.String(), Size: d.Size}}, nil
}

func (s *layoutSource) Root() (bundle.Descriptor, []byte) { return s.root, s.raw }
func (s *layoutSource) Repository() string                { return string(s.path) }
func (s *layoutSource) Staged() bool                      { return false }

func (s *layoutSource) Manifest(_ context.Context, d bundle.Descriptor) ([]byte, error) {
	h, err := v1.NewHash(d.Digest)
	if err != nil {
		return nil, err
	}
	return s.path.Bytes(h)
}

func (s *layoutSource) Blob(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
	h, err := v1.NewHash(d.Digest)
	if err != nil {
		return nil, err
	}
	return s.path.Blob(h)
}

// archiveSource reads the single image of a `docker save` tarball.
type archiveSource struct {
	img    v1.Image
	root   bundle.Descriptor
	raw    []byte
	config string
}

func openArchive(ref string) (pack.ImageSource, error) {
	path := strings.TrimPrefix(ref, "docker-archive:")
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err, Hint: "the file must be `docker save` output holding exactly one image"}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	dig, err := img.Digest()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, &SourceError{Ref: ref, Err: err}
	}
	return &archiveSource{img: img, raw: raw, config: cfg.String(), root: bundle.Descriptor{MediaType: string(mt), Digest: dig.String(), Size: int64(len(raw))}}, nil
}

func (s *archiveSource) Root() (bundle.Descriptor, []byte) { return s.root, s.raw }
func (s *archiveSource) Repository() string                { return "" }
func (s *archiveSource) Staged() bool                      { return true }

func (s *archiveSource) Manifest(context.Context, bundle.Descriptor) ([]byte, error) {
	return nil, fmt.Errorf("a docker-archive image has no child manifests")
}

func (s *archiveSource) Blob(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
	if d.Digest == s.config {
		b, err := s.img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		return readCloser(b), nil
	}
	h, err := v1.NewHash(d.Digest)
	if err != nil {
		return nil, err
	}
	l, err := s.img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}
