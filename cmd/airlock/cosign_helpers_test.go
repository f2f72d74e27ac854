package main

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// newCosign prepares the real cosign (testkit.NewCosign: not parallel)
// with a key pair cosign.key / cosign.pub from `cosign generate-key-pair`.
func newCosign(t *testing.T) *testkit.Cosign {
	t.Helper()
	c := testkit.NewCosign(t)
	c.MustRun(t, "generate-key-pair")
	return c
}

// signImage signs ref (repository@digest) with cosign.key, no transparency log.
func signImage(t *testing.T, c *testkit.Cosign, ref string) {
	t.Helper()
	c.MustRun(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", ref)
}

// sampleRegistry starts the real registry and pushes the sample images.
func sampleRegistry(t *testing.T) *testkit.Registry {
	t.Helper()
	reg := testkit.Start(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	return reg
}
