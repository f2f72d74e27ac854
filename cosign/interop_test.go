package cosign_test

import (
	"bytes"
	"crypto"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/ from signatures made by the real cosign")

// cosignDir is where .ci/run installs the pinned cosign.
// loadVerifier reads a PEM public key as cosign writes it.
func loadVerifier(t testing.TB, pemBytes []byte) signature.Verifier {
	t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatalf("LoadVerifier: %v", err)
	}
	return v
}

// fetched is a signature manifest and its first payload, as pulled from a registry.
type fetched struct {
	manifest []byte
	sigs     []cosign.Signature
	payload  []byte
}

// fetchSignature pulls repo:sha256-<hex>.sig and the payload of its first
// layer, checking the payload against the layer descriptor.
func fetchSignature(t *testing.T, repo name.Repository, subject string) fetched {
	t.Helper()
	tag := repo.Tag(strings.Replace(subject, ":", "-", 1) + ".sig")
	desc, err := remote.Get(tag, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("get %s: %v", tag, err)
	}
	sigs, err := cosign.Parse(desc.Manifest)
	if err != nil {
		t.Fatalf("Parse(%s): %v", tag, err)
	}
	if len(sigs) != 1 {
		t.Fatalf("Parse(%s): %d signatures, want 1", tag, len(sigs))
	}
	l, err := remote.Layer(repo.Digest(sigs[0].Payload.Digest), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	payload, err := checked.ReadAll(rc, sigs[0].Payload.Digest, sigs[0].Payload.Size)
	if err != nil {
		t.Fatalf("payload of %s: %v", tag, err)
	}
	return fetched{manifest: desc.Manifest, sigs: sigs, payload: payload}
}

// TestCosignInterop signs sample images with the real cosign in the real
// registry, and checks that Parse and Verify accept exactly what cosign
// made. With -update it rewrites testdata/ from these signatures.
func TestCosignInterop(t *testing.T) {
	cs := testkit.NewCosign(t) // t.Setenv: not parallel
	reg := testkit.Start(t)
	imgs := sampleImages(t)
	if err := sample.Push(t.Context(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	dir := cs.Dir
	cs.MustRun(t, "generate-key-pair")
	worker, legacy := digestOf(t, imgs, "demo/worker"), digestOf(t, imgs, "demo/legacy")
	for _, ref := range []string{reg.Host + "/demo/worker@" + worker, reg.Host + "/demo/legacy@" + legacy} {
		cs.MustRun(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", ref)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v := loadVerifier(t, pub)

	workerRepo, err := name.NewRepository(reg.Host + "/demo/worker")
	if err != nil {
		t.Fatal(err)
	}
	legacyRepo, err := name.NewRepository(reg.Host + "/demo/legacy")
	if err != nil {
		t.Fatal(err)
	}
	w := fetchSignature(t, workerRepo, worker)
	l := fetchSignature(t, legacyRepo, legacy)

	if err := cosign.Verify(w.payload, w.sigs[0].Signature, worker, v); err != nil {
		t.Fatalf("Verify(worker): %v", err)
	}
	if err := cosign.Verify(l.payload, l.sigs[0].Signature, legacy, v); err != nil {
		t.Fatalf("Verify(legacy): %v", err)
	}
	// The same refusals the fixture tests check, on live signatures.
	for _, c := range []struct {
		name    string
		payload []byte
		sig     []byte
		subject string
		v       signature.Verifier
		want    error
	}{
		{"wrong key", w.payload, w.sigs[0].Signature, worker, otherKey(t), cosign.ErrBadSignature},
		{"signed for another image", l.payload, l.sigs[0].Signature, worker, v, cosign.ErrWrongImage},
		{"another subject", w.payload, w.sigs[0].Signature, legacy, v, cosign.ErrWrongImage},
		{"flipped signature byte", w.payload, flip(w.sigs[0].Signature, len(w.sigs[0].Signature)/2), worker, v, cosign.ErrBadSignature},
		{"flipped payload byte", flip(w.payload, len(w.payload)/2), w.sigs[0].Signature, worker, v, cosign.ErrBadSignature},
	} {
		err := cosign.Verify(c.payload, c.sig, c.subject, c.v)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}

	if *update {
		files := map[string][]byte{
			fixturePub:            pub,
			fixtureWorkerManifest: w.manifest,
			fixtureWorkerPayload:  w.payload,
			fixtureLegacyManifest: l.manifest,
			fixtureLegacyPayload:  l.payload,
		}
		for f, b := range files {
			if err := os.WriteFile(filepath.Join("testdata", f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("rewrote testdata/ from cosign signatures of %s and %s", worker, legacy)
		return
	}
	// The committed fixtures were made the same way: same shape.
	fx := loadFixtures(t)
	if !bytes.Contains(fx.workerPayload, []byte(worker)) || !bytes.Contains(fx.legacyPayload, []byte(legacy)) {
		t.Errorf("testdata/ signs other digests than the sample images; run go test ./internal/cosignsig -run TestCosignInterop -update")
	}
}
