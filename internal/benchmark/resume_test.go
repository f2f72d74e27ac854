package benchmark

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// targetResendShare is the target: after a mirror stopped 90% into
// the 2 GiB model blob, the rerun sends at most 15% of that blob again.
const targetResendShare = 0.15

// BenchmarkMirrorResume mirrors the bundle of the 2 GiB model into a fresh
// registry through a proxy that counts the blob bytes PATCHed into the
// model's repository, stops airlock mirror with SIGTERM (what Ctrl-C or a
// service manager sends) once 90% of the model blob went through, and runs
// the same command again: the rerun resumes the chunked upload from the
// registry's offset, so it sends about the last 10%.
func BenchmarkMirrorResume(b *testing.B) {
	testkit.RequireTool(b, "docker-registry", "apt-get install docker-registry")
	requireFree(b, 10<<30)
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	large := need(b, "the 2 GiB model", fx.large)
	ctx := b.Context()
	bundlePath, ok := fx.bundle(large)
	if !ok {
		_, _, bundlePath = packModel(b, bin, large)
	}
	dir := filepath.Join(fx.root, "resume")
	b.Cleanup(func() { os.RemoveAll(dir) })
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", bundlePath, "--key", keyPath(keyDir, signingKeyNames[0])); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(large, "model", "model.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	blob := fi.Size()
	policy := filepath.Join(keyDir, policyFile)

	var first, second, resent int64
	var firstWall, secondWall time.Duration
	var res mirrorResult
	var resumed struct {
		Blobs struct {
			Resumed      int   `json:"resumed"`
			BytesResumed int64 `json:"bytesResumed"`
		} `json:"blobs"`
	}
	b.ResetTimer()
	for range b.N {
		reg := testkit.Start(b)
		var patched atomic.Int64
		var victim atomic.Pointer[os.Process]
		var stopped atomic.Bool
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: reg.Host})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/models/weights/") {
				r.Body = &countingBody{ReadCloser: r.Body, n: &patched}
				defer func() {
					if patched.Load() >= blob*9/10 && !stopped.Swap(true) {
						if p := victim.Load(); p != nil {
							_ = p.Signal(syscall.SIGTERM)
						}
					}
				}()
			}
			rp.ServeHTTP(w, r)
		}))
		host := strings.TrimPrefix(srv.URL, "http://")
		args := []string{"mirror", bundlePath, "--to", host + "/bench", "--policy", policy, "-q", "--json"}

		// The first run, stopped once 90% of the blob is through (the
		// check runs after each chunk; the chunk in flight is finished).
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TMPDIR="+spool)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		victim.Store(cmd.Process)
		err := cmd.Wait()
		firstWall = time.Since(start)
		if !stopped.Load() || err == nil {
			b.Fatalf("the first mirror was not stopped at 90%% of the blob (stopped %v, exit %v)", stopped.Load(), err)
		}
		first = patched.Swap(0)

		// The rerun.
		m, err := run(ctx, dir, []string{"TMPDIR=" + spool}, bin, args...)
		if err != nil {
			b.Fatal(err)
		}
		secondWall = m.wall
		second = patched.Load()
		if err := json.Unmarshal(m.stdout, &res); err != nil {
			b.Fatalf("mirror --json: %v", err)
		}
		if err := json.Unmarshal(m.stdout, &resumed); err != nil {
			b.Fatalf("mirror --json: %v", err)
		}
		resent = second
		srv.Close()
		os.RemoveAll(reg.Dir)
	}
	b.StopTimer()
	share := float64(resent) / float64(blob)
	b.ReportMetric(share*100, "resent_%_of_blob")
	b.Logf("mirror of the %.0f MiB model bundle stopped (SIGTERM) after %.0f MiB of the %.0f MiB blob were sent (%.1fs); the rerun sent %.0f MiB of it again = %.1f%% (target <= %.0f%%: %s), resumed %d upload(s) from %.0f MiB, %.1fs; %s",
		mib(fileSizeOr(bundlePath)), mib(first), mib(blob), firstWall.Seconds(), mib(resent), share*100, targetResendShare*100,
		verdict(share <= targetResendShare), resumed.Blobs.Resumed, mib(resumed.Blobs.BytesResumed), secondWall.Seconds(), res.counts())
}

// fileSizeOr is the size of p, 0 when it cannot be read.
func fileSizeOr(p string) int64 {
	n, _ := fileSize(p)
	return n
}
