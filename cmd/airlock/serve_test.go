package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/sample"
)

// serveWait bounds how long the tests wait for `airlock serve` to come up
// or to exit.
const serveWait = 15 * time.Second

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runServeCLI runs `airlock serve args...` the way run dispatches it, and
// returns the exit code, stdout and stderr.
func runServeCLI(ctx context.Context, args []string) (int, string, string) {
	var out, errb lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := runCommand(ctx, serveCommand(), args, e)
	return code, out.String(), errb.String()
}

var servingLine = regexp.MustCompile(`serving an OCI registry on http://(127\.0\.0\.1:\d+), data in (\S+) \(Ctrl-C to stop\)`)

// TestServeCommand starts `airlock serve` on a free port, pushes an image,
// cancels the context (what SIGINT/SIGTERM do in main) and checks a prompt,
// clean exit 0.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "registry")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	exited := make(chan int, 1)
	go func() {
		exited <- runCommand(ctx, serveCommand(), []string{"--data", dir, "--addr", "127.0.0.1:0"}, e)
	}()

	// Wait for the "serving" line, then for GET /v2/ to answer 200.
	var host string
	for deadline := time.Now().Add(serveWait); host == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-exited:
			t.Fatalf("airlock serve exited %d before serving: %s", code, errb.String())
		default:
		}
		if m := servingLine.FindStringSubmatch(errb.String()); m != nil {
			host = m[1]
			if m[2] != dir {
				t.Errorf("data directory printed as %q, want %q", m[2], dir)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serving line within %v: %q", serveWait, errb.String())
		}
	}
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %d", resp.StatusCode)
	}
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(ctx, host, imgs[1:2]); err != nil {
		t.Fatalf("push: %v", err)
	}
	ref, err := name.NewTag(host + "/" + imgs[1].Ref())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref); err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}

	start := time.Now()
	cancel()
	select {
	case code := <-exited:
		if code != exitOK {
			t.Fatalf("exit %d after cancel: %s", code, errb.String())
		}
	case <-time.After(serveWait):
		t.Fatalf("airlock serve still running %v after cancel", serveWait)
	}
	if d := time.Since(start); d > 11*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if s := errb.String(); !strings.Contains(s, "stopped") || strings.Contains(s, "panic") || strings.Contains(s, "level=") {
		t.Errorf("stderr:\n%s", s)
	}
	if out.String() != "" {
		t.Errorf("stdout: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2", "repositories", "demo", "worker")); err != nil {
		t.Errorf("content not under --data: %v", err)
	}
}

// TestServeCommandErrors: bad command lines exit 2, unusable inputs 1,
// before anything listens.
func TestServeCommandErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no data", []string{"--addr", "127.0.0.1:0"}, exitUsage, "--data is required"},
		{"extra argument", []string{"--data", tmp, "extra"}, exitUsage, "unexpected argument"},
		{"remote without flag", []string{"--data", tmp, "--addr", "0.0.0.0:0"}, exitUsage, "--allow-remote"},
		{"all interfaces without flag", []string{"--data", tmp, "--addr", ":5000"}, exitUsage, "--allow-remote"},
		{"address without port", []string{"--data", tmp, "--addr", "127.0.0.1"}, exitUsage, "port"},
		{"cert without key", []string{"--data", tmp, "--tls-cert", aFile}, exitUsage, "--tls-key"},
		{"key without cert", []string{"--data", tmp, "--tls-key", aFile}, exitUsage, "--tls-cert"},
		{"unknown flag", []string{"--data", tmp, "--nope"}, exitUsage, "unknown flag"},
		{"data is a file", []string{"--data", aFile, "--addr", "127.0.0.1:0"}, exitError, "not a directory"},
		{"bad key pair", []string{"--data", tmp, "--addr", "127.0.0.1:0", "--tls-cert", aFile, "--tls-key", aFile}, exitError, "--tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), serveWait)
			defer cancel()
			code, _, stderr := runServeCLI(ctx, tc.args)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d; stderr %q should contain %q", code, tc.code, stderr, tc.want)
			}
			if strings.Contains(stderr, "serving an OCI registry") {
				t.Errorf("it served: %q", stderr)
			}
		})
	}
}

func TestServeCommandHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runServeCLI(context.Background(), []string{"--help"})
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--data", "--addr", "--tls-cert", "--tls-key", "--allow-remote", "Examples:", "airlock serve --data", "no authentication"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
}
