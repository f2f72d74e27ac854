package sample_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/sample from sample.WriteRelease")

// goldenDir is the committed copy of WriteRelease(dir, DefaultRegistryHost).
const goldenDir = "../../testdata/sample"

// goldenExtra are files in goldenDir that WriteRelease does not produce.
var goldenExtra = []string{"README.md"}

func mustImages(t *testing.T) []sample.Image {
	t.Helper()
	imgs, err := sample.Images()
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	return imgs
}

// graphDigests lists the digest of every manifest, config and layer reached
// from imgs, in a fixed order.
func graphDigests(t *testing.T, imgs []sample.Image) []string {
	t.Helper()
	var out []string
	var walkImage func(img v1.Image)
	walkImage = func(img v1.Image) {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String(), m.Config.Digest.String())
		for _, l := range m.Layers {
			out = append(out, l.Digest.String())
		}
	}
	for _, si := range imgs {
		if si.Image != nil {
			walkImage(si.Image)
			continue
		}
		d, err := si.Index.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
		im, err := si.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, desc := range im.Manifests {
			child, err := si.Index.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			walkImage(child)
		}
	}
	return out
}

func TestImagesDeterministic(t *testing.T) {
	t.Parallel()
	a := graphDigests(t, mustImages(t))
	b := graphDigests(t, mustImages(t))
	if !slices.Equal(a, b) {
		t.Fatalf("two calls differ:\n%v\n%v", a, b)
	}
	for _, si := range mustImages(t) {
		d, err := digestOf(si)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s@%s", si.Ref(), d)
	}
}

func digestOf(si sample.Image) (v1.Hash, error) {
	if si.Index != nil {
		return si.Index.Digest()
	}
	return si.Image.Digest()
}

// platformImage is one image of the sample set with what it must look like.
type platformImage struct {
	ref      string
	img      v1.Image
	program  string
	arch     string
	docker   bool
	manifest types.MediaType
}

func platformImages(t *testing.T, imgs []sample.Image) []platformImage {
	t.Helper()
	if len(imgs) != 3 {
		t.Fatalf("got %d images, want 3", len(imgs))
	}
	wantRefs := []string{"demo/api:1.0", "demo/worker:1.0", "demo/legacy:1.0"}
	for i, si := range imgs {
		if si.Ref() != wantRefs[i] {
			t.Fatalf("image %d is %s, want %s", i, si.Ref(), wantRefs[i])
		}
	}
	api := imgs[0].Index
	if api == nil || imgs[0].Image != nil {
		t.Fatal("demo/api:1.0 is not an index")
	}
	if mt, err := api.MediaType(); err != nil || mt != types.OCIImageIndex {
		t.Fatalf("demo/api index media type %q, %v", mt, err)
	}
	im, err := api.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("demo/api has %d manifests, want 2", len(im.Manifests))
	}
	var out []platformImage
	for i, arch := range []string{"amd64", "arm64"} {
		desc := im.Manifests[i]
		if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != arch {
			t.Fatalf("demo/api manifest %d platform %+v, want linux/%s", i, desc.Platform, arch)
		}
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Fatalf("demo/api manifest %d media type %s", i, desc.MediaType)
		}
		img, err := api.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, platformImage{"demo/api:1.0 " + arch, img, "api", arch, false, types.OCIManifestSchema1})
	}
	if imgs[1].Image == nil || imgs[2].Image == nil || imgs[1].Index != nil || imgs[2].Index != nil {
		t.Fatal("worker and legacy must be single images")
	}
	out = append(out,
		platformImage{"demo/worker:1.0", imgs[1].Image, "worker", "amd64", false, types.OCIManifestSchema1},
		platformImage{"demo/legacy:1.0", imgs[2].Image, "legacy", "amd64", true, types.DockerManifestSchema2},
	)
	return out
}

func TestImagesShape(t *testing.T) {
	t.Parallel()
	imgs := mustImages(t)
	var baseDigests, appDigests []string
	appBins := map[string][]byte{}
	for _, pi := range platformImages(t, imgs) {
		t.Run(pi.ref, func(t *testing.T) {
			wantConfig, wantLayer := types.OCIConfigJSON, types.OCILayer
			if pi.docker {
				wantConfig, wantLayer = types.DockerConfigJSON, types.DockerLayer
			}
			m, err := pi.img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != pi.manifest || m.Config.MediaType != wantConfig {
				t.Fatalf("media types %s / %s, want %s / %s", m.MediaType, m.Config.MediaType, pi.manifest, wantConfig)
			}
			if len(m.Layers) != 2 {
				t.Fatalf("%d layers, want 2", len(m.Layers))
			}
			for _, l := range m.Layers {
				if l.MediaType != wantLayer {
					t.Errorf("layer %s media type %s, want %s", l.Digest, l.MediaType, wantLayer)
				}
			}
			cf, err := pi.img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != pi.arch || !cf.Created.Equal(sample.Timestamp) {
				t.Errorf("config os/arch/created %s/%s/%v, want linux/%s/%v", cf.OS, cf.Architecture, cf.Created, pi.arch, sample.Timestamp)
			}
			if len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
				t.Errorf("config has %d diff ids and %d history entries, want 2 and 2", len(cf.RootFS.DiffIDs), len(cf.History))
			}
			layers, err := pi.img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			base := readLayer(t, layers[0])
			for _, p := range []string{"etc/os-release", "etc/passwd", "etc/group"} {
				if len(base[p]) == 0 {
					t.Errorf("base layer lacks %s", p)
				}
			}
			if n := len(base["usr/lib/base.bin"]); n != sample.BaseBinSize {
				t.Errorf("base.bin is %d bytes, want %d", n, sample.BaseBinSize)
			}
			app := readLayer(t, layers[1])
			bin := app["app/"+pi.program]
			if len(bin) != sample.AppBinSize {
				t.Errorf("app/%s is %d bytes, want %d", pi.program, len(bin), sample.AppBinSize)
			}
			appBins[pi.ref] = bin
			baseDigests = append(baseDigests, m.Layers[0].Digest.String())
			appDigests = append(appDigests, m.Layers[1].Digest.String())
		})
	}
	if len(baseDigests) != 4 || len(slices.Compact(slices.Clone(baseDigests))) != 1 {
		t.Errorf("base layer digests differ: %v", baseDigests)
	}
	slices.Sort(appDigests)
	if len(slices.Compact(appDigests)) != 4 {
		t.Errorf("app layer digests are not all distinct: %v", appDigests)
	}
	if bytes.Equal(appBins["demo/api:1.0 amd64"], appBins["demo/api:1.0 arm64"]) {
		t.Error("app/api is the same on amd64 and arm64")
	}
}

// readLayer returns the regular files of a layer by name, and checks every
// header is deterministic.
func readLayer(t *testing.T, l v1.Layer) map[string][]byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(sample.Timestamp) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = b
		default:
			t.Errorf("%s: unexpected type %c", hdr.Name, hdr.Typeflag)
		}
	}
	return files
}

func TestPush(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	imgs := mustImages(t)
	if err := sample.Push(t.Context(), reg.Host, imgs); err != nil {
		t.Fatalf("Push: %v", err)
	}
	for _, si := range imgs {
		ref, err := name.NewTag(reg.Host + "/" + si.Ref())
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(ref, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("get %s: %v", ref, err)
		}
		want, err := digestOf(si)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != want {
			t.Errorf("%s: registry has %s, want %s", ref, desc.Digest, want)
		}
	}
}

func TestPushErrors(t *testing.T) {
	t.Parallel()
	imgs := mustImages(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		host   string
		images []sample.Image
		want   error
	}{
		{"empty host", t.Context(), "", imgs, sample.ErrInvalidHost},
		{"host with scheme", t.Context(), "http://127.0.0.1:1", imgs, sample.ErrInvalidHost},
		{"host with path", t.Context(), "127.0.0.1:1/x", imgs, sample.ErrInvalidHost},
		{"neither index nor image", t.Context(), "127.0.0.1:1", []sample.Image{{Repo: "demo/x", Tag: "1"}}, sample.ErrInvalidImage},
		{"both index and image", t.Context(), "127.0.0.1:1", []sample.Image{{Repo: "demo/x", Tag: "1", Index: imgs[0].Index, Image: imgs[1].Image}}, sample.ErrInvalidImage},
		{"cancelled", cancelled, "127.0.0.1:1", imgs, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := sample.Push(tt.ctx, tt.host, tt.images); !errors.Is(err, tt.want) {
				t.Fatalf("Push = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriteOCILayout(t *testing.T) {
	t.Parallel()
	imgs := mustImages(t)
	dir := t.TempDir()
	if err := sample.WriteOCILayout(dir, imgs); err != nil {
		t.Fatalf("WriteOCILayout: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(imgs) {
		t.Fatalf("index.json has %d entries, want %d", len(im.Manifests), len(imgs))
	}
	for i, si := range imgs {
		desc := im.Manifests[i]
		want, err := digestOf(si)
		if err != nil {
			t.Fatal(err)
		}
		if got := desc.Annotations[sample.RefNameAnnotation]; got != si.Ref() || desc.Digest != want {
			t.Errorf("entry %d: %s@%s, want %s@%s", i, got, desc.Digest, si.Ref(), want)
		}
	}

	// skopeo reads the layout by reference name and sees the same manifest.
	// It only looks at index.json entries with OCI media types, so the
	// Docker-typed demo/legacy is left out.
	skopeo := testkit.RequireTool(t, "skopeo", "apt-get install skopeo")
	for _, si := range imgs[:2] {
		out, err := exec.CommandContext(t.Context(), skopeo, "inspect", "--raw", "oci:"+dir+":"+si.Ref()).Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", si.Ref(), err, stderrOf(err))
		}
		want, err := digestOf(si)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(out); "sha256:"+hex.EncodeToString(got[:]) != want.String() {
			t.Errorf("skopeo sees a different manifest for %s", si.Ref())
		}
	}
}

// stderrOf returns the standard error captured by exec.Cmd.Output.
func stderrOf(err error) []byte {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.Stderr
	}
	return nil
}

func TestWriteDockerArchive(t *testing.T) {
	t.Parallel()
	imgs := mustImages(t)
	legacy := imgs[2]
	path := filepath.Join(t.TempDir(), "legacy.tar")
	if err := sample.WriteDockerArchive(path, legacy); err != nil {
		t.Fatalf("WriteDockerArchive: %v", err)
	}
	tag, err := name.NewTag(legacy.Ref())
	if err != nil {
		t.Fatal(err)
	}
	got, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	wantM, err := legacy.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	gotM, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if gotM.Config.Digest != wantM.Config.Digest || len(gotM.Layers) != len(wantM.Layers) {
		t.Fatalf("read back config %s with %d layers, want %s with %d", gotM.Config.Digest, len(gotM.Layers), wantM.Config.Digest, len(wantM.Layers))
	}
	for i := range wantM.Layers {
		if gotM.Layers[i].Digest != wantM.Layers[i].Digest {
			t.Errorf("layer %d: %s, want %s", i, gotM.Layers[i].Digest, wantM.Layers[i].Digest)
		}
	}

	// skopeo reads it as a docker-archive with the same config.
	skopeo := testkit.RequireTool(t, "skopeo", "apt-get install skopeo")
	out, err := exec.CommandContext(t.Context(), skopeo, "inspect", "--raw", "docker-archive:"+path).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, stderrOf(err))
	}
	var sm v1.Manifest
	if err := json.Unmarshal(out, &sm); err != nil {
		t.Fatal(err)
	}
	if sm.Config.Digest != wantM.Config.Digest {
		t.Errorf("skopeo sees config %s, want %s", sm.Config.Digest, wantM.Config.Digest)
	}
}

func TestWriteDockerArchiveErrors(t *testing.T) {
	t.Parallel()
	imgs := mustImages(t)
	tests := []struct {
		name string
		img  sample.Image
		want error
	}{
		{"index", imgs[0], sample.ErrNotSingleImage},
		{"empty", sample.Image{Repo: "demo/x", Tag: "1"}, sample.ErrInvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "x.tar")
			if err := sample.WriteDockerArchive(path, tt.img); !errors.Is(err, tt.want) {
				t.Fatalf("WriteDockerArchive = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created: %v", path, err)
			}
		})
	}
}

// readTree returns every regular file under dir by slash path, and fails on
// anything else or on modes other than 0644 files and 0755 directories
// when checkModes is set.
func readTree(t *testing.T, dir string, checkModes bool) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if checkModes && info.Mode().Perm() != 0o755 {
				t.Errorf("dir %s has mode %v, want 0755", rel, info.Mode().Perm())
			}
		case info.Mode().IsRegular():
			if checkModes && info.Mode().Perm() != 0o644 {
				t.Errorf("file %s has mode %v, want 0644", rel, info.Mode().Perm())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[filepath.ToSlash(rel)] = b
		default:
			t.Errorf("%s is not a regular file or directory", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestWriteReleaseGolden(t *testing.T) {
	if *update {
		old := readTree(t, goldenDir, false)
		for p := range old {
			if !slices.Contains(goldenExtra, p) {
				if err := os.Remove(filepath.Join(goldenDir, filepath.FromSlash(p))); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sample.WriteRelease(goldenDir, sample.DefaultRegistryHost); err != nil {
			t.Fatalf("WriteRelease: %v", err)
		}
	}
	dir := t.TempDir()
	if err := sample.WriteRelease(dir, sample.DefaultRegistryHost); err != nil {
		t.Fatalf("WriteRelease: %v", err)
	}
	got := readTree(t, dir, true)
	want := readTree(t, goldenDir, false)
	for _, p := range goldenExtra {
		delete(want, p)
	}
	for p, b := range got {
		w, ok := want[p]
		switch {
		case !ok:
			t.Errorf("%s is missing from %s; run go test ./internal/sample -update", p, goldenDir)
		case !bytes.Equal(b, w):
			t.Errorf("%s differs from %s; run go test ./internal/sample -update", p, goldenDir)
		}
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			t.Errorf("%s/%s is not produced by WriteRelease; run go test ./internal/sample -update", goldenDir, p)
		}
	}
}

// manifestYAML is the part of airlock.yaml the tests look at.
type manifestYAML struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Images  []struct {
		Ref string `yaml:"ref"`
	} `yaml:"images"`
	Models []struct {
		Source string `yaml:"source"`
		Name   string `yaml:"name"`
		Target string `yaml:"target"`
	} `yaml:"models"`
	Files []struct {
		Source  string   `yaml:"source"`
		Target  string   `yaml:"target"`
		Mode    string   `yaml:"mode"`
		Exclude []string `yaml:"exclude"`
	} `yaml:"files"`
	Charts []struct {
		Source string `yaml:"source"`
		Images struct {
			FromChart bool `yaml:"fromChart"`
		} `yaml:"images"`
	} `yaml:"charts"`
	SBOMs []struct {
		Source  string `yaml:"source"`
		Subject string `yaml:"subject"`
	} `yaml:"sboms"`
}

func TestWriteRelease(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.1:5000"
	dir := filepath.Join(t.TempDir(), "new", "release")
	if err := sample.WriteRelease(dir, host); err != nil {
		t.Fatalf("WriteRelease: %v", err)
	}
	files := readTree(t, dir, true)

	var m manifestYAML
	dec := yaml.NewDecoder(bytes.NewReader(files["airlock.yaml"]))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("airlock.yaml: %v", err)
	}
	var refs []string
	for _, im := range m.Images {
		refs = append(refs, im.Ref)
	}
	wantRefs := []string{host + "/demo/api:1.0", host + "/demo/worker:1.0", host + "/demo/legacy:1.0"}
	if m.Name != "demo" || m.Version != "1.0.0" || !slices.Equal(refs, wantRefs) {
		t.Errorf("airlock.yaml: name %q version %q images %v", m.Name, m.Version, refs)
	}
	for _, s := range m.SBOMs {
		if _, ok := files[s.Source]; !ok || !strings.HasPrefix(s.Subject, host+"/") {
			t.Errorf("sbom %s for %s", s.Source, s.Subject)
		}
	}
	for _, f := range m.Files {
		if strings.HasSuffix(f.Source, "/") {
			n := 0
			for p := range files {
				if strings.HasPrefix(p, f.Source) {
					n++
				}
			}
			if n < 3 {
				t.Errorf("directory %s holds %d files, want at least 3", f.Source, n)
			}
			continue
		}
		if _, ok := files[f.Source]; !ok {
			t.Errorf("file %s is missing", f.Source)
		}
	}
	if len(m.Charts) != 1 || !m.Charts[0].Images.FromChart {
		t.Fatalf("charts: %+v, want one with fromChart", m.Charts)
	}
	for _, f := range []string{"Chart.yaml", "values.yaml", "templates/deployment.yaml"} {
		if _, ok := files[m.Charts[0].Source+"/"+f]; !ok {
			t.Errorf("chart file %s is missing", f)
		}
	}
	if !bytes.Contains(files[m.Charts[0].Source+"/values.yaml"], []byte("registry: "+host+"\n")) {
		t.Errorf("the chart's values do not name the registry %s", host)
	}
	if len(m.Models) != 1 {
		t.Fatalf("%d models, want 1", len(m.Models))
	}
	for _, f := range []string{"config.json", "tokenizer.json", "model.safetensors", "README.md"} {
		if _, ok := files[m.Models[0].Source+"/"+f]; !ok {
			t.Errorf("model file %s is missing", f)
		}
	}

	for p, b := range files {
		if strings.HasSuffix(p, ".json") && !json.Valid(b) {
			t.Errorf("%s is not valid JSON", p)
		}
	}
	checkSPDX(t, files["sbom/api.spdx.json"])
	checkCycloneDX(t, files["sbom/worker.cdx.json"], host)
	checkSafetensors(t, files["models/tiny-classifier/model.safetensors"])
}

func checkSPDX(t *testing.T, b []byte) {
	t.Helper()
	var doc struct {
		SPDXVersion       string `json:"spdxVersion"`
		DataLicense       string `json:"dataLicense"`
		SPDXID            string `json:"SPDXID"`
		Name              string `json:"name"`
		DocumentNamespace string `json:"documentNamespace"`
		CreationInfo      struct {
			Created  string   `json:"created"`
			Creators []string `json:"creators"`
		} `json:"creationInfo"`
		Packages []struct {
			SPDXID           string `json:"SPDXID"`
			Name             string `json:"name"`
			VersionInfo      string `json:"versionInfo"`
			DownloadLocation string `json:"downloadLocation"`
			ExternalRefs     []struct {
				ReferenceType    string `json:"referenceType"`
				ReferenceLocator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
		Relationships []struct {
			From string `json:"spdxElementId"`
			Type string `json:"relationshipType"`
			To   string `json:"relatedSpdxElement"`
		} `json:"relationships"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("spdx: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" ||
		doc.Name == "" || !strings.HasPrefix(doc.DocumentNamespace, "https://") ||
		doc.CreationInfo.Created != sample.Timestamp.Format("2006-01-02T15:04:05Z") || len(doc.CreationInfo.Creators) == 0 {
		t.Errorf("spdx document header: %+v", doc)
	}
	if len(doc.Packages) != 4 {
		t.Fatalf("spdx has %d packages, want 4", len(doc.Packages))
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	for _, p := range doc.Packages {
		if !strings.HasPrefix(p.SPDXID, "SPDXRef-") || p.VersionInfo == "" || p.DownloadLocation != "NOASSERTION" ||
			len(p.ExternalRefs) != 1 || p.ExternalRefs[0].ReferenceType != "purl" || !strings.HasPrefix(p.ExternalRefs[0].ReferenceLocator, "pkg:") {
			t.Errorf("spdx package %+v", p)
		}
		ids[p.SPDXID] = true
	}
	types := map[string]int{}
	for _, r := range doc.Relationships {
		if !ids[r.From] || !ids[r.To] {
			t.Errorf("spdx relationship %+v names an unknown element", r)
		}
		types[r.Type]++
	}
	if types["DESCRIBES"] != 1 || types["DEPENDS_ON"] != 3 {
		t.Errorf("spdx relationships %v, want 1 DESCRIBES and 3 DEPENDS_ON", types)
	}
}

func checkCycloneDX(t *testing.T, b []byte, host string) {
	t.Helper()
	type component struct {
		Type   string `json:"type"`
		BOMRef string `json:"bom-ref"`
		Name   string `json:"name"`
		PURL   string `json:"purl"`
	}
	var bom struct {
		BOMFormat    string `json:"bomFormat"`
		SpecVersion  string `json:"specVersion"`
		SerialNumber string `json:"serialNumber"`
		Version      int    `json:"version"`
		Metadata     struct {
			Timestamp string    `json:"timestamp"`
			Component component `json:"component"`
		} `json:"metadata"`
		Components []component `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatalf("cyclonedx: %v", err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.5" || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") ||
		bom.Version != 1 || bom.Metadata.Timestamp != sample.Timestamp.Format("2006-01-02T15:04:05Z") ||
		bom.Metadata.Component.Name != "demo/worker" || !strings.Contains(bom.Metadata.Component.PURL, host+"/demo/worker") {
		t.Errorf("cyclonedx header: %+v", bom)
	}
	if len(bom.Components) != 3 {
		t.Fatalf("cyclonedx has %d components, want 3", len(bom.Components))
	}
	for _, c := range bom.Components {
		if c.BOMRef == "" || c.Name == "" || !strings.HasPrefix(c.PURL, "pkg:") {
			t.Errorf("cyclonedx component %+v", c)
		}
	}
}

// checkSafetensors parses the header of a safetensors file and checks the
// tensors tile the data exactly.
func checkSafetensors(t *testing.T, b []byte) {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("safetensors: %d bytes", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 || n > uint64(len(b)-8) {
		t.Fatalf("safetensors: header length %d", n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatalf("safetensors header: %v", err)
	}
	data := int64(len(b)) - 8 - int64(n)
	if data != sample.ModelDataSize {
		t.Errorf("safetensors data is %d bytes, want %d", data, sample.ModelDataSize)
	}
	var covered int64
	for k, raw := range header {
		if k == "__metadata__" {
			continue
		}
		var ti struct {
			Dtype       string   `json:"dtype"`
			Shape       []int64  `json:"shape"`
			DataOffsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &ti); err != nil {
			t.Fatalf("tensor %s: %v", k, err)
		}
		size := int64(4)
		for _, d := range ti.Shape {
			size *= d
		}
		if ti.Dtype != "F32" || ti.DataOffsets[1]-ti.DataOffsets[0] != size || ti.DataOffsets[0] < 0 || ti.DataOffsets[1] > data {
			t.Errorf("tensor %s: %+v", k, ti)
		}
		covered += size
	}
	if covered != data {
		t.Errorf("tensors cover %d of %d data bytes", covered, data)
	}
}

func TestWriteReleaseHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		ok   bool
	}{
		{"registry.example.com", true},
		{"127.0.0.1:5000", true},
		{"localhost:5000", true},
		{"[::1]:5000", true},
		{"", false},
		{"https://registry.example.com", false},
		{"registry.example.com/x", false},
		{"registry example.com", false},
		{"registry.example.com\n", false},
		{"registry.example.com#x", false},
		{"docker.io", false}, // rewritten to index.docker.io by go-containerregistry
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			err := sample.WriteRelease(dir, tt.host)
			if tt.ok && err != nil {
				t.Fatalf("WriteRelease(%q) = %v", tt.host, err)
			}
			if !tt.ok {
				if !errors.Is(err, sample.ErrInvalidHost) {
					t.Fatalf("WriteRelease(%q) = %v, want ErrInvalidHost", tt.host, err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("WriteRelease(%q) wrote %d entries", tt.host, len(entries))
				}
			}
		})
	}
}
