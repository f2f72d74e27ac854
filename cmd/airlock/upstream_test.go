package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bundle"
)

// TestPackCarriesAndChecksCosignSignatures signs one image with the real
// cosign in the real registry, then: pack carries the signature next to the
// image; images[].verify accepts the signed image and refuses the unsigned
// one (exit 1, naming the image), before anything is written.
func TestPackCarriesAndChecksCosignSignatures(t *testing.T) {
	cs := newCosign(t)
	reg := sampleRegistry(t)
	dir := cs.Dir
	worker := reg.Host + "/demo/worker:1.0"
	ref, _ := name.ParseReference(worker)
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	signImage(t, cs, reg.Host+"/demo/worker@"+desc.Digest.String())

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
	// The image records how images[].verify checked it, for the reviewer's
	// report; nothing else carries the claim.
	for _, a := range ins.Artifacts {
		switch {
		case a.Kind == bundle.KindImage && !strings.Contains(a.PackCheck, "cosign signature by the key in cosign.pub (sha256:"):
			t.Errorf("image %s: packCheck %q", a.Ref, a.PackCheck)
		case a.Kind != bundle.KindImage && a.PackCheck != "":
			t.Errorf("%s %s carries packCheck %q", a.Kind, a.Digest, a.PackCheck)
		}
	}
	pol := filepath.Join(dir, "any-policy.yaml")
	os.WriteFile(pol, []byte("keys:\n  k: {publicKey: cosign.pub}\nbundles:\n  - match: up\n    signers: [k]\n    threshold: 1\n"), 0o644)
	md := filepath.Join(dir, "report.md")
	runCLI(t, nil, "report", out, "--policy", pol, "--format", "md", "-o", md)
	if b, err := os.ReadFile(md); err != nil || !strings.Contains(string(b), "cosign signature by the key in cosign.pub") {
		t.Errorf("the report does not say how the image was checked at pack time (%v)", err)
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
