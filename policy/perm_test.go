package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFixture copies the fixture policy and its keys into a temporary
// directory with owner-only write permission and returns the policy path.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"policy.yaml", "keys/release.pub", "keys/security.pub", "keys/ops.pub"} {
		b, err := os.ReadFile(filepath.Join("testdata", rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "policy.yaml")
}

// TestLoadRefusesWritableTrustFiles (issue 10): a policy or key file that
// group or others may write is refused, naming the file; the insecure
// option uses it anyway.
func TestLoadRefusesWritableTrustFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file string
		mode       os.FileMode
	}{
		{"policy writable by others", "policy.yaml", 0o646},
		{"policy writable by the group", "policy.yaml", 0o664},
		{"key writable by others", "keys/security.pub", 0o666},
		{"key writable by the group", "keys/ops.pub", 0o620},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pol := copyFixture(t)
			if _, err := Load(pol); err != nil {
				t.Fatalf("owner-only files: %v", err)
			}
			target := filepath.Join(filepath.Dir(pol), tc.file)
			if err := os.Chmod(target, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(pol)
			var pe *PermissionError
			if !errors.As(err, &pe) || !errors.Is(err, ErrPermissions) {
				t.Fatalf("err = %v, want a *PermissionError", err)
			}
			if pe.Path != target || pe.Fix != "go-w" || !strings.Contains(err.Error(), target) {
				t.Fatalf("the error does not name %s and the fix: %v (%+v)", target, err, pe)
			}
			if _, err := LoadWith(pol, LoadOptions{InsecurePermissions: true}); err != nil {
				t.Fatalf("with InsecurePermissions: %v", err)
			}
		})
	}
}
