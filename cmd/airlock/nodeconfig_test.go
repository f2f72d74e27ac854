package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// goneSourceRelease packs and signs the sample release from a source
// registry that is shut down before it returns: afterwards, the original
// image names resolve only through a mirror. It returns the bundle, a
// 1-of-1 policy, the source host and the image refs with their digests.
func goneSourceRelease(t *testing.T, env map[string]string) (b, pol, src string, digests map[string]string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	src = strings.TrimPrefix(srv.URL, "http://")
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), src, imgs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := sample.WriteRelease(filepath.Join(dir, "release"), src); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, map[string]string{"AIRLOCK_PASSWORD": testPassword}, "key", "generate", "--output", filepath.Join(dir, "release")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	pol = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: demo\n    signers: [release]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b = filepath.Join(dir, "demo.airlock")
	penv := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	for k, v := range env {
		penv[k] = v
	}
	if code, _, stderr := runCLI(t, penv, "pack", "-q", "-f", filepath.Join(dir, "release", "airlock.yaml"), "-o", b, "--key", filepath.Join(dir, "release.key")); code != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	srv.Close()
	digests = map[string]string{}
	for _, a := range inspectBundle(t, b).Artifacts {
		if a.Kind == bundle.KindImage {
			digests[a.Ref] = a.Digest
		}
	}
	if len(digests) != 3 {
		t.Fatalf("images in the sample bundle: %v", digests)
	}
	return b, pol, src, digests
}

// writeAuth writes a Docker config.json / containers auth.json holding
// user:password for host, and returns its path.
func writeAuth(t *testing.T, dir, host, user, password string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}}})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNodeConfigWithRealClients mirrors into a real registry serving TLS
// with a test CA and htpasswd basic auth, with --ca-file and no
// --insecure-registry, and checks the emitted node configuration with the
// real clients that read it: skopeo (containers/image, as podman and CRI-O)
// with the emitted registries.conf and certs.d pulls the ORIGINAL image
// names, whose registry is gone, through the mirror over verified TLS; and
// containerd's resolver with the emitted hosts.toml resolves and fetches
// them. Without the emitted CA, skopeo refuses the mirror's certificate.
// (Findings 1-3 of issue 9: the old configuration was plain HTTP with
// skip_verify and no CA.)
func TestNodeConfigWithRealClients(t *testing.T) {
	t.Parallel()
	skopeo := testkit.RequireTool(t, "skopeo", "apt-get install skopeo")
	sec := testkit.StartSecure(t)
	b, pol, src, digests := goneSourceRelease(t, nil)
	work := t.TempDir()
	env := map[string]string{"DOCKER_CONFIG": filepath.Join(work, "docker")}
	authFile := writeAuth(t, env["DOCKER_CONFIG"], sec.Host, sec.User, sec.Password)
	nodes := filepath.Join(work, "nodes")
	to := sec.Host + "/site"
	code, stdout, stderr := runCLI(t, env, "mirror", b, "--to", to, "--ca-file", sec.CAFile, "--policy", pol, "--emit-config", nodes)
	if code != 0 {
		t.Fatalf("mirror: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Log(stdout)
	hostsToml, _ := os.ReadFile(filepath.Join(nodes, "containerd", "certs.d", src, "hosts.toml"))
	if !strings.Contains(string(hostsToml), `[host."https://`+to[:len(sec.Host)]+`/v2/site"]`) || !strings.Contains(string(hostsToml), "ca = ") ||
		strings.Contains(string(hostsToml), "skip_verify") {
		t.Errorf("hosts.toml:\n%s", hostsToml)
	}
	conf := filepath.Join(nodes, "registries.conf.d", "airlock-mirror.conf")
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "insecure") {
		t.Errorf("registries.conf:\n%s", b)
	}

	// skopeo, as a podman/CRI-O node would: user certs.d under HOME (the
	// same layout as /etc/containers/certs.d), the emitted registries.conf.
	home := filepath.Join(work, "home")
	if err := os.CopyFS(filepath.Join(home, ".config", "containers", "certs.d"), os.DirFS(filepath.Join(nodes, "containers", "certs.d"))); err != nil {
		t.Fatal(err)
	}
	skopeoRun := func(home string, args ...string) ([]byte, error) {
		cmd := exec.Command(skopeo, append([]string{"--registries-conf", conf}, args...)...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		return cmd.Output()
	}
	for ref, want := range digests {
		raw, err := skopeoRun(home, "inspect", "--raw", "--authfile", authFile, "docker://"+ref)
		if err != nil {
			t.Errorf("skopeo inspect %s through the mirror: %v\n%s", ref, err, testkit.Stderr(err))
			continue
		}
		if got := sha256Hex(raw); got != want {
			t.Errorf("skopeo: %s reads as %s, want %s", ref, got, want)
		}
	}
	var api string
	for ref := range digests {
		if strings.HasSuffix(ref, "/demo/api:1.0") {
			api = ref
		}
	}
	byDigest := strings.TrimSuffix(api, ":1.0") + "@" + digests[api]
	if _, err := skopeoRun(home, "copy", "--all", "--authfile", authFile, "docker://"+byDigest, "oci:"+filepath.Join(work, "pulled")+":api"); err != nil {
		t.Errorf("skopeo copy --all %s through the mirror: %v\n%s", byDigest, err, testkit.Stderr(err))
	}
	if _, err := skopeoRun(filepath.Join(work, "empty-home"), "inspect", "--raw", "--authfile", authFile, "docker://"+api); err == nil {
		t.Error("skopeo accepted the mirror without the emitted CA: TLS verification is off")
	} else if s := testkit.Stderr(err); !strings.Contains(s, "certificate") {
		t.Errorf("skopeo without the CA failed for another reason: %s", s)
	}

	// containerd's resolver with the emitted hosts.toml.
	ctx := context.Background()
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, config.HostOptions{
		HostDir: config.HostDirFromRoot(filepath.Join(nodes, "containerd", "certs.d")),
		Credentials: func(host string) (string, string, error) {
			if host == sec.Host {
				return sec.User, sec.Password, nil
			}
			return "", "", nil
		},
	})})
	for ref, want := range digests {
		name, desc, err := resolver.Resolve(ctx, ref)
		if err != nil {
			t.Errorf("containerd resolve %s: %v", ref, err)
			continue
		}
		if desc.Digest.String() != want {
			t.Errorf("containerd: %s resolves to %s, want %s", ref, desc.Digest, want)
		}
		f, err := resolver.Fetcher(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := f.Fetch(ctx, desc)
		if err != nil {
			t.Errorf("containerd fetch %s: %v", ref, err)
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err != nil || got != want {
			t.Errorf("containerd fetch %s: %s %v", ref, got, err)
		}
	}
}

// TestNodeConfigLocalSourcesCLI: images packed from oci: (relative and
// absolute paths) and docker-archive: get no node configuration, and the
// output names each (finding 1 of issue 9: the old code redirected all of
// docker.io, or wrote certs.d/oci:); with --emit-config-local-host the
// named host maps to where they were pushed, into the same directory, and
// skopeo pulls them by that name through the mirror.
func TestNodeConfigLocalSourcesCLI(t *testing.T) {
	t.Parallel()
	skopeo := testkit.RequireTool(t, "skopeo", "apt-get install skopeo")
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	api, worker, legacy := imgs[0], imgs[1], imgs[2]
	release := t.TempDir()
	if err := sample.WriteOCILayout(filepath.Join(release, "api"), []sample.Image{api}); err != nil {
		t.Fatal(err)
	}
	if err := sample.WriteOCILayout(filepath.Join(release, "layout"), []sample.Image{worker}); err != nil {
		t.Fatal(err)
	}
	if err := sample.WriteDockerArchive(filepath.Join(release, "legacy.tar"), legacy); err != nil {
		t.Fatal(err)
	}
	workerDigest, err := worker.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	absWorker := "oci:" + filepath.Join(release, "layout") + "@" + workerDigest.String()
	refs := []string{"oci:./api:1.0", absWorker, "docker-archive:./legacy.tar"}
	spec := filepath.Join(release, "airlock.yaml")
	if err := os.WriteFile(spec, []byte("name: local\nversion: 1.0.0\nimages:\n  - ref: "+strings.Join(refs, "\n  - ref: ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(release, "k")); code != 0 {
		t.Fatal(stderr)
	}
	pol := filepath.Join(release, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  k: { publicKey: k.pub }\nbundles:\n  - match: local\n    signers: [k]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "local.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", spec, "-o", b, "--key", filepath.Join(release, "k.key")); code != 0 {
		t.Fatal(stderr)
	}
	reg := testkit.StartInProcess(t)
	nodes := filepath.Join(t.TempDir(), "nodes")
	code, stdout, stderr := runCLI(t, nil, "mirror", b, "--to", reg.Host+"/site", "--insecure-registry", reg.Host, "--policy", pol, "--emit-config", nodes)
	if code != 0 {
		t.Fatalf("mirror: exit %d: %s", code, stderr)
	}
	for _, r := range refs {
		if !strings.Contains(stdout, "No node configuration for "+r+": it was packed from a local source") {
			t.Errorf("output does not say %s got no node configuration:\n%s", r, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(nodes, "containerd", "certs.d")); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Join(nodes, "containerd", "certs.d"))
		t.Errorf("containerd configuration for local sources: %v", entries)
	}
	conf := filepath.Join(nodes, "registries.conf.d", "airlock-mirror.conf")
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "[[registry]]") {
		t.Errorf("registries.conf for local sources:\n%s", b)
	}

	// Named: apps.example.test/NAME goes to PREFIX/NAME on the mirror
	// (oci:./api:1.0 was pushed as PREFIX/api:1.0).
	code, stdout, stderr = runCLI(t, nil, "mirror", b, "--to", reg.Host+"/site", "--insecure-registry", reg.Host, "--policy", pol,
		"--emit-config", nodes, "--emit-config-local-host", "apps.example.test")
	if code != 0 || strings.Contains(stdout, "No node configuration") {
		t.Fatalf("mirror --emit-config-local-host: exit %d: %s\n%s", code, stdout, stderr)
	}
	toml, _ := os.ReadFile(filepath.Join(nodes, "containerd", "certs.d", "apps.example.test", "hosts.toml"))
	if !strings.Contains(string(toml), `[host."http://`+reg.Host+`/v2/site"]`) {
		t.Errorf("hosts.toml:\n%s", toml)
	}
	apiDigest, _ := api.Index.Digest()
	cmd := exec.Command(skopeo, "--registries-conf", conf, "inspect", "--raw", "docker://apps.example.test/api:1.0")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo through the mirror: %v\n%s\nmirror output:\n%s", err, testkit.Stderr(err), stdout)
	}
	if got := sha256Hex(raw); got != apiDigest.String() {
		t.Errorf("apps.example.test/api:1.0 reads as %s, want %s", got, apiDigest)
	}
}
