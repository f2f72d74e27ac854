package main

// An extracted bundle opened by name with oras, skopeo and crane, with the
// commands of docs/format.md section 14. Each tool is required under
// CI=true and skipped otherwise (testkit.RequireTool); `make tools`
// installs them.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
)

func TestExtractedBundleOpensByName(t *testing.T) {
	t.Parallel()
	tools := itgRequireTools(t)
	oras := testkit.RequireTool(t, "oras", "make tools (GOBIN=/var/cache/airlock-ci/bin go install oras.land/oras/cmd/oras@v1.3.6)")
	crane := testkit.RequireTool(t, "crane", "make tools (GOBIN=/var/cache/airlock-ci/bin go install github.com/google/go-containerregistry/cmd/crane@v0.22.1)")
	jq := testkit.RequireTool(t, "jq", "apt-get install jq")
	site := testkit.Start(t)

	release := sampleRelease(t)
	work := t.TempDir()
	out := filepath.Join(work, "demo-1.0.0.airlock")
	itgPack(t, filepath.Join(release, "airlock.yaml"), out)
	dir := filepath.Join(work, "demo")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	itgRun(t, tools.tar, "--zstd", "-xf", out, "-C", dir)
	indexBefore, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := itgManifest(t, dir)
	idx, err := v1.ParseIndexManifest(bytes.NewReader(indexBefore))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) <= len(m.Artifacts) {
		t.Fatalf("index.json has %d entries for %d artifacts: no oras names", len(idx.Manifests), len(m.Artifacts))
	}

	// Every named artifact: images (OCI index, OCI manifest, Docker
	// manifest), the model and the chart.
	var named []v1.Descriptor
	kinds := map[string]bool{}
	for _, d := range idx.Manifests[:len(m.Artifacts)] {
		if d.Annotations[bundle.AnnotationRefName] != "" {
			named = append(named, d)
			kinds[d.Annotations[bundle.AnnotationKind]] = true
		}
	}
	if !kinds[bundle.KindImage] || !kinds[bundle.KindModel] || !kinds[bundle.KindChart] {
		t.Fatalf("the sample bundle names kinds %v; want images, a model and a chart", kinds)
	}
	var orasNames []string
	for _, d := range named {
		full := d.Annotations[bundle.AnnotationRefName]
		want := d.Digest.String()
		short := bundle.OrasName(full)
		if short == "" {
			short = full
		}
		orasNames = append(orasNames, short)

		// oras: --oci-layout DIR:NAME with the oras name.
		raw := itgRun(t, oras, "manifest", "fetch", "--oci-layout", dir+":"+short)
		if got := itgDigest(raw); got != want {
			t.Errorf("oras manifest fetch --oci-layout DIR:%s: %s, index.json names %s for %s", short, got, want, full)
		}
		// oras: the experimental --oci-layout-path DIR takes the full name.
		raw = itgRun(t, oras, "manifest", "fetch", "--oci-layout-path", dir, full)
		if got := itgDigest(raw); got != want {
			t.Errorf("oras manifest fetch --oci-layout-path DIR %s: %s, want %s", full, got, want)
		}
		// skopeo 1.9: oci:DIR:NAME with the full name, where its oci:
		// transport can select the entry (OCI media types only).
		if d.MediaType == bundle.MediaTypeOCIManifest || d.MediaType == bundle.MediaTypeOCIIndex {
			raw = itgRun(t, tools.skopeo, "--insecure-policy", "inspect", "--raw", "oci:"+dir+":"+full)
			if got := itgDigest(raw); got != want {
				t.Errorf("skopeo inspect --raw oci:DIR:%s: %s, want %s", full, got, want)
			}
		}
	}

	// oras lists every name it can open.
	tags := strings.Fields(string(itgRun(t, oras, "repo", "tags", "--oci-layout", dir)))
	for _, n := range orasNames {
		if !slices.Contains(tags, n) {
			t.Errorf("oras repo tags --oci-layout DIR does not list %s: %v", n, tags)
		}
	}

	api := findNamed(t, named, "/demo/api:1.0")
	worker := findNamed(t, named, "/demo/worker:1.0")
	legacy := findNamed(t, named, "/demo/legacy:1.0")

	// skopeo copies by the full name into a registry (plain HTTP here).
	workerFull := worker.Annotations[bundle.AnnotationRefName]
	itgRun(t, tools.skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "oci:"+dir+":"+workerFull, "docker://"+site.Host+"/skopeo/demo/worker:1.0")
	if raw := itgRun(t, tools.skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+site.Host+"/skopeo/demo/worker:1.0"); itgDigest(raw) != worker.Digest.String() {
		t.Errorf("skopeo copy of %s arrived as %s, want %s", workerFull, itgDigest(raw), worker.Digest)
	}

	// oras cp copies the multi-platform index by name, with every child.
	copied := filepath.Join(work, "copied")
	apiFull := api.Annotations[bundle.AnnotationRefName]
	itgRun(t, oras, "cp", "--from-oci-layout", dir+":"+bundle.OrasName(apiFull), "--to-oci-layout", copied+":api-1.0")
	got := itgRun(t, oras, "manifest", "fetch", "--oci-layout", copied+":api-1.0")
	if itgDigest(got) != api.Digest.String() {
		t.Errorf("the copy of %s is %s, want %s", apiFull, itgDigest(got), api.Digest)
	}
	ci, err := v1.ParseIndexManifest(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ci.Manifests {
		raw := itgRun(t, oras, "manifest", "fetch", "--oci-layout", copied+"@"+c.Digest.String())
		if itgDigest(raw) != c.Digest.String() {
			t.Errorf("the copied child %s reads back as %s", c.Digest, itgDigest(raw))
		}
	}
	itgBlobs(t, itgTree(t, copied))
	// ... and into a registry (plain HTTP here).
	itgRun(t, oras, "cp", "--to-plain-http", "--from-oci-layout", dir+":"+bundle.OrasName(apiFull), site.Host+"/oras/demo/api:1.0")
	if raw := itgRun(t, oras, "manifest", "fetch", "--plain-http", site.Host+"/oras/demo/api:1.0"); itgDigest(raw) != api.Digest.String() {
		t.Errorf("oras cp of %s into the registry arrived as %s, want %s", apiFull, itgDigest(raw), api.Digest)
	}

	// go-containerregistry's layout package (crane's library) selects an
	// entry by its full name.
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	li, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	lm, err := li.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var byName int
	for _, d := range lm.Manifests {
		if d.Annotations[bundle.AnnotationRefName] != workerFull {
			continue
		}
		byName++
		img, err := li.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := img.Digest(); err != nil || got != worker.Digest {
			t.Errorf("layout.FromPath(...).Image(%s) digest %v (err %v)", d.Digest, got, err)
		}
		if _, err := img.ConfigFile(); err != nil {
			t.Errorf("the layout package cannot read %s's config: %v", workerFull, err)
		}
	}
	if byName != 1 {
		t.Errorf("%d entries named %s for the layout package, want 1", byName, workerFull)
	}

	// crane: one image picked by its full name with jq into a layout of
	// its own, then pushed (the commands of format.md section 14).
	for _, d := range []v1.Descriptor{worker, api, legacy} {
		full := d.Annotations[bundle.AnnotationRefName]
		_, path, _ := strings.Cut(full, "/")   // demo/worker:1.0
		repo, tag, _ := strings.Cut(path, ":") // demo/worker, 1.0
		to := site.Host + "/crane/" + repo + ":" + tag
		script := `set -e
mkdir "$ONE"
cp demo/oci-layout "$ONE"/ && ln -s ../demo/blobs "$ONE"/blobs
"$JQ" -c --arg name "$NAME" '.manifests |= map(select(.annotations["org.opencontainers.image.ref.name"] == $name))' demo/index.json > "$ONE"/index.json
"$CRANE" push "$ONE" "$TO"
"$CRANE" digest "$TO"
`
		env := []string{"ONE=one-" + strings.ReplaceAll(repo, "/", "-"), "JQ=" + jq, "CRANE=" + crane, "NAME=" + full, "TO=" + to}
		lines := strings.Fields(string(itgRunIn(t, work, env, "bash", "-c", script)))
		want := []string{site.Host + "/crane/" + repo + "@" + d.Digest.String(), d.Digest.String()}
		if !slices.Equal(lines, want) {
			t.Errorf("crane push and crane digest of %s printed %q, want %q", full, lines, want)
		}
	}

	// None of the tools changed the extracted layout.
	if after, err := os.ReadFile(filepath.Join(dir, "index.json")); err != nil || !bytes.Equal(after, indexBefore) {
		t.Errorf("index.json changed after the tools read the layout (err %v)", err)
	}
}

// findNamed returns the one descriptor whose ref.name ends in suffix.
func findNamed(t *testing.T, named []v1.Descriptor, suffix string) v1.Descriptor {
	t.Helper()
	var found []v1.Descriptor
	for _, d := range named {
		if strings.HasSuffix(d.Annotations[bundle.AnnotationRefName], suffix) {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d artifacts named ...%s", len(found), suffix)
	}
	return found[0]
}

// itgRunIn runs bin in dir with extra environment variables, returning its
// stdout and failing the test with its stderr when it exits non-zero.
func itgRunIn(t *testing.T, dir string, env []string, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TMPDIR="+t.TempDir()), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}
