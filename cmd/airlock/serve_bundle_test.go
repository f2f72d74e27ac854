package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
)

var bundleServingLine = regexp.MustCompile(`serving (.+?) read-only as an OCI registry on https?://(127\.0\.0\.1:\d+) \(Ctrl-C to stop\)`)

// servedBundle is a running `airlock serve --bundle`.
type servedBundle struct {
	host   string
	stderr *lockedBuffer
	stop   func() int // cancels and returns the exit code
}

// startServeBundle runs `airlock serve --bundle B --policy P --addr
// 127.0.0.1:0 args...` in-process and waits for its serving line.
func startServeBundle(t *testing.T, b, pol string, args ...string) *servedBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errb := &lockedBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: &lockedBuffer{}, stderr: errb, getenv: func(string) string { return "" }}
	exited := make(chan int, 1)
	all := append([]string{"--bundle", b, "--policy", pol, "--addr", "127.0.0.1:0"}, args...)
	go func() { exited <- runCommand(ctx, serveCommand(), all, e) }()
	s := &servedBundle{stderr: errb}
	for deadline := time.Now().Add(serveWait); s.host == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-exited:
			cancel()
			t.Fatalf("airlock serve --bundle exited %d before serving: %s", code, errb.String())
		default:
		}
		if m := bundleServingLine.FindStringSubmatch(errb.String()); m != nil {
			s.host = m[2]
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no serving line within %v: %q", serveWait, errb.String())
		}
	}
	stopped, code := false, 0
	s.stop = func() int {
		if stopped {
			return code
		}
		stopped = true
		remote.DefaultTransport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		cancel()
		select {
		case code = <-exited:
		case <-time.After(serveWait):
			t.Fatalf("airlock serve --bundle still running %v after cancel", serveWait)
		}
		return code
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// TestServeBundleSkopeoCrane serves a verified bundle with `airlock serve
// --bundle` and pulls from it with the real skopeo and crane: each image
// arrives with the digest the bundle signed, every blob checked by the
// client.
func TestServeBundleSkopeoCrane(t *testing.T) {
	skopeo := testkit.NewSkopeo(t)
	crane := testkit.RequireTool(t, "crane", "make tools")
	_, b, pol, _ := verifiedRelease(t)
	ins := inspectBundle(t, b)
	s := startServeBundle(t, b, pol)
	if !strings.Contains(s.stderr.String(), "head verified: demo 1.0.0 signed by") || !strings.Contains(s.stderr.String(), "head only") {
		t.Errorf("the startup lines do not say what was verified: %q", s.stderr.String())
	}

	ctx := context.Background()
	for _, suffix := range []string{"/demo/api:1.0", "/demo/worker:1.0", "/demo/legacy:1.0"} {
		art := findArtifact(t, ins, bundle.KindImage, suffix)
		src := s.host + suffix
		// skopeo: the exact bytes of the tagged manifest, then a copy of
		// this machine's platform into dir: (manifests kept byte for byte,
		// every blob checked by skopeo).
		top, err := skopeo.Raw(ctx, "docker://"+src)
		if err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", src, err)
		}
		if got := sha256Hex(top); got != art.Digest {
			t.Errorf("skopeo read %s as %s, the bundle signed %s", src, got, art.Digest)
		}
		dir := filepath.Join(t.TempDir(), "dir")
		if _, err := skopeo.Run(ctx, "copy", "--preserve-digests", "--src-tls-verify=false", "docker://"+src, "dir:"+dir); err != nil {
			t.Fatalf("skopeo copy %s: %v", src, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(raw); got != art.Digest && !strings.Contains(string(top), got) {
			t.Errorf("skopeo copied %s as %s, which the signed %s does not list", src, got, art.Digest)
		}
		// crane: the digest, then a full pull (crane checks every layer).
		out, err := exec.Command(crane, "digest", "--insecure", src).Output()
		if err != nil || strings.TrimSpace(string(out)) != art.Digest {
			t.Errorf("crane digest %s: %q %v, want %s", src, out, err, art.Digest)
		}
		cdir := filepath.Join(t.TempDir(), "crane")
		if out, err := exec.Command(crane, "pull", "--insecure", "--format", "oci", src+"@"+art.Digest, cdir).CombinedOutput(); err != nil {
			// by tag and digest: crane pulls the platform it runs on
			t.Errorf("crane pull %s: %v\n%s", src, err, out)
		}
	}
	// A model by its mirror name and tag, and its weights by digest
	// (crane checks the blob against the digest).
	model := findArtifact(t, ins, bundle.KindModel, "tiny-classifier")
	out, err := exec.Command(crane, "manifest", "--insecure", s.host+"/models/tiny-classifier:1.0.0").Output()
	if err != nil || sha256Hex(out) != model.Digest {
		t.Errorf("crane manifest of the model: %v, digest %s, want %s", err, sha256Hex(out), model.Digest)
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(out, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("model manifest: %v", err)
	}
	for _, l := range m.Layers {
		blob := filepath.Join(t.TempDir(), "blob")
		f, err := os.Create(blob)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(crane, "blob", "--insecure", s.host+"/models/tiny-classifier@"+l.Digest)
		cmd.Stdout = f
		err = cmd.Run()
		f.Close()
		got, _ := os.ReadFile(blob)
		if err != nil || sha256Hex(got) != l.Digest {
			t.Errorf("crane blob %s: %v, %d bytes hashing to %s", l.Digest, err, len(got), sha256Hex(got))
		}
	}
	// A push is refused.
	if out, err := exec.Command(crane, "copy", "--insecure", s.host+"/demo/api:1.0", s.host+"/demo/api:copy").CombinedOutput(); err == nil {
		t.Errorf("crane copy into the bundle server succeeded: %s", out)
	}
	if code := s.stop(); code != exitOK {
		t.Errorf("exit %d after Ctrl-C: %s", code, s.stderr.String())
	}
}

// TestServeBundleTLS serves a bundle over HTTPS (--tls-cert, --tls-key)
// with a certificate of a CA made for the test: crane and skopeo pull from
// it when given the CA and refuse it without, so the TLS is real and
// verified; no plain-HTTP answer is given on the port.
func TestServeBundleTLS(t *testing.T) {
	skopeo := testkit.NewSkopeo(t)
	crane := testkit.RequireTool(t, "crane", "make tools")
	_, b, pol, _ := verifiedRelease(t)
	ins := inspectBundle(t, b)
	certDir, ca, cert, key := testkit.CertFiles(t)
	s := startServeBundle(t, b, pol, "--tls-cert", cert, "--tls-key", key)
	if !strings.Contains(s.stderr.String(), "on https://"+s.host) {
		t.Fatalf("the serving line does not say https: %q", s.stderr.String())
	}
	art := findArtifact(t, ins, bundle.KindImage, "/demo/api:1.0")
	src := s.host + "/demo/api:1.0"

	withCA := append(os.Environ(), "SSL_CERT_FILE="+ca)
	cmd := exec.Command(crane, "digest", src)
	cmd.Env = withCA
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != art.Digest {
		t.Errorf("crane digest %s over verified TLS: %q %v, want %s", src, out, err, art.Digest)
	}
	cmd = exec.Command(crane, "pull", "--format", "oci", src+"@"+art.Digest, filepath.Join(t.TempDir(), "crane"))
	cmd.Env = withCA
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("crane pull over verified TLS: %v\n%s", err, out)
	}
	ctx := context.Background()
	raw, err := skopeo.Run(ctx, "inspect", "--raw", "--cert-dir", certDir, "docker://"+src)
	if err != nil || sha256Hex(raw) != art.Digest {
		t.Errorf("skopeo inspect --raw over verified TLS: %v, digest %s, want %s", err, sha256Hex(raw), art.Digest)
	}
	// Without the CA the certificate is refused: the clients verify it.
	cmd = exec.Command(crane, "digest", src)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(t.TempDir(), "none.pem"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Errorf("crane without the CA: %v %s, want a certificate error", err, out)
	}
	// Plain HTTP to the TLS port gets no registry answer.
	if resp, err := http.Get("http://" + s.host + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS port got a registry answer: %s", resp.Status)
		}
	}
	if code := s.stop(); code != exitOK {
		t.Errorf("exit %d after Ctrl-C: %s", code, s.stderr.String())
	}
}

// TestServeBundleRefusesUntrusted: a bundle whose head does not pass the
// policy is not served (exit 3, nothing listening); usage errors are 2.
func TestServeBundleRefusesUntrusted(t *testing.T) {
	t.Parallel()
	_, b, pol, _ := signedRelease(t) // one signature; the policy needs two
	code, _, stderr := runServeCLI(context.Background(), []string{"--bundle", b, "--policy", pol, "--addr", "127.0.0.1:0"})
	if code != exitRejected {
		t.Fatalf("untrusted bundle: exit %d, want %d: %s", code, exitRejected, stderr)
	}
	if !strings.Contains(stderr, "is not served") || strings.Contains(stderr, "serving") {
		t.Errorf("stderr: %s", stderr)
	}
	for _, args := range [][]string{
		{"--bundle", b},
		{"--bundle", b, "--policy", pol, "--data", t.TempDir()},
		{"--policy", pol, "--data", t.TempDir()},
	} {
		if code, _, stderr := runServeCLI(context.Background(), args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, stderr)
		}
	}
	if code, _, stderr := runServeCLI(context.Background(), []string{"--bundle", filepath.Join(t.TempDir(), "missing.airlock"), "--policy", pol}); code != exitError {
		t.Errorf("missing bundle: exit %d: %s", code, stderr)
	}
}

// TestServeBundleCosign: an image whose upstream cosign signature travels
// in the bundle verifies with stock `cosign verify --key` when pulled from
// `airlock serve --bundle`; an image nobody signed does not.
func TestServeBundleCosign(t *testing.T) {
	cs := newCosign(t)
	up := cosignRelease(t, cs, "release")
	worker, b, pol := up.worker, up.bundle, up.policy
	api := findArtifact(t, inspectBundle(t, b), bundle.KindImage, "/demo/api:1.0").Digest

	s := startServeBundle(t, b, pol)
	verifyWith := func(key, ref string) error {
		_, err := cs.Run("verify", "--key", key, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
		return err
	}
	if err := verifyWith("cosign.pub", s.host+"/demo/worker@"+worker); err != nil {
		t.Errorf("cosign verify of the carried signature, served from the bundle: %v", err)
	}
	if err := verifyWith("cosign.pub", s.host+"/demo/worker:1.0"); err != nil {
		t.Errorf("cosign verify by tag: %v", err)
	}
	if err := verifyWith("cosign.pub", s.host+"/demo/api@"+api); err == nil {
		t.Error("cosign verify passed for an image that was never signed")
	}
	if err := verifyWith("release.pub", s.host+"/demo/worker@"+worker); err == nil {
		t.Error("cosign verify passed with a key that signed the bundle, not the image")
	}
}

// TestServeBundleVolumeSet: `pack --volume-size` writes a volume set;
// `airlock serve --bundle` serves it given any volume or the directory,
// every file of the model pulled whole (and checked) across volume
// boundaries; a set with a volume missing is refused by number (exit 3).
func TestServeBundleVolumeSet(t *testing.T) {
	spec, key, pol := volumeRelease(t)
	env := map[string]string{"AIRLOCK_PASSWORD": "pw"}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "vt-1.0.0.airlock")
	code, stdout, stderr := runCLI(t, env, "pack", "-q", "-f", spec, "-o", out, "-k", key, "--volume-size", "6MiB")
	if code != 0 {
		t.Fatalf("pack: exit %d: %s", code, stderr)
	}
	vols := strings.Fields(stdout)
	if len(vols) < 3 {
		t.Fatalf("pack wrote %v", vols)
	}
	for _, arg := range []string{vols[1], outDir} {
		s := startServeBundle(t, arg, pol)
		if !strings.Contains(s.stderr.String(), fmt.Sprintf("(%d volumes)", len(vols))) {
			t.Errorf("%s: the serving line does not count the volumes: %q", arg, s.stderr.String())
		}
		ref, err := name.NewTag(s.host+"/models/m:1.0.0", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 3 {
			t.Fatalf("%s: %d layers, %v", arg, len(layers), err)
		}
		var total int64
		for _, l := range layers {
			rc, err := l.Compressed() // checked against the digest by ggcr
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: layer: %v", arg, err)
			}
			total += n
		}
		if total < 17<<20 {
			t.Errorf("%s: pulled %d bytes of the model", arg, total)
		}
		if code := s.stop(); code != exitOK {
			t.Errorf("%s: exit %d", arg, code)
		}
	}
	if err := os.Remove(vols[1]); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runServeCLI(context.Background(), []string{"--bundle", vols[0], "--policy", pol, "--addr", "127.0.0.1:0"})
	if code != exitRejected || !strings.Contains(stderr, "volume 2") {
		t.Errorf("volume 2 missing: exit %d: %s", code, stderr)
	}
}
