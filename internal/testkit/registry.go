package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a running registry on 127.0.0.1 for one test.
type Registry struct {
	// Host is "127.0.0.1:PORT"; go-containerregistry reaches it over HTTP.
	Host string
	// Dir is the registry's storage directory; empty for StartInProcess,
	// which keeps everything in memory.
	Dir string
	// ctl stops and restarts the process of Start; nil for StartInProcess.
	ctl *control
}

// Limits of Start.
const (
	readyTimeout = 15 * time.Second // wait for GET /v2/ to answer 200
	stopTimeout  = 5 * time.Second  // wait after SIGTERM before SIGKILL
	bindAttempts = 5                // ports tried when the chosen one is taken
)

// Start runs the CNCF distribution registry (the docker-registry binary,
// Debian package docker-registry) for the test, with filesystem storage in
// a temporary directory and its HTTP listener on a free port of
// 127.0.0.1. It returns once GET /v2/ answers 200, and stops the registry
// when the test ends (SIGTERM, then SIGKILL after 5s). It skips the test,
// or fails it when CI=true, if the binary is missing (see RequireTool), and
// fails it if the registry exits or is not ready within 15s, quoting the
// registry's output.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := RequireTool(t, "docker-registry", "apt-get install docker-registry")
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	if err := os.Mkdir(storage, 0o755); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	var lastOut string
	for range bindAttempts {
		host, err := freeHost()
		if err != nil {
			t.Fatalf("testkit: find a free port: %v", err)
		}
		config := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(config, []byte(configYAML(storage, host)), 0o644); err != nil {
			t.Fatalf("testkit: write config: %v", err)
		}
		p, err := start(bin, config)
		if err != nil {
			t.Fatalf("testkit: start %s: %v", bin, err)
		}
		err = p.waitReady(host)
		if err == nil {
			reg := &Registry{Host: host, Dir: storage, ctl: &control{bin: bin, config: config, proc: p}}
			t.Cleanup(func() {
				p := reg.ctl.current()
				if err := p.stop(); err != nil {
					t.Errorf("testkit: stop registry at %s: %v", host, err)
				}
				if t.Failed() {
					t.Logf("testkit: output of the registry at %s:\n%s", host, p.out.String())
				}
			})
			return reg
		}
		_ = p.stop()
		lastOut = p.out.String()
		if !errors.Is(err, errExited) || !strings.Contains(lastOut, "address already in use") {
			t.Fatalf("testkit: registry at %s: %v; output:\n%s", host, err, lastOut)
		}
	}
	t.Fatalf("testkit: no free port after %d attempts; last output:\n%s", bindAttempts, lastOut)
	return nil
}

// configYAML is the distribution registry configuration (format version
// 0.1) for storage under root and a listener on host.
func configYAML(root, host string) string {
	return "version: 0.1\n" +
		"log:\n" +
		"  level: warn\n" +
		"  accesslog:\n" +
		"    disabled: true\n" +
		"storage:\n" +
		"  filesystem:\n" +
		"    rootdirectory: " + strconv.Quote(root) + "\n" +
		"  delete:\n" +
		"    enabled: true\n" +
		"  maintenance:\n" +
		"    uploadpurging:\n" +
		"      enabled: false\n" +
		"http:\n" +
		"  addr: " + host + "\n" +
		"  secret: airlock-test-only\n"
}

// freeHost returns "127.0.0.1:PORT" for a port that was free a moment ago.
func freeHost() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	host := l.Addr().String()
	return host, l.Close()
}

// errExited means the registry process ended before it was ready.
var errExited = errors.New("registry exited before it was ready")

// process is a started registry and its combined output.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has been waited for
	err  error         // result of Wait, valid once done is closed
}

func start(bin, config string) (*process, error) {
	p := &process{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", config)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.Env = registryEnv()
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// registryEnv is the test's environment without REGISTRY_* variables,
// which the registry would read as configuration overrides.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls GET http://host/v2/ until it answers 200, the process
// exits (errExited) or readyTimeout passes.
func (p *process) waitReady(host string) error {
	return p.waitReadyURL(&http.Client{Timeout: time.Second}, "http://"+host+"/v2/", http.StatusOK)
}

// waitReadyURL polls GET url with client until it answers one of the
// status codes, the process exits (errExited) or readyTimeout passes.
func (p *process) waitReadyURL(client *http.Client, url string, ready ...int) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", errExited, p.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			if slices.Contains(ready, resp.StatusCode) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s did not answer %v within %v (last error: %v)", url, ready, readyTimeout, err)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then kills the process. It
// returns an error only if the process could not be ended.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("pid %d still running after SIGKILL", p.cmd.Process.Pid)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child
// process's stdout and stderr copiers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartInProcess serves go-containerregistry's pkg/registry (in-memory
// storage, logging discarded) on an httptest server bound to 127.0.0.1,
// closed when the test ends. Fast, for unit tests.
func StartInProcess(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
}

// RequireTool returns the absolute path of the external tool name, looked
// up in PATH and then in /usr/local/bin, /usr/bin and /usr/sbin. If it is
// missing, the test fails when the environment variable CI is "true" and
// is skipped otherwise; either way the message names the tool and gives
// installHint (for example "apt-get install skopeo").
func RequireTool(t testing.TB, name, installHint string) string {
	t.Helper()
	if p, ok := findTool(name); ok {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH, the tools cache, /usr/local/bin, /usr/bin or /usr/sbin; install it with: %s", name, installHint)
	if os.Getenv("CI") == "true" {
		t.Fatalf("testkit: %s (required because CI=true)", msg)
	}
	t.Skipf("testkit: %s (the test fails instead of skipping when CI=true)", msg)
	return ""
}

// findTool looks name up in PATH, then in the tools cache and a few
// standard directories.
func findTool(name string) (string, bool) {
	if strings.ContainsRune(name, filepath.Separator) {
		return "", false
	}
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, true
		}
	}
	// The tools cache `make tools` builds Go tools into (cosign, helm, the
	// conformance program) comes first: go test run by hand has no PATH for it.
	for _, d := range []string{filepath.Join(toolsCache(), "bin"), "/usr/local/bin", "/usr/bin", "/usr/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}
