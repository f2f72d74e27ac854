package bundle

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfflinePackages proves the trust decision is offline: bundle, policy and
// verify must not link net/http (directly or through a dependency).
func TestOfflinePackages(t *testing.T) {
	t.Parallel()
	pkgs := []string{"github.com/airlock-dev/airlock/bundle"}
	for _, p := range []string{"policy", "verify"} {
		if files, _ := filepath.Glob("../" + p + "/*.go"); len(files) > 0 {
			pkgs = append(pkgs, "github.com/airlock-dev/airlock/"+p)
		}
	}
	for _, pkg := range pkgs {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, d := range deps {
			if d == "net/http" || strings.HasPrefix(d, "net/http/") {
				t.Errorf("%s depends on %s; the offline packages must not touch the network", pkg, d)
			}
		}
	}
}
