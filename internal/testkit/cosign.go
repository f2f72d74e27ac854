package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CosignHint says how to get the cosign the interoperability tests use.
const CosignHint = "sudo make tools (builds cosign v2.6.5 into /var/cache/airlock-ci/bin)"

// toolsCache is where `make tools` builds Go tools; TOOLS_CACHE overrides it.
func toolsCache() string {
	if c := os.Getenv("TOOLS_CACHE"); c != "" {
		return c
	}
	return "/var/cache/airlock-ci"
}

// Cosign runs the real cosign in a private directory (its HOME, TUF root
// and working directory), with a key password.
type Cosign struct {
	Bin string
	// Dir is the working directory, HOME and TUF root of every run.
	Dir string
	// Password is COSIGN_PASSWORD for every run; NewCosign sets "x".
	Password string
	// Env is added to the environment of every run.
	Env []string
}

// NewCosign finds cosign (in PATH, or in the tools cache, which it puts
// first in PATH; t.Setenv rules out t.Parallel) and prepares a private
// directory. A missing cosign skips the test, or fails it when CI=true.
func NewCosign(t *testing.T) *Cosign {
	t.Helper()
	t.Setenv("PATH", filepath.Join(toolsCache(), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	bin := RequireTool(t, "cosign", CosignHint)
	return &Cosign{Bin: bin, Dir: t.TempDir(), Password: "x"}
}

// Run runs cosign with args (bounded to two minutes) and returns its
// combined output; the error carries the output too.
func (c *Cosign) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = append(append(os.Environ(), "COSIGN_PASSWORD="+c.Password, "HOME="+c.Dir, "TUF_ROOT="+filepath.Join(c.Dir, ".tuf")), c.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		shown := out
		if len(shown) > 4000 {
			shown = shown[:4000]
		}
		return string(out), &ToolError{Tool: "cosign " + strings.Join(args, " "), Err: err, Output: string(shown)}
	}
	return string(out), nil
}

// MustRun runs cosign and fails the test when it exits non-zero.
func (c *Cosign) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ToolError is a real tool that exited non-zero, with its output.
type ToolError struct {
	Tool   string
	Err    error
	Output string
}

func (e *ToolError) Error() string { return e.Tool + ": " + e.Err.Error() + "\n" + e.Output }

func (e *ToolError) Unwrap() error { return e.Err }
