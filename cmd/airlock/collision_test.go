package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestMirrorRefusesTagCollision: two source registries hold different
// images under the same path and tag; mirroring without the source host in
// the path would make one overwrite the other, so mirror refuses before
// pushing anything and says how to avoid it.
func TestMirrorRefusesTagCollision(t *testing.T) {
	t.Parallel()
	a, b := testkit.StartInProcess(t), testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	var worker, legacy sample.Image
	for _, im := range imgs {
		switch im.Repo {
		case "demo/worker":
			worker = im
		case "demo/legacy":
			legacy = im
		}
	}
	for host, img := range map[string]sample.Image{a.Host: worker, b.Host: legacy} {
		ref, _ := name.ParseReference(host + "/team/app:1.0")
		if err := remote.Write(ref, img.Image); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	for _, k := range []string{"k1", "k2"} {
		if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, k)); code != 0 {
			t.Fatal(stderr)
		}
	}
	spec := "name: clash\nversion: 1.0.0\nimages:\n  - ref: " + a.Host + "/team/app:1.0\n  - ref: " + b.Host + "/team/app:1.0\n"
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(spec), 0o644)
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte("keys:\n  k1: { publicKey: k1.pub }\nbundles:\n  - match: clash\n    signers: [k1]\n    threshold: 1\n"), 0o644)
	out := filepath.Join(dir, "clash.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", out, "--key", filepath.Join(dir, "k1.key")); code != 0 {
		t.Fatal(stderr)
	}
	dest := testkit.StartInProcess(t)
	code, _, stderr := runCLI(t, nil, "mirror", out, "--to", dest.Host+"/site", "--policy", pol, "-q")
	if code != exitError || !strings.Contains(stderr, "--keep-registry-host") {
		t.Fatalf("collision: exit %d: %s", code, stderr)
	}
	if _, err := remote.Head(mustRef(t, dest.Host+"/site/team/app:1.0")); err == nil {
		t.Fatal("a tag was written despite the collision")
	}
	if code, _, stderr := runCLI(t, nil, "mirror", out, "--to", dest.Host+"/site", "--policy", pol, "-q", "--keep-registry-host"); code != 0 {
		t.Fatalf("with --keep-registry-host: %s", stderr)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
