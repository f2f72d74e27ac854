package main

// Integration tests: airlock pack against the real CNCF distribution
// registry, and the bundle read back by real GNU tar and real skopeo. The
// tools are required under CI=true and skipped otherwise (see
// testkit.RequireTool).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// itgEpoch is the SOURCE_DATE_EPOCH of every reproducible pack here.
var itgEpoch = map[string]string{"SOURCE_DATE_EPOCH": "1767225600"}

// itgTools holds the paths of the external tools the integration tests run.
type itgTools struct {
	tar, skopeo string
}

func itgRequireTools(t *testing.T) itgTools {
	t.Helper()
	tools := itgTools{
		tar:    testkit.RequireTool(t, "tar", "apt-get install tar"),
		skopeo: testkit.RequireTool(t, "skopeo", "apt-get install skopeo"),
	}
	// GNU tar runs the zstd binary for --zstd.
	testkit.RequireTool(t, "zstd", "apt-get install zstd")
	return tools
}

// itgRun runs an external tool with a deadline and returns its stdout,
// failing the test with its stderr when it exits non-zero.
func itgRun(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// itgExtract unpacks a bundle with the real `tar --zstd -xf` into a new directory.
func itgExtract(t *testing.T, tools itgTools, bundlePath string) string {
	t.Helper()
	dir := t.TempDir()
	itgRun(t, tools.tar, "--zstd", "-xf", bundlePath, "-C", dir)
	return dir
}

// itgPack runs `airlock pack -q` and fails the test unless it succeeds.
func itgPack(t *testing.T, spec, out string, extra ...string) {
	t.Helper()
	args := append([]string{"pack", "-q", "-f", spec, "-o", out}, extra...)
	if code, _, stderr := runCLI(t, itgEpoch, args...); code != exitOK {
		t.Fatalf("airlock %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
}

// itgTree returns every regular file below dir by slash path, with its
// sha256 digest, and fails on anything that is not a regular file or
// directory.
func itgTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s: not a regular file (%v)", p, d.Type())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		tree[filepath.ToSlash(rel)] = itgDigest(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func itgDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// itgBlobs returns the digests of the blobs in an extracted layout and
// checks that each blob hashes to its name.
func itgBlobs(t *testing.T, tree map[string]string) []string {
	t.Helper()
	var blobs []string
	for p, d := range tree {
		hexd, ok := strings.CutPrefix(p, "blobs/sha256/")
		if !ok {
			continue
		}
		if d != "sha256:"+hexd {
			t.Errorf("extracted blob %s hashes to %s", p, d)
		}
		blobs = append(blobs, "sha256:"+hexd)
	}
	sort.Strings(blobs)
	return blobs
}

// itgManifest reads airlock/bundle.json from an extracted bundle.
func itgManifest(t *testing.T, dir string) bundle.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(bundle.EntryManifest)))
	if err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", bundle.EntryManifest, err)
	}
	return m
}

// itgNoLeftovers fails unless dir holds exactly the names in want.
func itgNoLeftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// itgSourceDigest asks the registry for the digest and bytes of ref.
func itgSourceDigest(t *testing.T, ref string) (v1.Hash, []byte) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("remote.Get %s: %v", ref, err)
	}
	if got := itgDigest(desc.Manifest); got != desc.Digest.String() {
		t.Fatalf("registry served %s for %s but the bytes hash to %s", desc.Digest, ref, got)
	}
	return desc.Digest, desc.Manifest
}

// itgPlatformChild returns the digest of the child of an index for os/arch.
func itgPlatformChild(t *testing.T, raw []byte, goos, arch string) v1.Hash {
	t.Helper()
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == goos && m.Platform.Architecture == arch {
			return m.Digest
		}
	}
	t.Fatalf("index offers no %s/%s", goos, arch)
	return v1.Hash{}
}

// TestIntegrationRealRegistry packs the sample release from the real
// docker-registry and reads the bundle back with GNU tar and skopeo.
func TestIntegrationRealRegistry(t *testing.T) {
	t.Parallel()
	tools := itgRequireTools(t)
	reg := testkit.Start(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sample.Push(ctx, reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	release := t.TempDir()
	if err := sample.WriteRelease(release, reg.Host); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(release, "airlock.yaml")
	apiRef := reg.Host + "/demo/api:1.0"

	t.Run("skopeo reads every artifact", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "demo.airlock")
		itgPack(t, spec, out)
		dir := itgExtract(t, tools, out)
		m := itgManifest(t, dir)
		// SOURCE_DATE_EPOCH is every entry's mtime, as GNU tar restores it.
		if st, err := os.Stat(filepath.Join(dir, bundle.EntryIndex)); err != nil || st.ModTime().Unix() != 1767225600 {
			t.Errorf("index.json mtime: %v (err %v), want SOURCE_DATE_EPOCH 1767225600", st.ModTime(), err)
		}

		// Every image, as written in airlock.yaml, is a ref.name in
		// index.json that resolves to the exact bytes the source registry
		// serves, read by skopeo where skopeo can.
		for _, img := range imgs {
			ref := reg.Host + "/" + img.Ref()
			want, _ := itgSourceDigest(t, ref)
			if got := itgDigest(itgLayoutRoot(t, dir, ref)); got != want.String() {
				t.Errorf("index.json names %s -> bytes hashing to %s, the registry serves %s", ref, got, want)
			}
			if itgSkopeoAddressable(t, dir, ref) {
				raw := itgRun(t, tools.skopeo, "--insecure-policy", "inspect", "--raw", "oci:"+dir+":"+ref)
				if got := itgDigest(raw); got != want.String() {
					t.Errorf("skopeo inspect --raw oci:...:%s hashes to %s, the registry serves %s", ref, got, want)
				}
			}
			var found bool
			for _, a := range m.Artifacts {
				if a.Ref == ref {
					found = true
					if a.Digest != want.String() || a.Filtered || a.Resolved != reg.Host+"/"+img.Repo+"@"+want.String() {
						t.Errorf("bundle.json records %s as digest %s resolved %s filtered %v; source is %s", ref, a.Digest, a.Resolved, a.Filtered, want)
					}
				}
			}
			if !found {
				t.Errorf("bundle.json has no artifact for %s", ref)
			}
		}

		// Cross-check the Docker-media-type image with skopeo's own view
		// of the registry. skopeo cannot address it inside the layout (see
		// itgSkopeoAddressable), so the bundle side is read from index.json.
		legacyRef := reg.Host + "/demo/legacy:1.0"
		fromRegistry := itgRun(t, tools.skopeo, "--insecure-policy", "inspect", "--raw", "--tls-verify=false", "docker://"+legacyRef)
		fromBundle := itgLayoutRoot(t, dir, legacyRef)
		if !bytes.Equal(fromRegistry, fromBundle) {
			t.Errorf("%s: skopeo reads different manifests from the registry and the bundle", legacyRef)
		}
		var legacy struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(fromBundle, &legacy); err != nil || legacy.MediaType != bundle.MediaTypeDockerV2 {
			t.Errorf("%s: media type %q (err %v), want %s", legacyRef, legacy.MediaType, err, bundle.MediaTypeDockerV2)
		}

		// The model is a ModelPack artifact.
		raw := itgRun(t, tools.skopeo, "--insecure-policy", "inspect", "--raw", "oci:"+dir+":models/tiny-classifier")
		var model struct {
			ArtifactType string `json:"artifactType"`
			Config       struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
			Layers []json.RawMessage `json:"layers"`
		}
		if err := json.Unmarshal(raw, &model); err != nil {
			t.Fatal(err)
		}
		if model.ArtifactType != bundle.ArtifactTypeModel || model.Config.MediaType != bundle.MediaTypeModelConfig || len(model.Layers) != 4 {
			t.Errorf("model manifest: artifactType %q, config %q, %d layers", model.ArtifactType, model.Config.MediaType, len(model.Layers))
		}

		// skopeo copies the arm64 image out of the bundle: every blob it
		// needs is present and matches its digest.
		_, indexRaw := itgSourceDigest(t, apiRef)
		arm64 := itgPlatformChild(t, indexRaw, "linux", "arm64")
		copied := filepath.Join(t.TempDir(), "api-arm64")
		itgRun(t, tools.skopeo, "--insecure-policy", "--override-os", "linux", "--override-arch", "arm64", "copy", "oci:"+dir+":"+apiRef, "dir:"+copied)
		mf, err := os.ReadFile(filepath.Join(copied, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := itgDigest(mf); got != arm64.String() {
			t.Errorf("skopeo copied manifest %s, want the arm64 manifest %s", got, arm64)
		}
		man, err := v1.ParseManifest(bytes.NewReader(mf))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]v1.Descriptor{man.Config}, man.Layers...) {
			b, err := os.ReadFile(filepath.Join(copied, d.Digest.Hex))
			if err != nil {
				t.Errorf("skopeo copy did not produce blob %s: %v", d.Digest, err)
				continue
			}
			if got := itgDigest(b); got != d.Digest.String() || int64(len(b)) != d.Size {
				t.Errorf("blob %s: %d bytes hashing to %s, want %d bytes", d.Digest, len(b), got, d.Size)
			}
		}
	})

	t.Run("platform filter keeps only linux/arm64", func(t *testing.T) {
		t.Parallel()
		rel := t.TempDir()
		yaml := "name: filtered\nversion: 1.0.0\nimages:\n  - ref: " + apiRef + "\n    platforms: [linux/arm64]\n"
		if err := os.WriteFile(filepath.Join(rel, "airlock.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "filtered.airlock")
		itgPack(t, filepath.Join(rel, "airlock.yaml"), out)
		dir := itgExtract(t, tools, out)
		m := itgManifest(t, dir)
		srcDigest, srcIndex := itgSourceDigest(t, apiRef)
		arm64 := itgPlatformChild(t, srcIndex, "linux", "arm64")
		amd64 := itgPlatformChild(t, srcIndex, "linux", "amd64")

		if len(m.Artifacts) != 1 {
			t.Fatalf("%d artifacts, want 1", len(m.Artifacts))
		}
		a := m.Artifacts[0]
		if !a.Filtered {
			t.Error("filtered: false, want true")
		}
		if want := reg.Host + "/demo/api@" + srcDigest.String(); a.Resolved != want {
			t.Errorf("resolved %q, want %q", a.Resolved, want)
		}
		if a.Digest == srcDigest.String() {
			t.Errorf("artifact digest %s equals the unfiltered source index", a.Digest)
		}
		if !slices.Equal(a.Platforms, []string{"linux/arm64"}) {
			t.Errorf("platforms %v, want [linux/arm64]", a.Platforms)
		}

		// The filtered index lists only the unchanged arm64 manifest.
		tree := itgTree(t, dir)
		idxRaw, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(a.Digest, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(idxRaw))
		if err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != arm64 {
			t.Fatalf("filtered index lists %v, want only the arm64 manifest %s", idx.Manifests, arm64)
		}

		// Exactly the filtered index, the arm64 manifest, its config and
		// its layers: nothing of amd64.
		want := []string{a.Digest, arm64.String()}
		img := itgSourceImage(t, reg.Host+"/demo/api@"+arm64.String())
		for _, d := range append([]v1.Descriptor{img.Config}, img.Layers...) {
			want = append(want, d.Digest.String())
		}
		sort.Strings(want)
		got := itgBlobs(t, tree)
		if !slices.Equal(got, want) {
			t.Errorf("blobs in the bundle:\n%q\nwant:\n%q", got, want)
		}
		if slices.Contains(got, amd64.String()) {
			t.Errorf("the amd64 manifest %s was carried", amd64)
		}
		if tree["blobs/sha256/"+arm64.Hex] != arm64.String() {
			t.Errorf("arm64 manifest %s changed", arm64)
		}
	})

	t.Run("platform not offered", func(t *testing.T) {
		t.Parallel()
		rel := t.TempDir()
		yaml := "name: filtered\nversion: 1.0.0\nimages:\n  - ref: " + apiRef + "\n    platforms: [linux/s390x]\n"
		if err := os.WriteFile(filepath.Join(rel, "airlock.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		outDir := t.TempDir()
		out := filepath.Join(outDir, "filtered.airlock")
		code, _, stderr := runCLI(t, itgEpoch, "pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", out)
		if code != exitError {
			t.Errorf("exit %d, want %d; stderr:\n%s", code, exitError, stderr)
		}
		for _, s := range []string{apiRef, "linux/s390x"} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr does not name %q:\n%s", s, stderr)
			}
		}
		itgNoLeftovers(t, outDir)
		itgNoLeftovers(t, rel, "airlock.yaml")
	})

	t.Run("deterministic", func(t *testing.T) {
		t.Parallel()
		a := filepath.Join(t.TempDir(), "a.airlock")
		b := filepath.Join(t.TempDir(), "b.airlock")
		itgPack(t, spec, a, "--jobs", "1")
		itgPack(t, spec, b, "--jobs", "8")
		ab, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ab, bb) {
			t.Fatalf("two packs of the same release differ: %d vs %d bytes", len(ab), len(bb))
		}
	})

	t.Run("compression levels", func(t *testing.T) {
		t.Parallel()
		var trees []map[string]string
		var sizes []int64
		for _, level := range []string{"fastest", "better"} {
			out := filepath.Join(t.TempDir(), level+".airlock")
			itgPack(t, spec, out, "--level", level)
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, st.Size())
			tree := itgTree(t, itgExtract(t, tools, out))
			itgBlobs(t, tree)
			trees = append(trees, tree)
		}
		// The OCI layout (index.json, every blob) is the same whatever
		// the level. The frame index records compressed sizes and
		// digests (format v2), so it differs, and with it bundle.json,
		// which names it, and the statement over bundle.json.
		for _, tree := range trees {
			for _, meta := range []string{"airlock/frames.json", "airlock/bundle.json", "airlock/signatures.json"} {
				if _, ok := tree[meta]; !ok {
					t.Fatalf("the extracted bundle has no %s", meta)
				}
				delete(tree, meta)
			}
		}
		if len(trees[0]) == 0 || !maps.Equal(trees[0], trees[1]) {
			t.Errorf("fastest and better extract to different trees:\n%v\n%v", trees[0], trees[1])
		}
		t.Logf("bundle sizes: fastest %d, better %d", sizes[0], sizes[1])
	})
}

// itgSourceImage reads the manifest of an image from its registry.
func itgSourceImage(t *testing.T, ref string) *v1.Manifest {
	t.Helper()
	_, raw := itgSourceDigest(t, ref)
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestIntegrationLocalSources packs images from an OCI image layout and a
// `docker save` archive and checks the bundle carries their exact manifests.
func TestIntegrationLocalSources(t *testing.T) {
	t.Parallel()
	tools := itgRequireTools(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	api, worker, legacy := imgs[0], imgs[1], imgs[2]
	release := t.TempDir()
	// WriteOCILayout names entries "Repo:Tag" (demo/api:1.0); one layout
	// per image keeps "oci:./api:1.0" unambiguous.
	if err := sample.WriteOCILayout(filepath.Join(release, "api"), []sample.Image{api}); err != nil {
		t.Fatal(err)
	}
	if err := sample.WriteOCILayout(filepath.Join(release, "layout"), imgs); err != nil {
		t.Fatal(err)
	}
	if err := sample.WriteDockerArchive(filepath.Join(release, "legacy.tar"), legacy); err != nil {
		t.Fatal(err)
	}
	apiDigest, err := api.Index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	workerDigest, err := worker.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	archived, err := tarball.ImageFromPath(filepath.Join(release, "legacy.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	archivedDigest, err := archived.Digest()
	if err != nil {
		t.Fatal(err)
	}
	legacyLayers, err := legacy.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}

	workerRef := "oci:./layout@" + workerDigest.String()
	yaml := "name: local\nversion: 1.0.0\nimages:\n" +
		"  - ref: oci:./api:1.0\n" +
		"  - ref: " + workerRef + "\n" +
		"  - ref: docker-archive:./legacy.tar\n"
	spec := filepath.Join(release, "airlock.yaml")
	if err := os.WriteFile(spec, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "local.airlock")
	itgPack(t, spec, out)

	code, stdout, stderr := runCLI(t, nil, "inspect", "--json", out)
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	var ins bundle.Inspection
	if err := json.Unmarshal([]byte(stdout), &ins); err != nil {
		t.Fatal(err)
	}
	byRef := map[string]bundle.Artifact{}
	for _, a := range ins.Artifacts {
		byRef[a.Ref] = a
	}
	for ref, want := range map[string]string{
		"oci:./api:1.0":               apiDigest.String(),
		workerRef:                     workerDigest.String(),
		"docker-archive:./legacy.tar": archivedDigest.String(),
	} {
		a, ok := byRef[ref]
		if !ok {
			t.Errorf("inspect lists no %s", ref)
			continue
		}
		if a.Digest != want || a.Filtered || !strings.HasSuffix(a.Resolved, "@"+want) {
			t.Errorf("%s: digest %s resolved %s, want %s", ref, a.Digest, a.Resolved, want)
		}
	}
	if got := byRef["oci:./api:1.0"].Platforms; !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("oci:./api:1.0 platforms %v", got)
	}

	// The archive's layers are carried byte for byte, and the layout names
	// are what imageRefName promises.
	dir := itgExtract(t, tools, out)
	tree := itgTree(t, dir)
	for _, l := range legacyLayers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if tree["blobs/sha256/"+d.Hex] != d.String() {
			t.Errorf("docker-archive layer %s missing or altered", d)
		}
	}
	for refName, want := range map[string]string{
		"api:1.0":                         apiDigest.String(),
		"layout@" + workerDigest.String(): workerDigest.String(),
		"legacy:latest":                   archivedDigest.String(),
	} {
		if got := itgDigest(itgLayoutRoot(t, dir, refName)); got != want {
			t.Errorf("index.json names %s -> bytes hashing to %s, want %s", refName, got, want)
		}
		if !itgSkopeoAddressable(t, dir, refName) {
			continue
		}
		raw := itgRun(t, tools.skopeo, "--insecure-policy", "inspect", "--raw", "oci:"+dir+":"+refName)
		if got := itgDigest(raw); got != want {
			t.Errorf("skopeo oci:...:%s hashes to %s, want %s", refName, got, want)
		}
	}
}

// itgLayoutEntry returns the index.json descriptor of an extracted layout
// whose org.opencontainers.image.ref.name is refName.
func itgLayoutEntry(t *testing.T, dir, refName string) v1.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, bundle.EntryIndex))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var found []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[bundle.AnnotationRefName] == refName {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("index.json has %d entries named %q, want 1", len(found), refName)
	}
	return found[0]
}

// itgLayoutRoot returns the bytes index.json names refName, checked
// against the descriptor's digest and size.
func itgLayoutRoot(t *testing.T, dir, refName string) []byte {
	t.Helper()
	d := itgLayoutEntry(t, dir, refName)
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Digest.Hex))
	if err != nil {
		t.Fatal(err)
	}
	if itgDigest(b) != d.Digest.String() || int64(len(b)) != d.Size {
		t.Fatalf("%s: blob does not match its index.json descriptor %s", refName, d.Digest)
	}
	return b
}

// itgSkopeoAddressable reports whether skopeo's oci: transport can select
// refName: containers/image (skopeo 1.9) only considers index.json entries
// with OCI media types and reports "no descriptor found for reference" for
// a Docker schema 2 manifest, which airlock carries unconverted so that its
// digest stays the source's.
func itgSkopeoAddressable(t *testing.T, dir, refName string) bool {
	t.Helper()
	switch mt := string(itgLayoutEntry(t, dir, refName).MediaType); mt {
	case bundle.MediaTypeOCIManifest, bundle.MediaTypeOCIIndex:
		return true
	default:
		t.Logf("%s has media type %s: skopeo's oci: transport cannot select it; checked through index.json only", refName, mt)
		return false
	}
}
