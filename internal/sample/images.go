package sample

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one sample image or index and the repository/tag it is published under.
type Image struct {
	Repo  string        // repository path without host, e.g. "demo/api"
	Tag   string        // tag, e.g. "1.0"
	Index v1.ImageIndex // set for a multi-arch index, else nil
	Image v1.Image      // set for a single image, else nil
}

// Ref returns "Repo:Tag", the reference without a registry host.
func (i Image) Ref() string { return i.Repo + ":" + i.Tag }

// check reports ErrInvalidImage unless exactly one of Index and Image is set.
func (i Image) check() error {
	if (i.Index == nil) == (i.Image == nil) {
		return fmt.Errorf("sample: %s: %w", i.Ref(), ErrInvalidImage)
	}
	return nil
}

// Sizes of the seeded payloads inside the sample layers.
const (
	BaseBinSize = 200 << 10 // bytes in /usr/lib/base.bin of the base layer
	AppBinSize  = 100 << 10 // bytes in /app/<program> of each app layer
)

// Images builds the sample images, in this order:
//
//   - demo/api:1.0, an OCI image index for linux/amd64 and linux/arm64;
//     each platform image has the shared base layer and its own app layer
//     with /app/api;
//   - demo/worker:1.0, a single OCI image: base layer and /app/worker;
//   - demo/legacy:1.0, a single image with Docker schema 2 media types:
//     the same base layer bytes and /app/legacy.
//
// The base layer has the same digest in every image. The result is
// deterministic: every call returns the same digests.
func Images() ([]Image, error) {
	baseGz, err := baseLayerBytes()
	if err != nil {
		return nil, err
	}
	ociPlatform := func(program, arch string) (v1.Image, error) {
		return buildImage(baseGz, program, arch, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer)
	}

	amd64, err := ociPlatform("api", "amd64")
	if err != nil {
		return nil, err
	}
	arm64, err := ociPlatform("api", "arm64")
	if err != nil {
		return nil, err
	}
	api := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	), types.OCIImageIndex)

	worker, err := ociPlatform("worker", "amd64")
	if err != nil {
		return nil, err
	}
	legacy, err := buildImage(baseGz, "legacy", "amd64", types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer)
	if err != nil {
		return nil, err
	}

	return []Image{
		{Repo: "demo/api", Tag: "1.0", Index: api},
		{Repo: "demo/worker", Tag: "1.0", Image: worker},
		{Repo: "demo/legacy", Tag: "1.0", Image: legacy},
	}, nil
}

// buildImage assembles a linux/arch image of the base layer and an app
// layer for program, using the given manifest, config and layer media types.
func buildImage(baseGz []byte, program, arch string, manifestMT, configMT, layerMT types.MediaType) (v1.Image, error) {
	base, err := newLayer(baseGz, layerMT)
	if err != nil {
		return nil, fmt.Errorf("sample: base layer: %w", err)
	}
	appGz, err := appLayerBytes(program, arch, AppBinSize)
	if err != nil {
		return nil, err
	}
	app, err := newLayer(appGz, layerMT)
	if err != nil {
		return nil, fmt.Errorf("sample: %s layer: %w", program, err)
	}

	created := v1.Time{Time: Timestamp}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			User:       "65532:65532",
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint: []string{"/app/" + program},
			WorkingDir: "/app",
			Labels: map[string]string{
				"org.opencontainers.image.title":   "demo/" + program,
				"org.opencontainers.image.version": "1.0",
				"org.opencontainers.image.source":  "https://example.com/airlock-demo",
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}

	img := mutate.MediaType(empty.Image, manifestMT)
	img = mutate.ConfigMediaType(img, configMT)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("sample: %s config: %w", program, err)
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "ADD base.tar.gz / # airlock sample base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "COPY " + program + " /app/" + program + " # airlock sample"}},
	)
	if err != nil {
		return nil, fmt.Errorf("sample: %s layers: %w", program, err)
	}
	return img, nil
}
