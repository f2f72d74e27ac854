package testkit_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// pushAndCheck pushes the sample images to reg and reads every manifest
// back, comparing digests.
func pushAndCheck(t *testing.T, reg *testkit.Registry) {
	t.Helper()
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(t.Context(), reg.Host, imgs); err != nil {
		t.Fatalf("push to %s: %v", reg.Host, err)
	}
	for _, si := range imgs {
		var want v1.Hash
		if si.Index != nil {
			want, err = si.Index.Digest()
		} else {
			want, err = si.Image.Digest()
		}
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(reg.Host + "/" + si.Ref())
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(ref, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("get %s: %v", ref, err)
		}
		if desc.Digest != want {
			t.Errorf("%s resolves to %s, want %s", ref, desc.Digest, want)
		}
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	var host string
	t.Run("serve", func(t *testing.T) {
		reg := testkit.Start(t)
		host = reg.Host
		if h, _, err := net.SplitHostPort(reg.Host); err != nil || h != "127.0.0.1" {
			t.Fatalf("Host %q is not 127.0.0.1:PORT", reg.Host)
		}
		pushAndCheck(t, reg)
		// Blobs landed in the storage directory.
		blobs, err := filepath.Glob(filepath.Join(reg.Dir, "docker", "registry", "v2", "blobs", "sha256", "*", "*", "data"))
		if err != nil || len(blobs) == 0 {
			t.Errorf("no blobs under %s (%v)", reg.Dir, err)
		}
	})
	if host == "" {
		return // skipped
	}
	// The cleanup of the subtest stopped the registry.
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Errorf("registry at %s still accepts connections after the test ended", host)
	}
}

func TestStartInProcess(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	if h, _, err := net.SplitHostPort(reg.Host); err != nil || h != "127.0.0.1" {
		t.Fatalf("Host %q is not 127.0.0.1:PORT", reg.Host)
	}
	if reg.Dir != "" {
		t.Errorf("Dir = %q, want empty", reg.Dir)
	}
	pushAndCheck(t, reg)
}

func TestRequireToolFound(t *testing.T) {
	t.Parallel()
	p := testkit.RequireTool(t, "sh", "apt-get install dash")
	if !filepath.IsAbs(p) {
		t.Fatalf("RequireTool returned %q, not an absolute path", p)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("RequireTool returned %q: %v", p, err)
	}
}

// Not parallel: it sets CI.
func TestRequireToolMissingSkips(t *testing.T) {
	t.Setenv("CI", "false")
	var sub *testing.T
	t.Run("missing", func(t *testing.T) {
		sub = t
		testkit.RequireTool(t, "airlock-no-such-tool", "nothing to install")
		t.Error("RequireTool returned for a missing tool")
	})
	if !sub.Skipped() {
		t.Error("RequireTool did not skip the test for a missing tool")
	}
}
