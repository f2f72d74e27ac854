package main

// End to end with real components: a release with a config directory, a
// local chart, a chart from an OCI registry (pushed and signed there by the
// real helm and cosign) and a chart from a classic chart repository
// (index.yaml and archive served on 127.0.0.1) packs, verifies under a
// policy that requires linux/amd64 for images, mirrors into the real
// registry, and the real `helm pull oci://` gets each chart back by its
// digest; install places the directory tree and check finds a changed file.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// copyChart copies the sample chart to dst as chart NAME at VERSION.
func copyChart(t *testing.T, src, dst, name, version string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dst, "Chart.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "name: demo-app\n", "name: "+name+"\n", 1)
	s = strings.Replace(s, "version: 0.1.0\n", "version: "+version+"\n", 1)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runToolIn runs a real tool in dir and returns its combined output, failing the
// test when it exits non-zero.
func runToolIn(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	home := filepath.Join(dir, ".home")
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"), "DOCKER_CONFIG="+filepath.Join(home, "docker"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

var helmDigestRE = regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`)

func TestChartsAndDirectoriesEndToEnd(t *testing.T) {
	helm := testkit.RequireTool(t, "helm", "sudo make tools (builds helm into the tools cache)")
	cos := newCosign(t) // not parallel: testkit.NewCosign
	up := sampleRegistry(t)
	rel := t.TempDir()
	if err := sample.WriteRelease(rel, up.Host); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	// An upstream chart in an OCI registry, pushed by helm and signed by cosign.
	copyChart(t, filepath.Join(rel, "charts", "demo-app"), filepath.Join(work, "oci-app"), "oci-app", "1.2.3")
	runToolIn(t, work, helm, "package", "oci-app", "-d", work)
	out := runToolIn(t, work, helm, "push", filepath.Join(work, "oci-app-1.2.3.tgz"), "oci://"+up.Host+"/upstream", "--plain-http")
	m := helmDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("helm push printed no digest:\n%s", out)
	}
	ociDigest := m[1]
	signImage(t, cos, up.Host+"/upstream/oci-app@"+ociDigest)

	// A classic chart repository with a provenance file next to the archive.
	copyChart(t, filepath.Join(rel, "charts", "demo-app"), filepath.Join(work, "repo-app"), "repo-app", "2.0.0")
	runToolIn(t, work, helm, "package", "repo-app", "-d", work)
	archive, err := os.ReadFile(filepath.Join(work, "repo-app-2.0.0.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stable/index.yaml", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "apiVersion: v1\nentries:\n  repo-app:\n  - name: repo-app\n    version: 2.0.0\n    apiVersion: v2\n    urls: [repo-app-2.0.0.tgz]\n    digest: %s\n", strings.TrimPrefix(itgDigest(archive), "sha256:"))
	})
	mux.HandleFunc("/stable/repo-app-2.0.0.tgz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive) })
	mux.HandleFunc("/stable/repo-app-2.0.0.tgz.prov", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nrepo-app 2.0.0\n"))
	})
	repoSrv := httptest.NewServer(mux) // 127.0.0.1
	defer repoSrv.Close()
	repoHost := strings.TrimPrefix(repoSrv.URL, "http://")

	// worker comes in only through the OCI chart's templates (fromChart).
	spec := fmt.Sprintf(`name: rel
version: 1.0.0
platforms: [linux/amd64]
images:
  - ref: %[1]s/demo/api:1.0
files:
  - source: config/conf.d/
    target: etc/rel/conf.d/
    exclude: ["*.bak"]
charts:
  - source: charts/demo-app
  - source: oci://%[1]s/upstream/oci-app:1.2.3
    images:
      fromChart: true
  - repo: %[2]s/stable
    name: repo-app
    version: 2.0.0
`, up.Host, repoSrv.URL)
	if err := os.WriteFile(filepath.Join(rel, "airlock.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword, "SOURCE_DATE_EPOCH": fmt.Sprint(time.Now().Unix() - 60)}
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(work, "release")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	b := filepath.Join(work, "rel.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", b, "--key", filepath.Join(work, "release.key"), "--insecure-registry", repoHost); code != 0 {
		t.Fatalf("pack: %s", stderr)
	}

	ins := inspectBundle(t, b)
	charts := map[string]bundle.Artifact{}
	var images []string
	var chartSig bool
	for _, a := range ins.Artifacts {
		switch a.Kind {
		case bundle.KindChart:
			charts[a.Name] = a
		case bundle.KindImage:
			images = append(images, a.Ref)
			if strings.Join(a.Platforms, ",") != "linux/amd64" {
				t.Errorf("image %s offers %v, want linux/amd64 only (top-level platforms:)", a.Ref, a.Platforms)
			}
		case bundle.KindAttachment:
			chartSig = chartSig || a.Subject == "oci://"+up.Host+"/upstream/oci-app:1.2.3"
		}
	}
	if len(charts) != 3 || charts["oci-app"].Digest != ociDigest || !chartSig {
		t.Fatalf("charts %+v (want the OCI chart at %s with its cosign signature: %v)", charts, ociDigest, chartSig)
	}
	if strings.Join(images, " ") != up.Host+"/demo/api:1.0 "+up.Host+"/demo/worker:1.0" {
		t.Fatalf("images %v: want api and, from the chart, worker", images)
	}
	if len(ins.Directories) != 1 || ins.Directories[0].Files != 3 {
		t.Fatalf("directories %+v", ins.Directories)
	}

	writePol := func(require string) string {
		p := filepath.Join(work, fmt.Sprintf("policy-%d.yaml", len(require)))
		os.WriteFile(p, []byte("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: rel\n    signers: [release]\n    threshold: 1\n    require:\n"+require), 0o644)
		return p
	}
	pol := writePol("      platforms: [linux/amd64]\n")
	if code, stdout, stderr := runCLI(t, nil, "verify", b, "--policy", pol); code != exitOK {
		t.Fatalf("verify with require.platforms: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr := runCLI(t, nil, "verify", b, "--policy", writePol("      charts: {provenance: true}\n"))
	if code != exitRejected || !strings.Contains(stderr, "2 of 3 charts carry no provenance file: demo-app 0.1.0, oci-app 1.2.3") {
		t.Fatalf("require.charts.provenance: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "verify", b, "--policy", writePol("      charts:\n        signature: true\n"))
	if code != exitRejected || !strings.Contains(stderr, "2 of 3 charts carry no cosign signature: demo-app 0.1.0, repo-app 2.0.0") {
		t.Fatalf("require.charts.signature: exit %d\n%s", code, stderr)
	}

	site := testkit.Start(t)
	code, res, stderr := mirrorCLI(t, nil, b, site.Host+"/site", pol)
	if code != exitOK {
		t.Fatalf("mirror: exit %d\n%s", code, stderr)
	}
	for _, mp := range res.Mappings {
		t.Logf("%s %s -> %s", mp.Kind, mp.Source, mp.Target)
	}
	h, err := bundle.ReadHeadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range h.Manifest.Artifacts {
		if a.Kind != bundle.KindChart {
			continue
		}
		c, err := h.Content(i)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := bundle.ChartContent(a, c.Manifests[0].Data, c.Configs[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(work, "pulled-"+a.Name)
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		out := runToolIn(t, work, helm, "pull", "oci://"+site.Host+"/site/charts/"+a.Name, "--version", a.Version, "--plain-http", "-d", dest)
		if m := helmDigestRE.FindStringSubmatch(out); m == nil || m[1] != a.Digest {
			t.Errorf("helm pull %s: %q, want digest %s", a.Name, out, a.Digest)
		}
		got, err := os.ReadFile(filepath.Join(dest, a.Name+"-"+a.Version+".tgz"))
		if err != nil {
			t.Fatal(err)
		}
		if itgDigest(got) != layers.Chart.Digest {
			t.Errorf("helm pull %s: archive %s, the bundle carries %s", a.Name, itgDigest(got), layers.Chart.Digest)
		}
		t.Logf("helm pull oci://%s/site/charts/%s --version %s: %s", site.Host, a.Name, a.Version, a.Digest)
	}
	if tags := tagsOf(t, site.Host+"/site/charts/oci-app"); !strings.Contains(strings.Join(tags, " "), strings.ReplaceAll(ociDigest, ":", "-")+".sig") {
		t.Errorf("the OCI chart's cosign signature was not mirrored next to it: tags %v", tags)
	}

	// Install places the tree; check re-hashes every file of it.
	root := filepath.Join(work, "root")
	if code, out, stderr := runCmd(t, installCommand(), b, "--root", root, "--policy", pol, "-q"); code != exitOK {
		t.Fatalf("install: exit %d\n%s%s", code, out, stderr)
	}
	tree := itgTree(t, filepath.Join(root, "releases", "rel", "1.0.0"))
	for _, p := range []string{"etc/rel/conf.d/10-server.conf", "etc/rel/conf.d/20-limits.conf", "etc/rel/conf.d/tls/ciphers.conf"} {
		if _, ok := tree[p]; !ok {
			t.Errorf("%s was not installed (tree %v)", p, tree)
		}
	}
	if _, ok := tree["etc/rel/conf.d/20-limits.conf.bak"]; ok {
		t.Error("an excluded file was installed")
	}
	if code, out, _ := runCmd(t, checkCommand(), "--root", root); code != exitOK {
		t.Fatalf("check before: exit %d\n%s", code, out)
	}
	changed := filepath.Join(root, "current", "rel", "etc", "rel", "conf.d", "tls", "ciphers.conf")
	if err := os.WriteFile(changed, []byte("TLS_RSA_WITH_RC4_128_SHA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, checkCommand(), "--root", root)
	if code == exitOK || !strings.Contains(out, "etc/rel/conf.d/tls/ciphers.conf") || !strings.Contains(out, "modified") {
		t.Fatalf("check after a change: exit %d\n%s", code, out)
	}
	t.Log(out)
}
