package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testregistry"
)

// cosignCLI runs the real cosign in a private directory with its own HOME,
// TUF root and key password, holding a key pair cosign.key / cosign.pub
// made by `cosign generate-key-pair`.
type cosignCLI struct {
	bin, dir string
	env      []string
}

// newCosign finds cosign (also in .ci/run's cache), prepares dir and
// generates the key pair. It uses t.Setenv, so its test cannot be parallel.
func newCosign(t *testing.T) *cosignCLI {
	t.Helper()
	t.Setenv("PATH", "/var/cache/airlock-ci/bin:"+os.Getenv("PATH"))
	bin := testregistry.RequireTool(t, "cosign", "go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 (or run .ci/run)")
	dir := t.TempDir()
	c := &cosignCLI{bin: bin, dir: dir, env: append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))}
	if err := c.run("generate-key-pair"); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs cosign with args in its directory; the error carries its output.
func (c *cosignCLI) run(args ...string) error {
	cmd := exec.Command(c.bin, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New(err.Error() + "\n" + string(out))
	}
	return nil
}

// signImage signs ref (repository@digest) with cosign.key, no transparency log.
func (c *cosignCLI) signImage(t *testing.T, ref string) {
	t.Helper()
	if err := c.run("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", ref); err != nil {
		t.Fatal(err)
	}
}

// sampleRegistry starts the real registry and pushes the sample images.
func sampleRegistry(t *testing.T) *testregistry.Registry {
	t.Helper()
	reg := testregistry.Start(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	return reg
}
