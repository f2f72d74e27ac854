package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testregistry"
)

// TestPackCarriesAndChecksCosignSignatures signs one image with the real
// cosign in the real registry, then: pack carries the signature next to the
// image; images[].verify accepts the signed image and refuses the unsigned
// one (exit 1, naming the image), before anything is written.
func TestPackCarriesAndChecksCosignSignatures(t *testing.T) {
	t.Setenv("PATH", "/var/cache/airlock-ci/bin:"+os.Getenv("PATH"))
	cosign := testregistry.RequireTool(t, "cosign", "go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 (or run .ci/run)")
	reg := testregistry.Start(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(cosign, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign %v: %v\n%s", args, err, out)
		}
	}
	run("generate-key-pair")
	worker := reg.Host + "/demo/worker:1.0"
	ref, _ := name.ParseReference(worker)
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	run("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", reg.Host+"/demo/worker@"+desc.Digest.String())

	write := func(verifyAPI bool) string {
		spec := "name: up\nversion: 1.0.0\nimages:\n  - ref: " + worker + "\n    verify: { key: cosign.pub }\n"
		if verifyAPI {
			spec += "  - ref: " + reg.Host + "/demo/api:1.0\n    verify: { key: cosign.pub }\n"
		}
		p := filepath.Join(dir, "airlock.yaml")
		if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "up.airlock")
	if code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", write(false), "-o", out); code != 0 {
		t.Fatalf("pack of a signed image with verify: %s", stderr)
	}
	code, stdout, _ := runCLI(t, nil, "inspect", out, "--json")
	if code != 0 {
		t.Fatal("inspect failed")
	}
	var ins bundle.Inspection
	if err := json.Unmarshal([]byte(stdout), &ins); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range ins.Artifacts {
		if a.Kind == bundle.KindAttachment && a.SubjectDigest == desc.Digest.String() && strings.HasSuffix(a.Tag, ".sig") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the cosign signature was not carried: %+v", ins.Artifacts)
	}

	out2 := filepath.Join(dir, "up2.airlock")
	code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", write(true), "-o", out2)
	if code != exitError || !strings.Contains(stderr, "demo/api:1.0") || !strings.Contains(stderr, "cosign signature") {
		t.Fatalf("unsigned image with verify: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatal("a refused pack left a bundle behind")
	}
}
