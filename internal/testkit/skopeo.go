package testkit

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// SkopeoHint says how to get skopeo.
const SkopeoHint = "sudo make tools (installs Debian's skopeo)"

// Skopeo runs the real skopeo.
type Skopeo struct {
	Bin string
}

// NewSkopeo finds skopeo; a missing one skips the test, or fails it when CI=true.
func NewSkopeo(t testing.TB) *Skopeo {
	t.Helper()
	return &Skopeo{Bin: RequireTool(t, "skopeo", SkopeoHint)}
}

// Run runs skopeo with args (bounded to two minutes) and returns its
// standard output; the error carries its standard error.
func (s *Skopeo) Run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.Bin, args...).Output()
	if err != nil {
		stderr := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		return out, &ToolError{Tool: "skopeo " + strings.Join(args, " "), Err: err, Output: stderr}
	}
	return out, nil
}

// Raw returns the exact manifest bytes skopeo reads at transport:ref
// (e.g. "docker://127.0.0.1:5000/demo/api:1.0", "oci:DIR:NAME"), with TLS
// verification off for docker:// references.
func (s *Skopeo) Raw(ctx context.Context, ref string) ([]byte, error) {
	args := []string{"inspect", "--raw"}
	if strings.HasPrefix(ref, "docker://") {
		args = append(args, "--tls-verify=false")
	}
	return s.Run(ctx, append(args, ref)...)
}

// Stderr returns what a failed tool printed on standard error: the output
// a *ToolError carries, or an *exec.ExitError's Stderr; "" otherwise.
func Stderr(err error) string {
	var te *ToolError
	if errors.As(err, &te) {
		return te.Output
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
