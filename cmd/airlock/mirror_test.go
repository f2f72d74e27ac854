package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/registry"
)

// verifiedRelease is signedRelease with a second signature (security), so
// that the 2-of-3 policy passes.
func verifiedRelease(t *testing.T) (dir, bundlePath, policyPath string, env map[string]string) {
	t.Helper()
	dir, bundlePath, policyPath, env = signedRelease(t)
	if code, _, stderr := runCLI(t, env, "sign", bundlePath, "--key", filepath.Join(dir, "security.key")); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	return dir, bundlePath, policyPath, env
}

// inspectBundle returns `airlock inspect --json` of b.
func inspectBundle(t *testing.T, b string) bundle.Inspection {
	t.Helper()
	code, stdout, stderr := runCLI(t, nil, "inspect", b, "--json")
	if code != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	var ins bundle.Inspection
	if err := json.Unmarshal([]byte(stdout), &ins); err != nil {
		t.Fatal(err)
	}
	return ins
}

// mirrorCLI runs `airlock mirror B --to TO --insecure-registry HOST --policy P --json ARGS...`
// and returns the exit code and the parsed result.
func mirrorCLI(t *testing.T, env map[string]string, b, to, pol string, args ...string) (int, *mirror.Result, string) {
	t.Helper()
	host, _, _ := strings.Cut(to, "/")
	all := append([]string{"mirror", b, "--to", to, "--insecure-registry", host, "--policy", pol, "--json"}, args...)
	code, stdout, stderr := runCLI(t, env, all...)
	var res mirror.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("mirror --json (exit %d) printed no result: %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	return code, &res, stderr
}

// repoPath is the repository path of an image ref ("demo/api") and its tag.
func repoPath(t *testing.T, ref string) (string, string) {
	t.Helper()
	r, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.RepositoryStr(), r.TagStr()
}

// srcHost is the registry host of an image ref.
func srcHost(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().RegistryStr()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// skopeoRaw returns the digest of the exact manifest bytes skopeo reads at ref.
func skopeoRaw(t *testing.T, skopeo *testkit.Skopeo, ref string) string {
	t.Helper()
	out, err := skopeo.Raw(t.Context(), "docker://"+ref)
	if err != nil {
		t.Error(err)
		return ""
	}
	return sha256Hex(out)
}

func repoOf(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tagsOf lists the tags of repo; a repository the registry does not know
// has none.
func tagsOf(t *testing.T, repo string) []string {
	t.Helper()
	tags, err := remote.List(repoOf(t, repo))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("tags of %s: %v", repo, err)
	}
	return tags
}

// manifestExists reports whether repo has a manifest with digest.
func manifestExists(t *testing.T, repo, digest string) bool {
	t.Helper()
	_, err := remote.Head(repoOf(t, repo).Digest(digest))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return false
	}
	if err != nil {
		t.Fatalf("HEAD %s@%s: %v", repo, digest, err)
	}
	return true
}

// findArtifact returns the artifact of kind whose ref (images), name (models)
// or subject (SBOMs) ends in suffix.
func findArtifact(t *testing.T, ins bundle.Inspection, kind, suffix string) bundle.Artifact {
	t.Helper()
	for _, a := range ins.Artifacts {
		if a.Kind == kind && (strings.HasSuffix(a.Ref, suffix) || a.Name == suffix || (kind == bundle.KindSBOM && strings.HasSuffix(a.Subject, suffix))) {
			return a
		}
	}
	t.Fatalf("no %s %s in the bundle", kind, suffix)
	return bundle.Artifact{}
}

// TestMirrorIntoRegistry mirrors the signed sample bundle into a real
// registry (CNCF distribution 2.8, no referrers API) and checks the result
// with skopeo and go-containerregistry: every manifest byte for byte, blobs
// complete, SBOMs reachable through the referrers tag schema, the report,
// the emitted node configuration, --keep-registry-host, --images-only, and
// that a second run pushes nothing.
func TestMirrorIntoRegistry(t *testing.T) {
	t.Parallel()
	skopeo := testkit.NewSkopeo(t)
	reg := testkit.Start(t)
	_, b, pol, _ := verifiedRelease(t)
	ins := inspectBundle(t, b)
	out := t.TempDir()
	report := filepath.Join(out, "mapping.json")
	emit := filepath.Join(out, "nodes")
	dest := reg.Host + "/site/mirror"

	code, res, stderr := mirrorCLI(t, nil, b, dest, pol, "--report", report, "--emit-config", emit)
	if code != 0 {
		t.Fatalf("mirror: exit %d: %s", code, stderr)
	}
	if res.Verify == nil || !res.Verify.Verified || res.Blobs.Pushed == 0 || res.Manifests.Pushed == 0 || res.Tags == 0 {
		t.Fatalf("first mirror result: %+v", res)
	}
	t.Logf("first run: blobs %+v, manifests %+v, tags %d, %.2fs", res.Blobs, res.Manifests, res.Tags, res.Seconds)

	// Every image (OCI index, OCI image, Docker schema 2) and the model
	// read back through skopeo with the bundle's digest.
	var images []bundle.Artifact
	source := ""
	for _, a := range ins.Artifacts {
		if a.Kind == bundle.KindImage {
			images = append(images, a)
			source = srcHost(t, a.Ref)
		}
	}
	if len(images) != 3 {
		t.Fatalf("%d images in the sample bundle", len(images))
	}
	want := map[string]string{} // target ref with tag -> digest
	for _, a := range images {
		p, tag := repoPath(t, a.Ref)
		want[dest+"/"+p+":"+tag] = a.Digest
	}
	model := findArtifact(t, ins, bundle.KindModel, "tiny-classifier")
	want[dest+"/models/tiny-classifier:"+ins.Version] = model.Digest
	for ref, d := range want {
		if got := skopeoRaw(t, skopeo, ref); got != "" && got != d {
			t.Errorf("%s: skopeo reads %s, the bundle has %s", ref, got, d)
		}
	}

	// One image copies out completely; skopeo checks every blob's digest.
	worker := findArtifact(t, ins, bundle.KindImage, "/demo/worker:1.0")
	copyDir := filepath.Join(out, "worker")
	if _, err := skopeo.Run(t.Context(), "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+dest+"/demo/worker:1.0", "dir:"+copyDir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(copyDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if sha256Hex(raw) != worker.Digest {
		t.Errorf("skopeo copied manifest %s, want %s", sha256Hex(raw), worker.Digest)
	}
	for _, d := range append([]v1.Descriptor{mf.Config}, mf.Layers...) {
		blob, err := os.ReadFile(filepath.Join(copyDir, d.Digest.Hex))
		if err != nil || sha256Hex(blob) != d.Digest.String() || int64(len(blob)) != d.Size {
			t.Errorf("copied blob %s incomplete: %v", d.Digest, err)
		}
	}

	// SBOMs are found through the referrers tag schema (sha256-<hex>).
	for _, img := range []string{"/demo/api:1.0", "/demo/worker:1.0"} {
		sbom := findArtifact(t, ins, bundle.KindSBOM, img)
		subject := findArtifact(t, ins, bundle.KindImage, img)
		p, _ := repoPath(t, subject.Ref)
		repo := dest + "/" + p
		fallback := strings.Replace(subject.Digest, ":", "-", 1)
		if !contains(tagsOf(t, repo), fallback) {
			t.Errorf("%s has no referrers tag %s: %v", repo, fallback, tagsOf(t, repo))
		}
		idx, err := remote.Referrers(repoOf(t, repo).Digest(subject.Digest))
		if err != nil {
			t.Fatalf("referrers of %s: %v", subject.Digest, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range im.Manifests {
			found = found || d.Digest.String() == sbom.Digest
		}
		if !found {
			t.Errorf("referrers of %s do not list the SBOM %s: %+v", repo, sbom.Digest, im.Manifests)
		}
		if !manifestExists(t, repo, sbom.Digest) {
			t.Errorf("SBOM manifest %s missing in %s", sbom.Digest, repo)
		}
	}

	// The report maps every image and the model to ref@digest.
	var rep struct {
		Target   string           `json:"target"`
		Mappings []mirror.Mapping `json:"mappings"`
	}
	rb, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rb, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Target != dest {
		t.Errorf("report target %q, want %q", rep.Target, dest)
	}
	targets := map[string]mirror.Mapping{}
	for _, m := range rep.Mappings {
		targets[m.Target] = m
	}
	for _, a := range images {
		p, tag := repoPath(t, a.Ref)
		m, ok := targets[dest+"/"+p+":"+tag+"@"+a.Digest]
		if !ok || m.Kind != "image" || m.Source != a.Ref || m.Digest != a.Digest {
			t.Errorf("report lacks image %s -> %s/%s:%s@%s: %+v", a.Ref, dest, p, tag, a.Digest, rep.Mappings)
		}
	}
	if m, ok := targets[dest+"/models/tiny-classifier:"+ins.Version+"@"+model.Digest]; !ok || m.Kind != "model" {
		t.Errorf("report lacks the model: %+v", rep.Mappings)
	}
	sboms := 0
	for _, m := range rep.Mappings {
		if m.Kind == bundle.KindSBOM {
			sboms++
			if m.Subject == "" || !strings.Contains(m.Target, "@"+m.Digest) {
				t.Errorf("SBOM mapping %+v", m)
			}
		}
	}
	if sboms != 2 {
		t.Errorf("%d SBOM mappings, want 2", sboms)
	}

	// Node configuration redirects the source registry to the mirror; the
	// JSON result says what was written.
	var withNodes struct {
		NodeConfig *mirror.NodeConfigResult `json:"nodeConfig"`
	}
	_, jsonOut, _ := runCLI(t, nil, "mirror", b, "--to", dest, "--insecure-registry", reg.Host, "--policy", pol, "--json", "--emit-config", emit)
	if err := json.Unmarshal([]byte(jsonOut), &withNodes); err != nil || withNodes.NodeConfig == nil || len(withNodes.NodeConfig.Registries) != 1 || withNodes.NodeConfig.Registries[0] != source {
		t.Errorf("--json nodeConfig: %v %+v", err, withNodes.NodeConfig)
	}
	hostsToml, err := os.ReadFile(filepath.Join(emit, "containerd", "certs.d", source, "hosts.toml"))
	if err != nil {
		t.Fatalf("hosts.toml: %v", err)
	}
	for _, s := range []string{`server = "https://` + source + `"`, `[host."http://` + reg.Host + `/v2/site/mirror"]`, `capabilities = ["pull", "resolve"]`, "override_path = true"} {
		if !strings.Contains(string(hostsToml), s) {
			t.Errorf("hosts.toml lacks %q:\n%s", s, hostsToml)
		}
	}
	if strings.Contains(string(hostsToml), "skip_verify") {
		t.Errorf("hosts.toml turns TLS verification off:\n%s", hostsToml)
	}
	conf, err := os.ReadFile(filepath.Join(emit, "registries.conf.d", "airlock-mirror.conf"))
	if err != nil {
		t.Fatalf("registries.conf: %v", err)
	}
	for _, s := range []string{`prefix = "` + source + `"`, `location = "` + source + `"`, "[[registry.mirror]]", `location = "` + dest + `"`, "insecure = true"} {
		if !strings.Contains(string(conf), s) {
			t.Errorf("registries.conf lacks %q:\n%s", s, conf)
		}
	}

	// A second run of the same bundle moves almost nothing.
	code, res, stderr = mirrorCLI(t, nil, b, dest, pol)
	if code != 0 {
		t.Fatalf("second mirror: exit %d: %s", code, stderr)
	}
	if res.Blobs.Pushed != 0 || res.Blobs.BytesPushed != 0 || res.Manifests.Pushed != 0 || res.Tags != 0 {
		t.Errorf("second run moved data: blobs %+v, manifests %+v, tags %d", res.Blobs, res.Manifests, res.Tags)
	}
	t.Logf("second run: blobs %+v, manifests %+v, %.2fs", res.Blobs, res.Manifests, res.Seconds)

	// --keep-registry-host puts the source host into the path (its port
	// separator, invalid in a repository path, becomes "_"), and the
	// emitted configuration points there.
	keep := reg.Host + "/keep"
	keepEmit := filepath.Join(out, "nodes-keep")
	hostDir := strings.ReplaceAll(source, ":", "_")
	code, res, stderr = mirrorCLI(t, nil, b, keep, pol, "--keep-registry-host", "--emit-config", keepEmit)
	if code != 0 {
		t.Errorf("--keep-registry-host with source %s: exit %d: %s", source, code, stderr)
	} else {
		api := findArtifact(t, ins, bundle.KindImage, "/demo/api:1.0").Digest
		want := keep + "/" + hostDir + "/demo/api:1.0@" + api
		found := false
		for _, m := range res.Mappings {
			found = found || m.Target == want
		}
		if !found {
			t.Errorf("--keep-registry-host: no mapping to %s: %+v", want, res.Mappings)
		}
		if got := skopeoRaw(t, skopeo, keep+"/"+hostDir+"/demo/api:1.0"); got != api {
			t.Errorf("--keep-registry-host: api reads %s, want %s", got, api)
		}
		toml, err := os.ReadFile(filepath.Join(keepEmit, "containerd", "certs.d", source, "hosts.toml"))
		if err != nil || !strings.Contains(string(toml), `[host."http://`+reg.Host+"/v2/keep/"+hostDir+`"]`) {
			t.Errorf("--keep-registry-host hosts.toml: %v\n%s", err, toml)
		}
		conf, err := os.ReadFile(filepath.Join(keepEmit, "registries.conf.d", "airlock-mirror.conf"))
		if err != nil || !strings.Contains(string(conf), `location = "`+keep+"/"+hostDir+`"`) {
			t.Errorf("--keep-registry-host registries.conf: %v\n%s", err, conf)
		}
	}

	// --images-only skips the model.
	only := reg.Host + "/only"
	code, res, stderr = mirrorCLI(t, nil, b, only, pol, "--images-only")
	if code != 0 {
		t.Fatalf("--images-only: exit %d: %s", code, stderr)
	}
	for _, m := range res.Mappings {
		if m.Kind == "model" {
			t.Errorf("--images-only mirrored the model: %+v", m)
		}
	}
	if tags := tagsOf(t, only+"/models/tiny-classifier"); len(tags) != 0 {
		t.Errorf("--images-only: model tags %v", tags)
	}
	if got := skopeoRaw(t, skopeo, only+"/demo/legacy:1.0"); got != findArtifact(t, ins, bundle.KindImage, "/demo/legacy:1.0").Digest {
		t.Errorf("--images-only: legacy reads %s", got)
	}

	mirrorIntoServe(t, b, pol, ins)
}

// mirrorIntoServe mirrors into `airlock serve`'s registry (registry.Server),
// which has the OCI referrers API, and finds the SBOMs through it.
func mirrorIntoServe(t *testing.T, b, pol string, ins bundle.Inspection) {
	t.Helper()
	srv, err := registry.New(registry.Options{Data: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	var host string
	select {
	case host = <-addr:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	dest := host + "/served"
	code, res, stderr := mirrorCLI(t, nil, b, dest, pol)
	if code != 0 {
		t.Fatalf("mirror into airlock serve: exit %d: %s", code, stderr)
	}
	if res.Tags == 0 {
		t.Fatalf("result %+v", res)
	}
	for _, img := range []string{"/demo/api:1.0", "/demo/worker:1.0"} {
		sbom := findArtifact(t, ins, bundle.KindSBOM, img)
		subject := findArtifact(t, ins, bundle.KindImage, img)
		p, _ := repoPath(t, subject.Ref)
		repo := dest + "/" + p
		// The referrers API itself, not the tag schema.
		resp, err := http.Get("http://" + host + "/v2/served/" + p + "/referrers/" + subject.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var im v1.IndexManifest
		err = json.NewDecoder(resp.Body).Decode(&im)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET referrers of %s: %d %v", repo, resp.StatusCode, err)
		}
		found := false
		for _, d := range im.Manifests {
			found = found || d.Digest.String() == sbom.Digest
		}
		if !found {
			t.Errorf("referrers API of %s does not list the SBOM %s: %+v", repo, sbom.Digest, im.Manifests)
		}
		if contains(tagsOf(t, repo), strings.Replace(subject.Digest, ":", "-", 1)) {
			t.Errorf("%s got a referrers fallback tag although the registry has the referrers API", repo)
		}
	}
	for _, a := range ins.Artifacts {
		if a.Kind != bundle.KindImage {
			continue
		}
		p, tag := repoPath(t, a.Ref)
		d, err := remote.Head(repoOf(t, dest+"/"+p).Tag(tag))
		if err != nil || d.Digest.String() != a.Digest {
			t.Errorf("served %s:%s: %v %v", p, tag, d, err)
		}
	}
	t.Logf("airlock serve at %s: blobs %+v, manifests %+v, tags %d; SBOMs found through the referrers API", host, res.Blobs, res.Manifests, res.Tags)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMirrorRefusesUnverifiedBundle: a bundle that fails verification
// leaves nothing of itself tagged and no manifest in the registry.
func TestMirrorRefusesUnverifiedBundle(t *testing.T) {
	t.Parallel()
	reg := testkit.Start(t)
	dir, b, pol, env := signedRelease(t)
	ins := inspectBundle(t, b)

	// One signature: the 2-of-3 threshold is not met. Nothing is pushed.
	code, res, _ := mirrorCLI(t, nil, b, reg.Host+"/one", pol)
	if code != exitRejected {
		t.Fatalf("one signature: exit %d, want %d", code, exitRejected)
	}
	if res.Verify == nil || res.Verify.Verified || res.Verify.Stage != "policy" || len(res.Mappings) != 0 {
		t.Errorf("one signature: result %+v", res)
	}
	catalog, err := remote.Catalog(context.Background(), mustRegistry(t, reg.Host))
	if err != nil {
		t.Fatal(err)
	}
	if len(catalog) != 0 {
		t.Errorf("untrusted bundle created repositories: %v", catalog)
	}

	// Trusted, but a body byte flipped: some blobs may be pushed, but no
	// manifest and no tag.
	if code, _, stderr := runCLI(t, env, "sign", b, "--key", filepath.Join(dir, "security.key")); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	data, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	head := inspectBundle(t, b).Head.CompressedBytes
	if head <= 0 || head >= int64(len(data)) {
		t.Fatalf("head is %d of %d bytes", head, len(data))
	}
	data[head+(int64(len(data))-head)/2] ^= 0x01
	bad := filepath.Join(dir, "bad.airlock")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, res, stderr := mirrorCLI(t, nil, bad, reg.Host+"/flip", pol)
	if code != exitRejected {
		t.Fatalf("flipped body byte: exit %d, want %d: %s", code, exitRejected, stderr)
	}
	if res.Verify == nil || res.Verify.Verified || res.Tags != 0 || res.Manifests.Pushed != 0 || len(res.Mappings) != 0 {
		t.Errorf("flipped body byte: result %+v", res)
	}
	t.Logf("flipped body byte: stage %s: %s; blobs %+v", res.Verify.Stage, res.Verify.Error, res.Blobs)

	// Every manifest of the bundle, children of the index included.
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	apiIdx, err := imgs[0].Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ins.Artifacts {
		var repo string
		switch a.Kind {
		case bundle.KindImage:
			p, _ := repoPath(t, a.Ref)
			repo = reg.Host + "/flip/" + p
		case bundle.KindModel:
			repo = reg.Host + "/flip/models/" + a.Name
		case bundle.KindSBOM:
			p, _ := repoPath(t, a.Subject)
			repo = reg.Host + "/flip/" + p
		default:
			continue
		}
		digests := []string{a.Digest}
		if strings.HasSuffix(a.Ref, "/demo/api:1.0") {
			for _, c := range apiIdx.Manifests {
				digests = append(digests, c.Digest.String())
			}
		}
		for _, d := range digests {
			if manifestExists(t, repo, d) {
				t.Errorf("a rejected bundle left manifest %s in %s", d, repo)
			}
		}
		if tags := tagsOf(t, repo); len(tags) != 0 {
			t.Errorf("a rejected bundle left tags in %s: %v", repo, tags)
		}
	}
	catalog, err = remote.Catalog(context.Background(), mustRegistry(t, reg.Host))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range catalog {
		if tags := tagsOf(t, reg.Host+"/"+r); len(tags) != 0 {
			t.Errorf("a rejected bundle left tags in %s: %v", r, tags)
		}
	}
}

func mustRegistry(t *testing.T, host string) name.Registry {
	t.Helper()
	r, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMirrorCosignInterop: an upstream cosign signature carried in the
// bundle still verifies with the real cosign against the mirror, and
// --sign-key adds a site signature that cosign accepts, next to the
// upstream one or alone.
func TestMirrorCosignInterop(t *testing.T) {
	cs := newCosign(t)
	cosignRun := func(args ...string) error { _, err := cs.Run(args...); return err }
	dir := cs.Dir
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	up := cosignRelease(t, cs, "release", "security")
	worker, b, pol := up.worker, up.bundle, up.policy
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "site")); code != 0 {
		t.Fatalf("key generate site: %s", stderr)
	}
	ins := inspectBundle(t, b)
	api := findArtifact(t, ins, bundle.KindImage, "/demo/api:1.0").Digest
	if findArtifact(t, ins, bundle.KindImage, "/demo/worker:1.0").Digest != worker {
		t.Fatal("the bundle changed the worker's digest")
	}

	dst := testkit.Start(t)
	dest := dst.Host + "/site"
	code, res, stderr := mirrorCLI(t, env, b, dest, pol, "--sign-key", filepath.Join(dir, "site.key"))
	if code != 0 {
		t.Fatalf("mirror --sign-key: exit %d: %s", code, stderr)
	}
	if res.Signed != 2 {
		t.Errorf("signed %d images, want 2", res.Signed)
	}
	verifyWith := func(key, ref string) error {
		return cosignRun("verify", "--key", key, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
	}
	workerRef := dest + "/demo/worker@" + worker
	apiRef := dest + "/demo/api@" + api
	for _, c := range []struct{ key, ref string }{
		{"cosign.pub", workerRef}, // the upstream signature, carried
		{"site.pub", workerRef},   // the site's, next to it
		{"site.pub", apiRef},      // the site's, alone
	} {
		if err := verifyWith(c.key, c.ref); err != nil {
			t.Errorf("cosign verify --key %s %s: %v", c.key, c.ref, err)
		}
	}
	for _, c := range []struct{ key, ref string }{
		{"cosign.pub", apiRef},  // never signed upstream
		{"release.pub", apiRef}, // a key that signed the bundle, not the image
		{"release.pub", workerRef},
	} {
		if err := verifyWith(c.key, c.ref); err == nil {
			t.Errorf("cosign verify --key %s %s passed", c.key, c.ref)
		}
	}

	// A rerun signs nothing twice and pushes nothing.
	code, res, stderr = mirrorCLI(t, env, b, dest, pol, "--sign-key", filepath.Join(dir, "site.key"))
	if code != 0 {
		t.Fatalf("second mirror --sign-key: exit %d: %s", code, stderr)
	}
	if res.Signed != 0 || res.Tags != 0 || res.Blobs.Pushed != 0 || res.Manifests.Pushed != 0 {
		t.Errorf("second run: signed %d, tags moved %d, blobs %+v, manifests %+v", res.Signed, res.Tags, res.Blobs, res.Manifests)
	}
	if err := verifyWith("cosign.pub", workerRef); err != nil {
		t.Errorf("after the rerun: %v", err)
	}
}
