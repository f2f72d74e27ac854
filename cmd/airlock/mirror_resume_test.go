package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/mirror"
)

// Sizes of TestMirrorKilledMidChunk: a model blob of three 32 MiB chunks
// (mirror's default chunk size), and the point at which the first run is
// killed, a quarter into the second chunk (what the client's and the
// proxy's socket buffers still hold, a few MiB, arrives after the kill).
const (
	resumeModelBytes = 96 << 20
	resumeChunkBytes = 32 << 20
	resumeKillAt     = 40 << 20
)

// TestMirrorKilledMidChunk runs `airlock mirror` as its own process and
// kills it with SIGKILL in the middle of a chunk of a 96 MiB model blob (the
// registry has received part of that chunk), then runs the same command
// again with the same --tmp-dir. Both registries end with every tag
// complete and the model blob intact, and the rerun exits 0:
//   - airlock serve reports the upload's true size (partial chunk included)
//     with a fresh upload URL, so the rerun resumes: it sends exactly the
//     bytes the registry did not have, at most one chunk more than the
//     killed run had not sent yet; also when airlock serve was restarted
//     in between (a new key signs its upload URLs, the old one is refused);
//   - docker-registry 2.8 refuses the saved upload URL (its state names
//     the offset of the last whole chunk, the upload is longer) and cancels
//     the upload, so the rerun says once that it restarts that blob and
//     sends all of it.
func TestMirrorKilledMidChunk(t *testing.T) {
	t.Parallel()
	b, pol := bigModelBundle(t, resumeModelBytes)
	serve := func(t *testing.T) (string, func()) {
		s := startServeCLI(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "data"))
		return s.host, nil
	}
	// airlock serve stopped while the client is dead and started again on
	// the same port and data: the key that signs upload URLs is new.
	serveRestarted := func(t *testing.T) (string, func()) {
		s := startServeCLI(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "data"))
		return s.host, func() {
			s.stop()
			startServeCLI(t, s.host, s.data)
		}
	}
	for _, tc := range []struct {
		name    string
		start   func(t *testing.T) (host string, afterKill func())
		resumes bool
	}{
		{"airlock serve", serve, true},
		{"airlock serve restarted", serveRestarted, true},
		{"docker-registry 2.8", func(t *testing.T) (string, func()) { return testkit.Start(t).Host, nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backend, afterKill := tc.start(t)
			tmp := t.TempDir()
			var child atomic.Pointer[os.Process]
			var killed atomic.Bool
			dead := make(chan struct{})
			proxy := testkit.StartUploadCounter(t, backend, "/models/big/", func(total int64) {
				if total >= resumeKillAt && !killed.Swap(true) {
					if p := child.Load(); p != nil {
						_ = p.Signal(syscall.SIGKILL)
						<-dead // read nothing more until the client is gone
					}
				}
			})
			to := proxy.Host + "/site"
			args := []string{"mirror", b, "--to", to, "--insecure-registry", proxy.Host, "--policy", pol, "--tmp-dir", tmp, "--json"}
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "AIRLOCK_TEST_RUN_CLI=1")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			child.Store(cmd.Process)
			err := cmd.Wait()
			close(dead)
			var ee *exec.ExitError
			if !killed.Load() || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the first mirror was not killed mid-chunk: %v (killed %v)\n%s", err, killed.Load(), stderr.String())
			}
			// What the killed client's socket still held reaches the
			// registry after the kill: count it as the first run's.
			if !proxy.WaitIdle(serveWait) {
				t.Fatal("the killed run's upload request did not end")
			}
			first := proxy.Reset()
			if afterKill != nil {
				afterKill()
			}
			if first < resumeKillAt || first >= 2*resumeChunkBytes {
				t.Fatalf("the killed run sent %d bytes of the model, want it killed inside the second chunk", first)
			}

			code, res, errText := mirrorCLI(t, nil, b, to, pol, "--tmp-dir", tmp)
			if code != exitOK {
				t.Fatalf("rerun after SIGKILL: exit %d\n%s", code, errText)
			}
			again := proxy.Bytes()
			notSent := int64(resumeModelBytes) - first
			t.Logf("killed after %d MiB of the %d MiB model (%.1f MiB of it not sent yet); the rerun sent %.1f MiB of it: %d resumed (from %.1f MiB), %d restarted (%.1f MiB lost); stderr:\n%s",
				first>>20, resumeModelBytes>>20, float64(notSent)/(1<<20), float64(again)/(1<<20),
				res.Blobs.Resumed, float64(res.Blobs.BytesResumed)/(1<<20), res.Blobs.Restarted, float64(res.Blobs.BytesRestarted)/(1<<20), errText)
			restartLines := strings.Count(errText, "would not continue the upload")
			if tc.resumes {
				if res.Blobs.Resumed != 1 || res.Blobs.Restarted != 0 || restartLines != 0 {
					t.Errorf("resumed %d, restarted %d (%d lines on stderr); want the upload resumed", res.Blobs.Resumed, res.Blobs.Restarted, restartLines)
				}
				// The registry kept the part of the chunk it received: the
				// rerun continues after the last whole chunk.
				if res.Blobs.BytesResumed <= resumeChunkBytes {
					t.Errorf("resumed from %d, want beyond the last whole chunk (%d): the partial chunk was not kept", res.Blobs.BytesResumed, resumeChunkBytes)
				}
				if again != resumeModelBytes-res.Blobs.BytesResumed {
					t.Errorf("the rerun sent %d bytes, want exactly the %d the registry did not have", again, resumeModelBytes-res.Blobs.BytesResumed)
				}
				if again > notSent+resumeChunkBytes {
					t.Errorf("the rerun sent %d bytes, more than one chunk beyond the %d the killed run had not sent", again, notSent)
				}
			} else {
				if res.Blobs.Restarted != 1 || res.Blobs.Resumed != 0 {
					t.Errorf("resumed %d, restarted %d; want the upload restarted", res.Blobs.Resumed, res.Blobs.Restarted)
				}
				if res.Blobs.BytesRestarted != resumeChunkBytes {
					t.Errorf("bytesRestarted %d, want the one whole chunk the killed run had confirmed (%d)", res.Blobs.BytesRestarted, resumeChunkBytes)
				}
				if restartLines != 1 {
					t.Errorf("the restart is reported %d times on stderr, want once:\n%s", restartLines, errText)
				}
				if again != resumeModelBytes {
					t.Errorf("the rerun sent %d bytes of the model, want all %d (the registry cancelled the upload)", again, resumeModelBytes)
				}
			}
			checkModelServed(t, backend, res)
			if left, _ := filepath.Glob(filepath.Join(tmp, "airlock-mirror-*")); len(left) != 0 {
				t.Errorf("run directories left after the rerun: %v", left)
			}
		})
	}
}

// bigModelBundle packs the sample release with one more model, "big", of
// size bytes of pseudo-random data, signed with the release and security
// keys, and returns the bundle and the policy (threshold 2) that accepts it.
func bigModelBundle(t *testing.T, size int64) (bundlePath, policyPath string) {
	t.Helper()
	dir, _, pol, env := signedRelease(t)
	rel := sampleRelease(t)
	if err := sample.AddModel(rel, "big", size, 9); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(rel, "airlock.yaml")
	bundlePath = filepath.Join(dir, "big.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", spec, "-o", bundlePath,
		"--key", filepath.Join(dir, "release.key"), "--key", filepath.Join(dir, "security.key")); code != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	return bundlePath, pol
}

// checkModelServed reads the mirrored model "big" back from the registry
// at host (not through the proxy) and checks that its largest blob is
// served whole, with its digest.
func checkModelServed(t *testing.T, host string, res *mirror.Result) {
	t.Helper()
	var target string
	for _, m := range res.Mappings {
		if m.Kind == "model" && strings.Contains(m.Target, "/models/big") {
			target = m.Target
		}
	}
	if target == "" {
		t.Fatalf("no mapping for the model big: %+v", res.Mappings)
	}
	// target is PROXY/REPO[:TAG]@DIGEST: read REPO@DIGEST from host.
	_, rest, _ := strings.Cut(target, "/")
	repo, mdgst, _ := strings.Cut(rest, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	ref, err := name.NewDigest(host+"/"+repo+"@"+mdgst, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("model manifest %s: %v", ref, err)
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	var dgst string
	for _, l := range m.Layers {
		if l.Size == resumeModelBytes {
			dgst = l.Digest
		}
	}
	if dgst == "" {
		t.Fatalf("the model manifest has no %d-byte layer: %s", resumeModelBytes, desc.Manifest)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, ref.Context().RepositoryStr(), dgst))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the model blob: %d, %v", resp.StatusCode, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dgst || n != resumeModelBytes {
		t.Fatalf("the registry serves %d bytes hashing to %s for blob %s", n, got, dgst)
	}
}

// servedCLI is `airlock serve` running in this process for a test.
type servedCLI struct {
	host, data string
	stop       func()
}

// startServeCLI runs `airlock serve` in this process on addr
// ("127.0.0.1:0": a free port) with its data in data until the test ends
// or stop is called.
func startServeCLI(t *testing.T, addr, data string) *servedCLI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	exited := make(chan int, 1)
	go func() {
		exited <- runCommand(ctx, serveCommand(), []string{"--data", data, "--addr", addr}, e)
	}()
	var once sync.Once
	s := &servedCLI{data: data, stop: func() {
		once.Do(func() {
			cancel()
			select {
			case <-exited:
			case <-time.After(serveWait):
				t.Errorf("airlock serve still running %v after cancel", serveWait)
			}
		})
	}}
	t.Cleanup(s.stop)
	for deadline := time.Now().Add(serveWait); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-exited:
			t.Fatalf("airlock serve exited %d: %s", code, errb.String())
		default:
		}
		if m := servingLine.FindStringSubmatch(errb.String()); m != nil {
			s.host = m[1]
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("airlock serve did not start within %v: %s", serveWait, errb.String())
		}
	}
}
