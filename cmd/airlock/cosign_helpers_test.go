package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

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

// upstreamRelease is a bundle of demo/worker (signed upstream with cosign)
// and demo/api, from cosignRelease.
type upstreamRelease struct {
	src    string // the source registry
	worker string // demo/worker's digest, which cosign signed there
	bundle string // cs.Dir/up.airlock
	policy string // needs every key the bundle was signed with
}

// cosignRelease pushes the sample images to a source registry, signs
// demo/worker there with the cosign key of cs, and packs demo/worker (its
// upstream signature checked at pack time, verify: { key: cosign.pub }) and
// demo/api into cs.Dir/up.airlock, signed by a new key for each of signers,
// with a policy that needs them all.
func cosignRelease(t *testing.T, cs *testkit.Cosign, signers ...string) upstreamRelease {
	t.Helper()
	src := sampleRegistry(t)
	dir := cs.Dir
	workerDesc, err := remote.Head(repoOf(t, src.Host+"/demo/worker").Tag("1.0"))
	if err != nil {
		t.Fatal(err)
	}
	worker := workerDesc.Digest.String()
	signImage(t, cs, src.Host+"/demo/worker@"+worker)

	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	keysYAML := ""
	packArgs := []string{"pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", filepath.Join(dir, "up.airlock")}
	for _, k := range signers {
		if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, k)); code != 0 {
			t.Fatalf("key generate %s: %s", k, stderr)
		}
		keysYAML += "  " + k + ": { publicKey: " + k + ".pub }\n"
		packArgs = append(packArgs, "--key", filepath.Join(dir, k+".key"))
	}
	pol := filepath.Join(dir, "policy.yaml")
	body := fmt.Sprintf("keys:\n%sbundles:\n  - match: up\n    signers: [%s]\n    threshold: %d\n", keysYAML, strings.Join(signers, ", "), len(signers))
	if err := os.WriteFile(pol, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := "name: up\nversion: 1.0.0\nimages:\n  - ref: " + src.Host + "/demo/worker:1.0\n    verify: { key: cosign.pub }\n  - ref: " + src.Host + "/demo/api:1.0\n"
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, packArgs...); code != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	return upstreamRelease{src: src.Host, worker: worker, bundle: filepath.Join(dir, "up.airlock"), policy: pol}
}
