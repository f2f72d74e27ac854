package benchmark

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The release of BenchmarkMirrorVsCrane: 19 single-platform images and one
// index of two platforms, all built on the same three base layers, each with
// one application layer of its own; a cosign-style signature tag and an OCI
// 1.1 referrer (an attestation) on every image; three SBOMs with a subject;
// and a 1 GiB model.
const (
	mirrorSingleImages = 19
	mirrorAppBytes     = 56 << 20
	mirrorModelBytes   = 1 << 30
	// mirrorSBOMs images (the first ones) get an SBOM in airlock.yaml.
	mirrorSBOMs = 3
	// mirrorSmallImages images (the first ones) make the small release.
	mirrorSmallImages = 2
)

// mirrorBase is the layers every image shares: a distribution, a language
// runtime (binaries, incompressible) and libraries (source, compressible).
var mirrorBase = []struct {
	label string
	files []layerFile
}{
	{"os", []layerFile{
		{name: "usr/lib/x86_64-linux-gnu/libc.so.6", size: 32 << 20, kind: allRandom},
		{name: "usr/bin/coreutils", size: 16 << 20, kind: allRandom},
		{name: "usr/share/doc/copyright.txt", size: 32 << 20, kind: allText},
		{name: "var/lib/dpkg/status", size: 16 << 20, kind: allText},
	}},
	{"runtime", []layerFile{
		{name: "usr/lib/jvm/lib/modules", size: 96 << 20, kind: allRandom},
		{name: "usr/lib/jvm/lib/server/libjvm.so", size: 32 << 20, kind: allRandom},
	}},
	{"libs", []layerFile{
		{name: "usr/lib/python3/site-packages/core.py", size: 32 << 20, kind: allText},
		{name: "usr/lib/python3/site-packages/vendor.py", size: 16 << 20, kind: allText},
		{name: "usr/lib/python3/site-packages/data.jsonl", size: 16 << 20, kind: allText},
	}},
}

// appFiles is the application layer of one image: a binary and two text files.
func appFiles() []layerFile {
	return []layerFile{
		{name: "app/bin/server", size: mirrorAppBytes * 3 / 7, kind: allRandom},
		{name: "app/static/bundle.js", size: mirrorAppBytes * 2 / 7, kind: allText},
		{name: "app/data/seed.jsonl", size: mirrorAppBytes * 2 / 7, kind: allText},
	}
}

// Media types of the attachments the fixture writes.
const (
	cosignPayloadType = "application/vnd.dev.cosign.simplesigning.v1+json"
	cosignSigAnnot    = "dev.cosignproject.cosign/signature"
	inTotoType        = "application/vnd.in-toto+json"
)

// mirrorBundles are the two bundles BenchmarkMirrorVsCrane mirrors.
type mirrorBundles struct {
	big, small string
	// attachments is how many signatures, referrers and SBOMs with a
	// subject the big bundle carries.
	attachments int
	images      int // image artifacts in the big bundle
}

// makeMirrorBundles writes dir/src (the release), dir/src-small (two images
// of it), packs them into dir/release.airlock and dir/small.airlock, signs
// both with k1, and removes the sources.
func makeMirrorBundles(ctx context.Context, bin, keyDir, dir string) (*mirrorBundles, error) {
	src := filepath.Join(dir, "src")
	smallSrc := filepath.Join(dir, "src-small")
	defer os.RemoveAll(src)
	defer os.RemoveAll(smallSrc)
	n, err := mirrorRelease(src, smallSrc)
	if err != nil {
		return nil, err
	}
	out := &mirrorBundles{big: filepath.Join(dir, "release.airlock"), small: filepath.Join(dir, "small.airlock"), attachments: n, images: mirrorSingleImages + 1}
	for _, p := range []struct{ src, out string }{{src, out.big}, {smallSrc, out.small}} {
		if _, err := packTo(ctx, bin, p.src, p.out); err != nil {
			return nil, err
		}
		if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", p.out, "--key", keyPath(keyDir, signingKeyNames[0])); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mirrorImageName is the layout name of single-platform image i (from 1).
func mirrorImageName(i int) string { return fmt.Sprintf("svc/app-%02d:1.0", i) }

const mirrorMultiName = "svc/multi:1.0"

// mirrorRelease writes the layout, model, SBOMs and airlock.yaml of the
// release to src, and an airlock.yaml naming only the first
// mirrorSmallImages images (with the layout in src) to smallSrc. It returns
// the number of attachments of the release (signatures, referrers and SBOMs
// with a subject).
func mirrorRelease(src, smallSrc string) (int, error) {
	lw, err := newLayoutWriter(filepath.Join(src, "layout"))
	if err != nil {
		return 0, err
	}
	var base []ocispec.Descriptor
	for _, l := range mirrorBase {
		d, err := lw.layer("mirror/base/"+l.label, l.files)
		if err != nil {
			return 0, err
		}
		base = append(base, d)
	}
	image := func(label, arch string) (ocispec.Descriptor, error) {
		app, err := lw.layer("mirror/app/"+label, appFiles())
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		return lw.platformImage(arch, append(append([]ocispec.Descriptor{}, base...), app))
	}
	var names []string
	for i := 1; i <= mirrorSingleImages; i++ {
		d, err := image(mirrorImageName(i), "amd64")
		if err != nil {
			return 0, err
		}
		lw.entry(d, mirrorImageName(i))
		names = append(names, mirrorImageName(i))
	}
	var platforms []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		d, err := image(mirrorMultiName+"/"+arch, arch)
		if err != nil {
			return 0, err
		}
		platforms = append(platforms, d)
	}
	idx, err := lw.jsonBlob(ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: platforms,
	})
	if err != nil {
		return 0, err
	}
	lw.entry(idx, mirrorMultiName)
	names = append(names, mirrorMultiName)

	// A signature tag and an attestation referrer on every image root.
	roots := append([]ocispec.Descriptor{}, lw.manifests...)
	for i, root := range roots {
		if err := lw.cosignSignature(names[i], root); err != nil {
			return 0, err
		}
		if err := lw.attestation(names[i], root); err != nil {
			return 0, err
		}
	}
	if err := lw.finish(); err != nil {
		return 0, err
	}
	if err := writeModel(filepath.Join(src, "model"), "mirror", mirrorModelBytes); err != nil {
		return 0, err
	}

	spec := "name: bench-mirror\nversion: 1.0.0\nimages:\n"
	for _, n := range names {
		spec += "  - ref: oci:./layout:" + n + "\n"
	}
	spec += "models:\n  - source: model\n    name: bench-llm\n    target: models/bench-llm\nsboms:\n"
	sbomImages := append(names[:mirrorSBOMs-1:mirrorSBOMs-1], mirrorMultiName)
	for _, n := range sbomImages {
		file := "sbom/" + strings.NewReplacer("/", "-", ":", "-").Replace(n) + ".spdx.json"
		if err := writeSPDX(filepath.Join(src, file), n); err != nil {
			return 0, err
		}
		spec += "  - source: " + file + "\n    subject: oci:./layout:" + n + "\n"
	}
	if err := os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(spec), 0o644); err != nil {
		return 0, err
	}

	small := "name: bench-mirror-small\nversion: 1.0.0\nimages:\n"
	for _, n := range names[:mirrorSmallImages] {
		small += "  - ref: oci:" + filepath.Join(src, "layout") + ":" + n + "\n"
	}
	if err := os.MkdirAll(smallSrc, 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(smallSrc, "airlock.yaml"), []byte(small), 0o644); err != nil {
		return 0, err
	}
	return 2*len(roots) + len(sbomImages), nil
}

// layer writes an uncompressed tar layer of generated files.
func (lw *layoutWriter) layer(label string, files []layerFile) (ocispec.Descriptor, error) {
	return lw.streamBlob(ocispec.MediaTypeImageLayer, func(w io.Writer) error { return writeLayer(w, label, files) })
}

// platformImage writes the config and manifest of a linux/arch image with
// the given uncompressed layers and returns the manifest's descriptor, with
// its platform set for use in an index.
func (lw *layoutWriter) platformImage(arch string, layers []ocispec.Descriptor) (ocispec.Descriptor, error) {
	diffIDs := make([]godigest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest // uncompressed: the diff ID is the digest
	}
	created := fixtureTime
	cd, err := lw.jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	md, err := lw.jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
		Layers:    layers,
	})
	md.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
	return md, err
}

// entry lists d in index.json, named refName when it is not "".
func (lw *layoutWriter) entry(d ocispec.Descriptor, refName string) {
	d.Platform = nil
	if refName != "" {
		d.Annotations = map[string]string{ocispec.AnnotationRefName: refName}
	}
	lw.manifests = append(lw.manifests, d)
}

// cosignSignature writes what `cosign sign` leaves for subject: a manifest
// with one simple-signing payload layer carrying the signature in an
// annotation, listed under the tag sha256-<hex>.sig of the image's name.
// The signature is random bytes: nothing checks it.
func (lw *layoutWriter) cosignSignature(imageName string, subject ocispec.Descriptor) error {
	repo, _, _ := strings.Cut(imageName, ":")
	payload := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"registry.example.com/%s"},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, repo, subject.Digest)
	pd, err := lw.streamBlob(cosignPayloadType, func(w io.Writer) error { _, err := io.WriteString(w, payload); return err })
	if err != nil {
		return err
	}
	sig := sha256.Sum256([]byte("signature/" + subject.Digest.String()))
	pd.Annotations = map[string]string{cosignSigAnnot: base64.StdEncoding.EncodeToString(append(sig[:], sig[:]...))}
	cd, err := lw.jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []godigest.Digest{pd.Digest}}})
	if err != nil {
		return err
	}
	md, err := lw.jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
		Layers:    []ocispec.Descriptor{pd},
	})
	if err != nil {
		return err
	}
	lw.entry(md, repo+":"+strings.Replace(subject.Digest.String(), ":", "-", 1)+".sig")
	return nil
}

// attestation writes an OCI 1.1 referrer of subject: an in-toto statement
// in an artifact manifest whose subject is the image.
func (lw *layoutWriter) attestation(imageName string, subject ocispec.Descriptor) error {
	stmt := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":%q,"digest":{"sha256":%q}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://example.com/bench"}}}`, imageName, subject.Digest.Encoded())
	ld, err := lw.streamBlob(inTotoType, func(w io.Writer) error { _, err := io.WriteString(w, stmt); return err })
	if err != nil {
		return err
	}
	cd, err := lw.streamBlob(ocispec.MediaTypeEmptyJSON, func(w io.Writer) error { _, err := io.WriteString(w, "{}"); return err })
	if err != nil {
		return err
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	md, err := lw.jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: inTotoType,
		Config:       cd,
		Layers:       []ocispec.Descriptor{ld},
		Subject:      &subj,
	})
	if err != nil {
		return err
	}
	md.ArtifactType = inTotoType
	lw.entry(md, "")
	return nil
}

// writeSPDX writes a small SPDX 2.3 JSON document describing image.
func writeSPDX(path, image string) error {
	type pkg struct {
		Name             string `json:"name"`
		SPDXID           string `json:"SPDXID"`
		VersionInfo      string `json:"versionInfo"`
		DownloadLocation string `json:"downloadLocation"`
	}
	var pkgs []pkg
	for i := range 50 {
		pkgs = append(pkgs, pkg{Name: vocabulary[i], SPDXID: fmt.Sprintf("SPDXRef-Package-%d", i), VersionInfo: fmt.Sprintf("1.%d.0", i), DownloadLocation: "NOASSERTION"})
	}
	doc, err := json.Marshal(map[string]any{
		"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": image,
		"documentNamespace": "https://example.com/spdx/" + image,
		"creationInfo":      map[string]any{"created": "2026-01-01T00:00:00Z", "creators": []string{"Tool: airlock-benchmark"}},
		"packages":          pkgs,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, doc, 0o644)
}
