package cosign_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetwork keeps the package offline: it must not depend on net/http,
// even indirectly (tests may).
func TestNoNetwork(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "net/http" || p == "os/exec" {
			t.Errorf("cosign depends on %s", p)
		}
	}
}
