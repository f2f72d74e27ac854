package bundle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/safepath"

	"github.com/airlock-dev/airlock/internal/checked"
)

// TestIndexPlatformMustMatchConfig (issue 10): an index entry that labels a
// linux/amd64 image linux/s390x is refused; platforms are facts of the
// configs, not labels.
func TestIndexPlatformMustMatchConfig(t *testing.T) {
	t.Parallel()
	blobs := headContent{}
	put := func(b string) Descriptor {
		d := Descriptor{Digest: checked.Digest([]byte(b)), Size: int64(len(b))}
		blobs[d.Digest] = []byte(b)
		return d
	}
	cfg := put(`{"architecture":"amd64","os":"linux"}`)
	layer := "sha256:" + strings.Repeat("a", 64)
	man := put(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}]}`, MediaTypeOCIManifest, cfg.Digest, cfg.Size, layer))
	index := func(plat string) (Descriptor, []byte) {
		os, arch, _ := strings.Cut(plat, "/")
		raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":%q,"os":%q}}]}`, MediaTypeOCIIndex, MediaTypeOCIManifest, man.Digest, man.Size, arch, os)
		d := put(raw)
		d.MediaType = MediaTypeOCIIndex
		return d, []byte(raw)
	}
	d, raw := index("linux/amd64")
	g, err := Walk(context.Background(), d, raw, blobs, nil)
	if err != nil || strings.Join(g.Platforms, ",") != "linux/amd64" {
		t.Fatalf("honest index: %v %v", g, err)
	}
	d, raw = index("linux/s390x")
	_, err = Walk(context.Background(), d, raw, blobs, nil)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("lying index: err = %v", err)
	}
}

// TestCheckClaims: each claim of bundle.json that its content contradicts.
func TestCheckClaims(t *testing.T) {
	t.Parallel()
	subj := "sha256:" + strings.Repeat("b", 64)
	manifest := func(fields string) *Graph {
		return &Graph{Manifests: []Blob{{Descriptor: Descriptor{MediaType: MediaTypeOCIManifest}, Data: []byte("{" + fields + "}")}}}
	}
	img := &Graph{Platforms: []string{"linux/amd64"}}
	oci := Descriptor{MediaType: MediaTypeOCIManifest}
	spdx := &SBOMSummary{Format: "spdx"}
	ok := []struct {
		name string
		a    Artifact
		g    *Graph
	}{
		{"image", Artifact{Kind: KindImage, Ref: "registry.example/a:1", Platforms: []string{"linux/amd64"}}, img},
		{"file", Artifact{Kind: KindFile, Descriptor: oci}, manifest(`"artifactType":"` + ArtifactTypeFile + `"`)},
		{"sbom", Artifact{Kind: KindSBOM, Descriptor: oci, SBOM: spdx}, manifest(`"artifactType":"application/spdx+json","layers":[{"mediaType":"application/spdx+json"}]`)},
		{"cosign tag", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj, Tag: "sha256-" + strings.Repeat("b", 64) + ".sig"}, manifest(`"config":{"mediaType":"application/vnd.oci.image.config.v1+json"}`)},
		{"referrer", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj, ArtifactType: "application/spdx+json"}, manifest(`"artifactType":"application/spdx+json","subject":{"digest":"` + subj + `"}`)},
	}
	for _, tc := range ok {
		if err := checkClaims(tc.a, tc.g, ""); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	bad := []struct {
		name string
		a    Artifact
		g    *Graph
	}{
		{"image claims a platform it lacks", Artifact{Kind: KindImage, Ref: "registry.example/a:1", Platforms: []string{"linux/amd64", "linux/s390x"}}, img},
		{"image omits a platform it has", Artifact{Kind: KindImage, Ref: "registry.example/a:1"}, img},
		{"image ref that is no reference", Artifact{Kind: KindImage, Ref: "Registry Example/A", Platforms: []string{"linux/amd64"}}, img},
		{"model name outside the grammar", Artifact{Kind: KindModel, Name: "../m", Descriptor: oci}, manifest(`"artifactType":"` + ArtifactTypeModel + `"`)},
		{"file with platforms", Artifact{Kind: KindFile, Descriptor: oci, Platforms: []string{"linux/amd64"}}, manifest(`"artifactType":"` + ArtifactTypeFile + `"`)},
		{"file that is a model", Artifact{Kind: KindFile, Descriptor: oci}, manifest(`"artifactType":"` + ArtifactTypeModel + `"`)},
		{"file that is an index", Artifact{Kind: KindFile, Descriptor: Descriptor{MediaType: MediaTypeOCIIndex}}, manifest(``)},
		{"sbom whose format is another", Artifact{Kind: KindSBOM, Descriptor: oci, SBOM: &SBOMSummary{Format: "cyclonedx"}}, manifest(`"artifactType":"application/spdx+json","layers":[{"mediaType":"application/spdx+json"}]`)},
		{"attachment claiming an SBOM type", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj, ArtifactType: "application/spdx+json"}, manifest(`"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","subject":{"digest":"` + subj + `"}`)},
		{"referrer of another subject", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj}, manifest(`"subject":{"digest":"sha256:` + strings.Repeat("c", 64) + `"}`)},
		{"referrer without a subject", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj}, manifest(``)},
		{"cosign tag of another subject", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj, Tag: "sha256-" + strings.Repeat("c", 64) + ".sig"}, manifest(``)},
		{"cosign tag of another shape", Artifact{Kind: KindAttachment, Descriptor: oci, SubjectDigest: subj, Tag: "latest"}, manifest(``)},
	}
	for _, tc := range bad {
		err := checkClaims(tc.a, tc.g, "")
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want malformed", tc.name, err)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// TestManifestMediaTypeRequiredExceptHelm: a manifest must state its media
// type, except a Helm chart manifest as Helm pushes it (OCI manifest by its
// descriptor, Helm's chart config), which Helm writes without one.
func TestManifestMediaTypeRequiredExceptHelm(t *testing.T) {
	t.Parallel()
	cfg := []byte(`{"name":"c","version":"1.0.0"}`)
	layer := checkedDigest([]byte("tgz"))
	build := func(configType string) (Descriptor, []byte, headContent) {
		raw := []byte(`{"schemaVersion":2,"config":{"mediaType":"` + configType + `","digest":"` + checkedDigest(cfg) + `","size":` + strconv.Itoa(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"` + layer + `","size":3}]}`)
		d := Descriptor{MediaType: MediaTypeOCIManifest, Digest: checkedDigest(raw), Size: int64(len(raw))}
		return d, raw, headContent{d.Digest: raw, checkedDigest(cfg): cfg}
	}
	d, raw, blobs := build(MediaTypeHelmConfig)
	if _, err := Walk(context.Background(), d, raw, blobs, nil); err != nil {
		t.Fatalf("a Helm chart manifest as Helm pushes it: %v", err)
	}
	d, raw, blobs = build("application/vnd.oci.image.config.v1+json")
	if _, err := Walk(context.Background(), d, raw, blobs, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an image manifest without mediaType: %v, want ErrMalformed", err)
	}
}

// TestPackCheckOnlyOnImages: only an image may record how images[].verify
// checked it; the claim is bounded.
func TestPackCheckOnlyOnImages(t *testing.T) {
	t.Parallel()
	d := Descriptor{MediaType: MediaTypeOCIManifest, Digest: checkedDigest([]byte("x")), Size: 1}
	img := Artifact{Kind: KindImage, Ref: "r.io/a:1", Descriptor: d, PackCheck: "cosign signature by the key in k.pub"}
	if err := checkArtifact(img, safepath.NewSet()); err != nil {
		t.Fatalf("an image with packCheck: %v", err)
	}
	file := Artifact{Kind: KindFile, Target: "etc/a", Mode: "0644", Descriptor: d, PackCheck: "x"}
	if err := checkArtifact(file, safepath.NewSet()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a file with packCheck: %v", err)
	}
	img.PackCheck = strings.Repeat("x", 1025)
	if err := checkArtifact(img, safepath.NewSet()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a 1025-byte packCheck: %v", err)
	}
}

// TestWalkSharedChildrenOnce: a graph that names the same nodes over and
// over (an index of 4,096 entries for one index of 4,096 entries for one
// manifest, each entry claiming a platform) is walked in time linear in
// its size, not in the 16.7 million paths through it; a platform claim a
// repeated manifest's config contradicts is still refused.
func TestWalkSharedChildrenOnce(t *testing.T) {
	t.Parallel()
	blobs := map[string][]byte{}
	put := func(b []byte) Descriptor {
		d := Descriptor{Digest: checked.Digest(b), Size: int64(len(b))}
		blobs[d.Digest] = b
		return d
	}
	cfgD := put([]byte(`{"architecture":"amd64","os":"linux"}`))
	layer := `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + checked.Digest([]byte("layer")) + `","size":5}`
	mf := put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgD.Digest + `","size":` + strconv.FormatInt(cfgD.Size, 10) + `},"layers":[` + layer + `]}`))
	mf.MediaType = "application/vnd.oci.image.manifest.v1+json"
	index := func(child Descriptor, plat string) Descriptor {
		var b strings.Builder
		b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
		for i := range MaxFanOut {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"mediaType":%q,"digest":%q,"size":%d`, child.MediaType, child.Digest, child.Size)
			if plat != "" {
				b.WriteString(`,"platform":` + plat)
			}
			b.WriteByte('}')
		}
		b.WriteString(`]}`)
		d := put([]byte(b.String()))
		d.MediaType = "application/vnd.oci.image.index.v1+json"
		return d
	}
	inner := index(mf, `{"architecture":"amd64","os":"linux"}`)
	outer := index(inner, "")
	g, err := Walk(context.Background(), outer, blobs[outer.Digest], headContent(blobs), nil)
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if len(g.Manifests) != 3 || len(g.Configs) != 1 {
		t.Errorf("walk found %d manifests and %d configs, want 3 and 1", len(g.Manifests), len(g.Configs))
	}
	// The same shape whose inner entries claim arm64 for an amd64 config.
	bad := index(mf, `{"architecture":"arm64","os":"linux"}`)
	outer = index(bad, "")
	if _, err := Walk(context.Background(), outer, blobs[outer.Digest], headContent(blobs), nil); err == nil {
		t.Fatal("a platform claim the config contradicts was accepted")
	}
}
