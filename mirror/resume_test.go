package mirror

import (
	"context"
	"errors"
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

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/registryhttp"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/policy"
)

// bigModelMiB is the size of the model file the resume tests upload: above
// ChunkThreshold, so it goes in chunks.
const bigModelMiB = 96

// testChunk is the chunk size of the resume tests.
const testChunk = 8 << 20

// withBigModel adds a model "big" with one file of mib MiB of
// pseudo-random bytes to the release in dir.
func withBigModel(t *testing.T, mib int) func(dir string) {
	return func(dir string) {
		if err := sample.AddModel(dir, "big", int64(mib)<<20, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// patchCounter is a proxy in front of backend that counts the blob bytes
// PATCHed into repositories whose path contains repoPart; onBytes, when
// set, sees the running total after every read.
type patchCounter struct {
	host  string
	bytes atomic.Int64
}

func newPatchCounter(t *testing.T, backend, repoPart string, onBytes func(total int64)) *patchCounter {
	pc := &patchCounter{}
	pc.host = startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && strings.Contains(r.URL.Path, repoPart) {
			r.Body = &countingBody{ReadCloser: r.Body, onRead: func(n int) {
				total := pc.bytes.Add(int64(n))
				if onBytes != nil {
					onBytes(total)
				}
			}}
		}
		return false
	}, nil)
	return pc
}

type countingBody struct {
	io.ReadCloser
	onRead func(int)
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.onRead(n)
	return n, err
}

// runDirs lists the airlock-mirror-* directories in dir.
func runDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, runDirPattern+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mirrorCtx(ctx context.Context, t *testing.T, path, host, prefix, tmp string, pol *policy.Policy) (*Result, error) {
	t.Helper()
	return mirrorWith(ctx, t, path, host, prefix, pol, 10*time.Second, func(o *MirrorOptions) {
		o.TempDir, o.ChunkSize, o.RetryWindow = tmp, testChunk, 20*time.Second
	})
}

// TestMirrorInterruptedLargeBlob: a run stopped 90% into a large blob
// leaves its upload session; the rerun asks the registry where the upload
// stands and sends only the rest. A run killed outright (SIGKILL) leaves a
// run directory that the next run removes.
func TestMirrorInterruptedLargeBlob(t *testing.T) {
	t.Parallel()
	s := newSiteFixture(t)
	backend := testkit.Start(t).Host
	path := s.pack(t, "demo", "1.0.0", 100, withBigModel(t, bigModelMiB))
	h, err := bundle.ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var big int64
	for _, d := range h.Body {
		big = max(big, d.Size)
	}
	if big != bigModelMiB<<20 {
		t.Fatalf("largest blob %d bytes", big)
	}

	t.Run("stopped at 90% and resumed", func(t *testing.T) {
		tmp := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		first := newPatchCounter(t, backend, "/models/big/", func(total int64) {
			if total >= big*9/10 {
				once.Do(cancel)
			}
		})
		if _, err := mirrorCtx(ctx, t, path, first.host, "resume", tmp, s.policy); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
		}
		if dirs := runDirs(t, tmp); len(dirs) != 1 {
			t.Fatalf("after the interrupted run: run directories %v, want the one holding the upload session", dirs)
		}
		sentFirst := first.bytes.Swap(0)
		res, err := mirrorCtx(context.Background(), t, path, first.host, "resume", tmp, s.policy)
		if err != nil {
			t.Fatalf("rerun: %v", err)
		}
		resent := first.bytes.Load()
		t.Logf("first run sent %d MiB of the %d MiB blob before it stopped; the rerun sent %.1f MiB (%.1f%%), resumed %d upload(s) at %d MiB",
			sentFirst>>20, big>>20, float64(resent)/(1<<20), 100*float64(resent)/float64(big), res.Blobs.Resumed, res.Blobs.BytesResumed>>20)
		if res.Blobs.Resumed != 1 {
			t.Errorf("resumed %d uploads, want 1", res.Blobs.Resumed)
		}
		if resent > big*15/100 {
			t.Errorf("the rerun re-sent %d bytes, more than 15%% of the %d-byte blob", resent, big)
		}
		checkTagsComplete(t, backend, "resume")
		if dirs := runDirs(t, tmp); len(dirs) != 0 {
			t.Errorf("run directories left after a successful rerun: %v", dirs)
		}
	})

	// The registry cannot be asked where the saved upload stands (the
	// connection drops on the status request, three times): the session
	// is kept and a retry resumes it, instead of starting the blob again.
	t.Run("status request cut", func(t *testing.T) {
		tmp := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var rerun atomic.Bool
		var sent, cuts atomic.Int64
		host := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/cut/models/big/blobs/uploads/") {
				return false
			}
			switch {
			case r.Method == http.MethodGet && rerun.Load() && cuts.Add(1) <= 3:
				// Three times: Go's transport retries a GET once by itself
				// when a reused connection drops.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return true
			case r.Method == http.MethodPatch:
				r.Body = &countingBody{ReadCloser: r.Body, onRead: func(n int) {
					if sent.Add(int64(n)) >= big*9/10 && !rerun.Load() {
						cancel()
					}
				}}
			}
			return false
		}, nil)
		if _, err := mirrorCtx(ctx, t, path, host, "cut", tmp, s.policy); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
		}
		rerun.Store(true)
		sent.Store(0)
		res, err := mirrorCtx(context.Background(), t, path, host, "cut", tmp, s.policy)
		if err != nil {
			t.Fatalf("rerun: %v", err)
		}
		if cuts.Load() < 3 {
			t.Fatalf("the rerun asked for the upload's status %d times, want it cut three times", cuts.Load())
		}
		t.Logf("the rerun sent %.1f MiB of the %d MiB blob: resumed %d (at %.1f MiB), restarted %d",
			float64(sent.Load())/(1<<20), big>>20, res.Blobs.Resumed, float64(res.Blobs.BytesResumed)/(1<<20), res.Blobs.Restarted)
		if res.Blobs.Resumed != 1 || res.Blobs.Restarted != 0 {
			t.Errorf("resumed %d, restarted %d; want the upload resumed after the cut status request", res.Blobs.Resumed, res.Blobs.Restarted)
		}
		if got := sent.Load(); got > big*15/100 {
			t.Errorf("the rerun re-sent %d bytes, more than 15%% of the %d-byte blob", got, big)
		}
		checkTagsComplete(t, backend, "cut")
	})

	// The registry answers the status of the saved upload but then refuses
	// the upload itself (a plain 404, as when it was purged meanwhile): a
	// new upload starts at once in the same attempt, reported once, and
	// the run succeeds.
	t.Run("upload refused after its status", func(t *testing.T) {
		tmp := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var rerun, refused atomic.Bool
		var sent atomic.Int64
		host := startProxy(t, backend, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPatch || !strings.Contains(r.URL.Path, "/gone/models/big/blobs/uploads/") {
				return false
			}
			if rerun.Load() && !refused.Swap(true) {
				_, _ = io.Copy(io.Discard, r.Body)
				http.Error(w, "not found", http.StatusNotFound)
				return true
			}
			r.Body = &countingBody{ReadCloser: r.Body, onRead: func(n int) {
				if sent.Add(int64(n)) >= big*9/10 && !rerun.Load() {
					cancel()
				}
			}}
			return false
		}, nil)
		if _, err := mirrorCtx(ctx, t, path, host, "gone", tmp, s.policy); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
		}
		rerun.Store(true)
		sent.Store(0)
		var events []RestartEvent
		res, err := mirrorWith(context.Background(), t, path, host, "gone", s.policy, 10*time.Second, func(o *MirrorOptions) {
			o.TempDir, o.ChunkSize, o.RetryWindow = tmp, testChunk, 20*time.Second
			o.OnRestart = func(ev RestartEvent) { events = append(events, ev) }
		})
		if err != nil {
			t.Fatalf("rerun: %v", err)
		}
		if !refused.Load() {
			t.Fatal("the rerun sent no chunk to the saved upload")
		}
		t.Logf("the rerun sent %.1f MiB of the %d MiB blob: resumed %d, restarted %d (%.1f MiB lost); events %+v",
			float64(sent.Load())/(1<<20), big>>20, res.Blobs.Resumed, res.Blobs.Restarted, float64(res.Blobs.BytesRestarted)/(1<<20), events)
		if res.Blobs.Resumed != 0 || res.Blobs.BytesResumed != 0 || res.Blobs.Restarted != 1 || res.Blobs.BytesRestarted < big*8/10 {
			t.Errorf("blobs %+v; want one restart that lost the resumed bytes and no resume counted", res.Blobs)
		}
		if len(events) != 1 || events[0].Size != big || events[0].Lost != res.Blobs.BytesRestarted {
			t.Errorf("restart events %+v, want one for the %d-byte blob", events, big)
		}
		if got := sent.Load(); got != big {
			t.Errorf("the rerun sent %d bytes, want the whole %d-byte blob once", got, big)
		}
		checkTagsComplete(t, backend, "gone")
	})

	t.Run("killed and rerun", func(t *testing.T) {
		tmp := t.TempDir()
		var child atomic.Pointer[os.Process]
		var killed atomic.Bool
		proxy := newPatchCounter(t, backend, "/models/big/", func(total int64) {
			if total >= big/2 && !killed.Swap(true) {
				if p := child.Load(); p != nil {
					_ = p.Signal(syscall.SIGKILL)
				}
			}
		})
		cmd := exec.Command(os.Args[0], "-test.run=^TestMirrorHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			"AIRLOCK_MIRROR_HELPER=1", "AIRLOCK_HELPER_BUNDLE="+path, "AIRLOCK_HELPER_POLICY="+filepath.Join(s.dir, "policy.yaml"),
			"AIRLOCK_HELPER_TO="+proxy.host+"/killed", "AIRLOCK_HELPER_TMP="+tmp,
			// The killed child cannot clean up its own test directories:
			// they go below one this test removes.
			"TMPDIR="+t.TempDir())
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		child.Store(cmd.Process)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !killed.Load() || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the child was not killed mid-upload: %v (killed %v)", err, killed.Load())
		}
		dirs := runDirs(t, tmp)
		if len(dirs) != 1 {
			t.Fatalf("run directories after SIGKILL: %v, want the killed run's", dirs)
		}
		spooled, _ := filepath.Glob(filepath.Join(dirs[0], "*"))
		t.Logf("the killed run left %s with %d entries", dirs[0], len(spooled))
		if _, err := mirrorCtx(context.Background(), t, path, proxy.host, "killed", tmp, s.policy); err != nil {
			t.Fatalf("rerun after SIGKILL: %v", err)
		}
		checkTagsComplete(t, backend, "killed")
		if dirs := runDirs(t, tmp); len(dirs) != 0 {
			t.Errorf("run directories left after the rerun: %v", dirs)
		}
	})
}

// TestMirrorHelperProcess is the mirror run that TestMirrorInterruptedLargeBlob
// kills; it does nothing unless started by that test.
func TestMirrorHelperProcess(t *testing.T) {
	if os.Getenv("AIRLOCK_MIRROR_HELPER") != "1" {
		return
	}
	pol, err := policy.Load(os.Getenv("AIRLOCK_HELPER_POLICY"))
	if err != nil {
		t.Fatal(err)
	}
	to := os.Getenv("AIRLOCK_HELPER_TO")
	host, prefix, _ := strings.Cut(to, "/")
	_, err = mirrorCtx(context.Background(), t, os.Getenv("AIRLOCK_HELPER_BUNDLE"), host, prefix, os.Getenv("AIRLOCK_HELPER_TMP"), pol)
	t.Fatalf("the helper mirror ended instead of being killed: %v", err)
}

// TestMirrorRegistryOutage: the registry process is stopped in the middle
// of the push and started again 5 s later on the same port and storage;
// the run waits for it (reporting each wait) and succeeds.
func TestMirrorRegistryOutage(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	reg := testkit.Start(t)
	var patches atomic.Int32
	var events []RetryEvent
	var mu sync.Mutex
	restarted := make(chan error, 1)
	base, err := registryhttp.New(registryhttp.Options{StallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPatch && patches.Add(1) == 2 {
			if err := reg.Stop(); err != nil {
				t.Errorf("stop the registry: %v", err)
			}
			go func() {
				time.Sleep(5 * time.Second)
				restarted <- reg.Restart()
			}()
		}
		return base.RoundTrip(r)
	})
	to, err := ParseTarget(reg.Host+"/outage", true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	res, err := Mirror(context.Background(), r, MirrorOptions{
		To: to, Policy: f.policy, TempDir: t.TempDir(), Transport: tr,
		Retry: remote.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Steps: 3},
		OnRetry: func(ev RetryEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		},
	})
	if rerr := <-restarted; rerr != nil {
		t.Fatalf("restart the registry: %v", rerr)
	}
	if err != nil {
		t.Fatalf("mirror across a 5 s outage: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) == 0 {
		t.Fatal("no retry was reported while the registry was down")
	}
	for _, ev := range events {
		if ev.Window != DefaultRetryWindow || ev.Waited > 30*time.Second {
			t.Errorf("retry event %+v", ev)
		}
	}
	t.Logf("mirror took %v across the outage; %d waits reported, first: %s: %v", time.Since(start).Round(time.Millisecond), len(events), events[0].Op, events[0].Err)
	if res.Tags == 0 {
		t.Fatalf("result %+v", res)
	}
	checkTagsComplete(t, reg.Host, "outage")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
