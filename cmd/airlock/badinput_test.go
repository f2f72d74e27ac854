package main

// Bad-input tests for `airlock pack` and `airlock inspect`: every case must
// exit with its documented code, name the offending file, field, reference
// or digest on stderr, never panic, and leave nothing behind.

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// badWrite writes files (slash path -> content) below dir.
func badWrite(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// badLeftovers fails if anything under dir looks like pack's staging
// (.airlock-pack-*) or a temporary bundle (.NAME.tmp-*).
func badLeftovers(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if strings.HasPrefix(n, ".airlock-pack-") || (strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")) {
			t.Errorf("leftover %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// badPackFails runs `airlock pack` on dir/airlock.yaml into a fresh output
// directory and checks the failure: exit code, stderr naming every string
// in names, no panic, no bundle, no leftovers in the output or release
// directory.
func badPackFails(t *testing.T, dir string, code int, names ...string) string {
	t.Helper()
	outDir := t.TempDir()
	out := filepath.Join(outDir, "bad.airlock")
	got, stdout, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out)
	if got != code {
		t.Errorf("exit %d, want %d; stderr:\n%s", got, code, stderr)
	}
	if strings.Contains(stderr, "panic:") || strings.Contains(stdout, "panic:") {
		t.Errorf("panic:\n%s", stderr)
	}
	for _, n := range names {
		if !strings.Contains(stderr, n) {
			t.Errorf("stderr does not name %q:\n%s", n, stderr)
		}
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output %s exists after a failed pack (%v)", out, err)
	}
	if ents, err := os.ReadDir(outDir); err != nil || len(ents) != 0 {
		var left []string
		for _, e := range ents {
			left = append(left, e.Name())
		}
		t.Errorf("output directory holds %q after a failed pack (%v)", left, err)
	}
	badLeftovers(t, dir)
	return stderr
}

// badFileYAML is a valid release with one file, for cases that break one thing.
const badFileYAML = "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: etc/demo/a.txt\n"

func TestPackBadReleaseDescription(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		yaml  string // "" means no airlock.yaml at all
		names []string
	}{
		{name: "missing airlock.yaml", names: []string{"airlock.yaml"}},
		{
			name:  "unknown field",
			yaml:  "name: demo\nversion: 1.0.0\nimagez:\n  - ref: x\n",
			names: []string{"airlock.yaml:3", "imagez"},
		},
		{
			name:  "wrong type",
			yaml:  "name: demo\nversion: [1, 0, 0]\nfiles:\n  - source: a.txt\n    target: etc/a.txt\n",
			names: []string{"airlock.yaml:2"},
		},
		{
			name:  "wrong type nested",
			yaml:  "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target:\n      nested: true\n",
			names: []string{"airlock.yaml:6"},
		},
		{
			name:  "duplicate key",
			yaml:  "name: demo\nversion: 1.0.0\nname: other\nfiles:\n  - source: a.txt\n    target: etc/a.txt\n",
			names: []string{"airlock.yaml:3", "name"},
		},
		{
			name:  "two documents",
			yaml:  badFileYAML + "---\nname: other\n",
			names: []string{"airlock.yaml:6"},
		},
		{
			name:  "invalid name",
			yaml:  "name: Demo_App!\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: etc/a.txt\n",
			names: []string{"airlock.yaml:1", "name", "Demo_App!"},
		},
		{
			name:  "invalid version",
			yaml:  "name: demo\nversion: v1.0\nfiles:\n  - source: a.txt\n    target: etc/a.txt\n",
			names: []string{"airlock.yaml:2", "version", "v1.0"},
		},
		{
			name:  "absolute target",
			yaml:  "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: /etc/passwd\n",
			names: []string{"airlock.yaml:5", "files[0].target", "/etc/passwd"},
		},
		{
			name:  "target with ..",
			yaml:  "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: etc/../../root/.ssh/authorized_keys\n",
			names: []string{"airlock.yaml:5", "files[0].target", "etc/../../root/.ssh/authorized_keys"},
		},
		{
			name:  "model target with ..",
			yaml:  "name: demo\nversion: 1.0.0\nmodels:\n  - source: a.txt\n    name: m\n    target: ../m\n",
			names: []string{"airlock.yaml:6", "models[0].target", "../m"},
		},
		{
			name: "two files with the same target",
			yaml: "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: etc/demo/a.txt\n" +
				"  - source: b.txt\n    target: etc/demo/a.txt\n",
			names: []string{"airlock.yaml:7", "files[1].target", "etc/demo/a.txt"},
		},
		{
			name: "file target inside another",
			yaml: "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: etc/demo\n" +
				"  - source: b.txt\n    target: etc/demo/b.txt\n",
			names: []string{"files[1].target", "etc/demo/b.txt"},
		},
		{
			name:  "setuid mode",
			yaml:  "name: demo\nversion: 1.0.0\nfiles:\n  - source: a.txt\n    target: bin/a\n    mode: \"4755\"\n",
			names: []string{"airlock.yaml:6", "files[0].mode", "4755"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			files := map[string]string{"a.txt": "a\n", "b.txt": "b\n"}
			if c.yaml != "" {
				files["airlock.yaml"] = c.yaml
			}
			badWrite(t, dir, files)
			badPackFails(t, dir, exitError, c.names...)
		})
	}
}

func TestPackBadLocalSources(t *testing.T) {
	t.Parallel()
	modelYAML := "name: demo\nversion: 1.0.0\nmodels:\n  - source: model\n    name: m\n    target: models/m\n"
	cases := []struct {
		name  string
		yaml  string
		setup func(t *testing.T, dir string)
		names []string
	}{
		{
			name: "model directory with a symlink",
			yaml: modelYAML,
			setup: func(t *testing.T, dir string) {
				badWrite(t, dir, map[string]string{"secret.txt": "do not pack\n"})
				if err := os.Symlink("../secret.txt", filepath.Join(dir, "model", "weights.bin")); err != nil {
					t.Fatal(err)
				}
			},
			names: []string{"weights.bin", "model m"},
		},
		{
			name: "model directory with a named pipe",
			yaml: modelYAML,
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "model", "pipe.bin"), 0o644); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
			},
			names: []string{"pipe.bin", "model m"},
		},
		{
			name: "model source is a named pipe",
			yaml: "name: demo\nversion: 1.0.0\nmodels:\n  - source: pipe.bin\n    name: m\n    target: models/m\n",
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "pipe.bin"), 0o644); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
			},
			names: []string{"pipe.bin", "model m"},
		},
		{
			name: "empty model directory",
			yaml: "name: demo\nversion: 1.0.0\nmodels:\n  - source: empty\n    name: m\n    target: models/m\n",
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			names: []string{"empty", "model m"},
		},
		{
			name:  "missing file source",
			yaml:  "name: demo\nversion: 1.0.0\nfiles:\n  - source: config/missing.yaml\n    target: etc/missing.yaml\n",
			names: []string{"config/missing.yaml"},
		},
		{
			name:  "missing model source",
			yaml:  "name: demo\nversion: 1.0.0\nmodels:\n  - source: models/gone\n    name: gone\n    target: models/gone\n",
			names: []string{"models/gone", "model gone"},
		},
		{
			name: "file source is a symlink",
			yaml: badFileYAML,
			setup: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/etc/hostname", filepath.Join(dir, "a.txt")); err != nil {
					t.Fatal(err)
				}
			},
			names: []string{"a.txt"},
		},
		{
			// A directory is a valid file source (a dir artifact), but
			// not one holding a link that is not followed.
			name: "directory source holds a symlink",
			yaml: "name: demo\nversion: 1.0.0\nfiles:\n  - source: model\n    target: etc/model\n",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/hostname", filepath.Join(dir, "model", "link.json")); err != nil {
					t.Fatal(err)
				}
			},
			names: []string{"directory model", "link.json", "followSymlinks"},
		},
		{
			name: "directory source holds a named pipe",
			yaml: "name: demo\nversion: 1.0.0\nfiles:\n  - source: model\n    target: etc/model\n",
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "model", "pipe.bin"), 0o644); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
			},
			names: []string{"directory model", "pipe.bin", "named pipe"},
		},
		{
			name:  "sbom is not an SBOM",
			yaml:  "name: demo\nversion: 1.0.0\nsboms:\n  - source: a.txt\n",
			names: []string{"a.txt"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			badWrite(t, dir, map[string]string{"airlock.yaml": c.yaml, "a.txt": "a\n", "model/config.json": "{}\n"})
			if c.setup != nil {
				c.setup(t, dir)
			}
			badPackFails(t, dir, exitError, c.names...)
		})
	}
}

// badLyingProxy serves the registry at upstream on a new 127.0.0.1 port,
// passing every GET response body whose request path is path through
// alter.
func badLyingProxy(t *testing.T, upstream, path string, alter func([]byte) []byte) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.Request.URL.Path != path || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = alter(b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// flipByte changes one byte in the middle of b.
func flipByte(b []byte) []byte {
	c := bytes.Clone(b)
	if len(c) > 0 {
		c[len(c)/2] ^= 0x01
	}
	return c
}

func TestPackBadRegistry(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	api, worker := imgs[0], imgs[1]
	workerManifest, err := worker.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	workerDigest, err := worker.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	appLayer := workerManifest.Layers[1].Digest.String() // unique to demo/worker
	workerConfig := workerManifest.Config.Digest.String()
	apiIndex, err := api.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	apiChild := apiIndex.Manifests[1].Digest.String()

	// A port nobody listens on: bind one, note it, close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadHost := l.Addr().String()
	l.Close()

	cases := []struct {
		name  string
		ref   func(t *testing.T) string
		names []string // besides the ref
	}{
		{
			name: "unreachable registry",
			ref:  func(*testing.T) string { return deadHost + "/demo/api:1.0" },
		},
		{
			name: "unknown tag",
			ref:  func(*testing.T) string { return reg.Host + "/demo/api:9.9.9" },
		},
		{
			name: "unknown repository",
			ref:  func(*testing.T) string { return reg.Host + "/demo/nothing:1.0" },
		},
		{
			name: "unknown digest",
			ref: func(*testing.T) string {
				return reg.Host + "/demo/worker@sha256:" + strings.Repeat("ab", 32)
			},
		},
		{
			name: "layer blob with one byte flipped",
			ref: func(t *testing.T) string {
				host := badLyingProxy(t, reg.Host, "/v2/demo/worker/blobs/"+appLayer, flipByte)
				return host + "/demo/worker:1.0"
			},
			names: []string{appLayer},
		},
		{
			name: "config blob with one byte flipped",
			ref: func(t *testing.T) string {
				host := badLyingProxy(t, reg.Host, "/v2/demo/worker/blobs/"+workerConfig, flipByte)
				return host + "/demo/worker:1.0"
			},
			names: []string{workerConfig},
		},
		{
			name: "layer blob cut short",
			ref: func(t *testing.T) string {
				host := badLyingProxy(t, reg.Host, "/v2/demo/worker/blobs/"+appLayer, func(b []byte) []byte { return b[:len(b)/2] })
				return host + "/demo/worker:1.0"
			},
			names: []string{appLayer},
		},
		{
			name: "child manifest not matching its digest",
			ref: func(t *testing.T) string {
				host := badLyingProxy(t, reg.Host, "/v2/demo/api/manifests/"+apiChild, func(b []byte) []byte { return append(bytes.Clone(b), ' ') })
				return host + "/demo/api:1.0"
			},
			names: []string{apiChild},
		},
		{
			name: "pinned manifest not matching its digest",
			ref: func(t *testing.T) string {
				host := badLyingProxy(t, reg.Host, "/v2/demo/worker/manifests/"+workerDigest.String(), func(b []byte) []byte {
					return bytes.Replace(b, []byte(`"size"`), []byte(` "size"`), 1)
				})
				return host + "/demo/worker@" + workerDigest.String()
			},
			names: []string{workerDigest.String()},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ref := c.ref(t)
			dir := t.TempDir()
			badWrite(t, dir, map[string]string{"airlock.yaml": "name: demo\nversion: 1.0.0\nimages:\n  - ref: " + ref + "\n"})
			badPackFails(t, dir, exitError, append([]string{ref}, c.names...)...)
		})
	}

	// A registry that appends a byte to a layer. internal/checked documents
	// ErrSizeMismatch for a stream "shorter or longer" than expected, but
	// its Reader stops after Size bytes and never looks further, so today
	// pack succeeds. The invariant that must hold either way: the extra
	// byte never reaches a bundle. A failure must name the ref and layer.
	t.Run("layer blob with a trailing byte", func(t *testing.T) {
		t.Parallel()
		host := badLyingProxy(t, reg.Host, "/v2/demo/worker/blobs/"+appLayer, func(b []byte) []byte { return append(bytes.Clone(b), 0) })
		ref := host + "/demo/worker:1.0"
		dir := t.TempDir()
		badWrite(t, dir, map[string]string{"airlock.yaml": "name: demo\nversion: 1.0.0\nimages:\n  - ref: " + ref + "\n"})
		out := filepath.Join(t.TempDir(), "trailing.airlock")
		code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out)
		switch code {
		case exitOK:
			t.Logf("a layer served with a trailing byte was accepted; checking the bundle carries the true bytes")
			badVerifyBundle(t, out)
		case exitError:
			for _, n := range []string{ref, appLayer} {
				if !strings.Contains(stderr, n) {
					t.Errorf("stderr does not name %q:\n%s", n, stderr)
				}
			}
			if _, err := os.Lstat(out); !os.IsNotExist(err) {
				t.Errorf("output %s exists after a failed pack", out)
			}
		default:
			t.Errorf("exit %d; stderr:\n%s", code, stderr)
		}
		badLeftovers(t, filepath.Dir(out))
	})

	t.Run("ambiguous oci layout tag", func(t *testing.T) {
		t.Parallel()
		// WriteOCILayout names its entries demo/api:1.0, demo/worker:1.0
		// and demo/legacy:1.0: the tag 1.0 matches all three.
		dir := t.TempDir()
		if err := sample.WriteOCILayout(filepath.Join(dir, "layout"), imgs); err != nil {
			t.Fatal(err)
		}
		badWrite(t, dir, map[string]string{"airlock.yaml": "name: demo\nversion: 1.0.0\nimages:\n  - ref: oci:./layout:1.0\n"})
		badPackFails(t, dir, exitError, "oci:./layout:1.0")
	})

	t.Run("oci layout missing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		badWrite(t, dir, map[string]string{"airlock.yaml": "name: demo\nversion: 1.0.0\nimages:\n  - ref: oci:./nowhere:1.0\n"})
		badPackFails(t, dir, exitError, "oci:./nowhere:1.0")
	})

	t.Run("docker archive that is not one", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		badWrite(t, dir, map[string]string{
			"airlock.yaml": "name: demo\nversion: 1.0.0\nimages:\n  - ref: docker-archive:./legacy.tar\n",
			"legacy.tar":   "not a tar file\n",
		})
		badPackFails(t, dir, exitError, "docker-archive:./legacy.tar")
	})
}

// badValidBundle packs a small local-only release and returns its bytes and
// the compressed size of its head frame.
func badValidBundle(t *testing.T) ([]byte, int64) {
	t.Helper()
	dir := t.TempDir()
	badWrite(t, dir, map[string]string{"airlock.yaml": badFileYAML, "a.txt": strings.Repeat("airlock\n", 4096)})
	out := filepath.Join(t.TempDir(), "ok.airlock")
	if code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out); code != exitOK {
		t.Fatalf("pack: exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	head, err := bundle.ReadHeadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, head.HeadSize
}

// badVerifyBundle reads a whole bundle with the streaming reader and fails
// unless every body blob arrives intact and nothing follows.
func badVerifyBundle(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := e.Verify(); err != nil {
			t.Fatalf("%s: %s: %v", path, e.Digest, err)
		}
	}
}

// badZstdTar is a zstd-compressed tar of one entry, name, that is not an airlock bundle.
func badZstdTar(t *testing.T, name string) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 3, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(tb.Bytes(), nil)
}

func TestInspectBadBundle(t *testing.T) {
	t.Parallel()
	valid, headSize := badValidBundle(t)
	if headSize < 16 || headSize >= int64(len(valid)) {
		t.Fatalf("head frame of %d bytes in a %d-byte bundle", headSize, len(valid))
	}
	cases := []struct {
		name    string
		content []byte // nil: the file does not exist
		dir     bool   // a directory instead of a file
		code    int
	}{
		{name: "text.airlock", content: []byte("hello, this is not a bundle\n"), code: exitRejected},
		{name: "empty.airlock", content: []byte{}, code: exitRejected},
		{name: "zstd-tar.airlock", content: badZstdTar(t, "hello.txt"), code: exitRejected},
		{name: "truncated-head.airlock", content: valid[:headSize/2], code: exitRejected},
		{name: "head-without-last-byte.airlock", content: valid[:headSize-1], code: exitRejected},
		{name: "zstd-magic-only.airlock", content: valid[:4], code: exitRejected},
		{name: "missing.airlock", content: nil, code: exitError},
		{name: "directory.airlock", dir: true, code: exitError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, c.name)
			if c.dir {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if c.content != nil {
				if err := os.WriteFile(p, c.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, args := range [][]string{{"inspect", p}, {"inspect", "--json", p}} {
				code, stdout, stderr := runCLI(t, nil, args...)
				if code != c.code {
					t.Errorf("airlock %s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), code, c.code, stderr)
				}
				if !strings.Contains(stderr, c.name) {
					t.Errorf("stderr does not name %s:\n%s", c.name, stderr)
				}
				if strings.Contains(stderr, "panic:") {
					t.Errorf("panic:\n%s", stderr)
				}
				if stdout != "" {
					t.Errorf("stdout is not empty on failure: %q", stdout)
				}
			}
		})
	}
}

// A failed pack must leave an existing bundle at the output path untouched.
func TestPackFailureKeepsPreviousBundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badWrite(t, dir, map[string]string{"airlock.yaml": badFileYAML, "a.txt": "a\n"})
	outDir := t.TempDir()
	out := filepath.Join(outDir, "demo.airlock")
	if code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out); code != exitOK {
		t.Fatalf("pack: exit %d\n%s", code, stderr)
	}
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out)
	if code != exitError || !strings.Contains(stderr, "a.txt") {
		t.Errorf("pack with a missing source: exit %d, want %d; stderr:\n%s", code, exitError, stderr)
	}
	after, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the previous bundle changed after a failed pack (%v)", err)
	}
	ents, err := os.ReadDir(outDir)
	if err != nil || len(ents) != 1 {
		t.Errorf("output directory holds %d entries after a failed pack (%v)", len(ents), err)
	}
	badLeftovers(t, outDir)
	badLeftovers(t, dir)
}

// TestTrustFilePermissionsCLI (issue 10): a policy or key file that group
// or others may write is refused with exit 1, naming the file and the
// chmod to run; --insecure-permissions uses it anyway.
func TestTrustFilePermissionsCLI(t *testing.T) {
	t.Parallel()
	f := newInstallFixture(t)
	b := f.pack(t, "1.0.0", 100)
	for _, file := range []string{f.policy, filepath.Join(f.dir, "security.pub")} {
		if err := os.Chmod(file, 0o666); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(t, nil, "verify", b, "--policy", f.policy, "-q")
		if code != exitError || !strings.Contains(stderr, file) || !strings.Contains(stderr, "chmod go-w "+file) {
			t.Fatalf("%s mode 0666: exit %d\n%s", file, code, stderr)
		}
		t.Log(stderr)
		code, _, stderr = runCLI(t, nil, "verify", b, "--policy", f.policy, "-q", "--insecure-permissions")
		if code != exitOK {
			t.Fatalf("--insecure-permissions: exit %d\n%s", code, stderr)
		}
		code, _, stderr = runCmd(t, installCommand(), b, "--root", filepath.Join(t.TempDir(), "r"), "--policy", f.policy, "-q")
		if code != exitError || !strings.Contains(stderr, "chmod go-w") {
			t.Fatalf("install with %s mode 0666: exit %d\n%s", file, code, stderr)
		}
		os.Chmod(file, 0o644)
	}
}

// TestStateLossCLI (issue 10): with state.json deleted, install refuses
// with exit 1 and the hint to repair; status --repair rebuilds the state and
// the older bundle is then refused as a replay (exit 3).
func TestStateLossCLI(t *testing.T) {
	t.Parallel()
	f := newInstallFixture(t)
	v1, v2 := f.pack(t, "1.0.0", 100), f.pack(t, "1.1.0", 200)
	root := filepath.Join(t.TempDir(), "root")
	for _, b := range []string{v1, v2} {
		if code, out, stderr := runCmd(t, installCommand(), b, "--root", root, "--policy", f.policy, "-q"); code != exitOK {
			t.Fatalf("install: exit %d\n%s%s", code, out, stderr)
		}
	}
	if err := os.Remove(filepath.Join(root, ".airlock", "state.json")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy, "-q")
	if code != exitError || !strings.Contains(stderr, "airlock status --root "+root+" --repair") {
		t.Fatalf("install after losing the state: exit %d\n%s", code, stderr)
	}
	code, out, stderr := runCmd(t, statusCommand(), "--root", root, "--repair")
	if code != exitOK || !strings.Contains(out, "repaired: ") || !strings.Contains(out, "demo: current 1.1.0 (highest sequence accepted: 200)") {
		t.Fatalf("status --repair: exit %d\n%s%s", code, out, stderr)
	}
	t.Log(out)
	code, _, stderr = runCmd(t, installCommand(), v1, "--root", root, "--policy", f.policy, "-q")
	if code != exitRejected || !strings.Contains(stderr, "lower sequence") {
		t.Fatalf("replay after the repair: exit %d\n%s", code, stderr)
	}
}
