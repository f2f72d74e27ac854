package sample

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// RefNameAnnotation is the OCI image layout annotation that names an entry
// of index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Push writes each image to host/Repo:Tag, in order, with remote.Write or
// remote.WriteIndex. host is "host[:port]"; loopback and private addresses
// are reached over plain HTTP, others over HTTPS (go-containerregistry's
// rule). opts are passed on after remote.WithContext(ctx), so a caller can
// add authentication or a transport.
func Push(ctx context.Context, host string, images []Image, opts ...remote.Option) error {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	for _, img := range images {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := img.check(); err != nil {
			return err
		}
		ref, err := hostTag(host, img)
		if err != nil {
			return err
		}
		if img.Index != nil {
			err = remote.WriteIndex(ref, img.Index, opts...)
		} else {
			err = remote.Write(ref, img.Image, opts...)
		}
		if err != nil {
			return fmt.Errorf("sample: push %s: %w", ref, err)
		}
	}
	return nil
}

// hostTag parses host/Repo:Tag strictly.
func hostTag(host string, img Image) (name.Tag, error) {
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return name.Tag{}, fmt.Errorf("sample: registry host %q: %w: %w", host, ErrInvalidHost, err)
	}
	ref, err := name.NewTag(host+"/"+img.Ref(), name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("sample: reference %q: %w: %w", host+"/"+img.Ref(), ErrInvalidHost, err)
	}
	if ref.RegistryStr() != host {
		return name.Tag{}, fmt.Errorf("sample: registry host %q is read as %q: %w", host, ref.RegistryStr(), ErrInvalidHost)
	}
	return ref, nil
}

// WriteOCILayout writes an OCI image layout at dir (created if missing)
// holding every image. Each index.json entry carries the annotation
// org.opencontainers.image.ref.name = "Repo:Tag" (for example
// "demo/api:1.0"), so `skopeo copy oci:DIR:demo/api:1.0 ...` selects it.
func WriteOCILayout(dir string, images []Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("sample: OCI layout %s: %w", dir, err)
	}
	for _, img := range images {
		if err := img.check(); err != nil {
			return err
		}
		ann := layout.WithAnnotations(map[string]string{RefNameAnnotation: img.Ref()})
		if img.Index != nil {
			err = p.AppendIndex(img.Index, ann)
		} else {
			err = p.AppendImage(img.Image, ann)
		}
		if err != nil {
			return fmt.Errorf("sample: OCI layout %s: add %s: %w", dir, img.Ref(), err)
		}
	}
	return nil
}

// WriteDockerArchive writes img as a `docker save` style tarball at path,
// tagged Repo:Tag (for example "demo/legacy:1.0"). It returns
// ErrNotSingleImage for a multi-arch index.
func WriteDockerArchive(path string, img Image) (err error) {
	if err := img.check(); err != nil {
		return err
	}
	if img.Index != nil {
		return fmt.Errorf("sample: docker archive of %s: %w", img.Ref(), ErrNotSingleImage)
	}
	tag, err := name.NewTag(img.Ref())
	if err != nil {
		return fmt.Errorf("sample: docker archive of %s: %w", img.Ref(), err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sample: docker archive: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("sample: docker archive: %w", cerr))
		}
	}()
	if err := tarball.Write(tag, img.Image, f); err != nil {
		return fmt.Errorf("sample: docker archive %s: %w", path, err)
	}
	return nil
}
