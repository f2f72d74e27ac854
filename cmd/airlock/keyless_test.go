package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/internal/testkit/sigstoretest"
)

// rawManifest is a manifest pushed byte for byte.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// pushBlob uploads b to repo and returns its descriptor.
func pushBlob(t *testing.T, repo name.Repository, mediaType string, b []byte) map[string]any {
	t.Helper()
	if err := remote.WriteLayer(repo, static.NewLayer(b, types.MediaType(mediaType))); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"mediaType": mediaType, "digest": checked.Digest(b), "size": len(b)}
}

// pushManifest puts raw under ref (a tag or a digest).
func pushManifest(t *testing.T, ref name.Reference, raw []byte) {
	t.Helper()
	if err := remote.Put(ref, rawManifest{raw: raw, mt: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

// signKeylessReferrer attaches a Sigstore bundle to repo@digest as an OCI
// referrer, as cosign v3 does.
func signKeylessReferrer(t *testing.T, ss *sigstoretest.Sigstore, repo name.Repository, desc map[string]any, subject, issuer string, o sigstoretest.Options) {
	t.Helper()
	digest := desc["digest"].(string)
	b := ss.Bundle(t, subject, issuer, repo.Name(), digest, o)
	layer := pushBlob(t, repo, sigstoretest.MediaTypeBundle, b)
	cfg := pushBlob(t, repo, "application/vnd.oci.empty.v1+json", []byte("{}"))
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": bundle.MediaTypeOCIManifest, "artifactType": sigstoretest.MediaTypeBundle,
		"config": cfg, "layers": []any{layer}, "subject": desc,
	})
	pushManifest(t, repo.Digest(checked.Digest(raw)), raw)
}

// signKeylessTag pushes a keyless cosign signature under the .sig tag.
func signKeylessTag(t *testing.T, ss *sigstoretest.Sigstore, repo name.Repository, digest, subject, issuer string, o sigstoretest.Options) {
	t.Helper()
	payload, err := cosign.NewPayload(repo.Name(), digest)
	if err != nil {
		t.Fatal(err)
	}
	ann := ss.CosignLayer(t, subject, issuer, payload, o)
	pd := pushBlob(t, repo, cosign.MediaTypeSimpleSigning, payload)
	pd["annotations"] = ann
	cfg := pushBlob(t, repo, "application/vnd.oci.image.config.v1+json", []byte("{}"))
	raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": bundle.MediaTypeOCIManifest, "config": cfg, "layers": []any{pd}})
	pushManifest(t, repo.Tag(cosign.SignatureTag(digest)), raw)
}

// TestPackVerifiesKeylessSignatures: images signed keylessly by an
// in-process Sigstore — one with a Sigstore bundle referrer, one with a
// cosign .sig tag — pack with images[].verify identities under a pinned
// trusted root; the signatures travel in the bundle. A wrong identity, a
// certificate expired at its log entry's time, a bundle without inclusion
// proof and an unpinned trusted root each stop pack (exit 1) naming the
// image and the reason, before any bundle is written.
const (
	testIssuer  = "https://token.actions.githubusercontent.com"
	testSubject = "https://github.com/example/payments/.github/workflows/release.yml@refs/heads/main"
)

// keylessRegistry pushes the sample images into an in-process registry and
// signs them keylessly with an in-process Sigstore: demo/worker with a
// Sigstore bundle referrer, demo/api with a cosign .sig tag; demo/expired
// (certificate expired at its log entry's time) and demo/noproof (no
// inclusion proof) are copies of the worker signed with those faults. The
// trusted root is written to DIR/roots/sigstore.json; pin is its digest.
func keylessRegistry(t *testing.T) (reg *testkit.Registry, ss *sigstoretest.Sigstore, dir, pin string) {
	t.Helper()
	const (
		issuer  = testIssuer
		subject = testSubject
	)
	reg = testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	ss = sigstoretest.New(t)
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "roots"), 0o755)
	os.WriteFile(filepath.Join(dir, "roots", "sigstore.json"), ss.Root, 0o644)
	pin = checked.Digest(ss.Root)

	type img struct {
		repo name.Repository
		desc map[string]any
	}
	images := map[string]img{}
	for _, n := range []string{"worker", "api"} {
		ref, _ := name.ParseReference(reg.Host + "/demo/" + n + ":1.0")
		d, err := remote.Head(ref)
		if err != nil {
			t.Fatal(err)
		}
		images[n] = img{ref.Context(), map[string]any{"mediaType": string(d.MediaType), "digest": d.Digest.String(), "size": d.Size}}
	}
	// Copies of the worker, signed with problems.
	for _, n := range []string{"expired", "noproof"} {
		src, _ := name.ParseReference(reg.Host + "/demo/worker:1.0")
		dst, _ := name.ParseReference(reg.Host + "/demo/" + n + ":1.0")
		d, err := remote.Get(src)
		if err != nil {
			t.Fatal(err)
		}
		// A distinct digest, so only its own (faulty) signature covers it.
		im, err := d.Image()
		if err != nil {
			t.Fatal(err)
		}
		im = mutate.Annotations(im, map[string]string{"org.example.copy": n}).(v1.Image)
		if err := remote.Write(dst, im); err != nil {
			t.Fatal(err)
		}
		dd, err := remote.Head(dst)
		if err != nil {
			t.Fatal(err)
		}
		images[n] = img{dst.Context(), map[string]any{"mediaType": string(dd.MediaType), "digest": dd.Digest.String(), "size": dd.Size}}
	}
	signKeylessReferrer(t, ss, images["expired"].repo, images["expired"].desc, subject, issuer, sigstoretest.Options{LogTime: time.Now().Add(30 * time.Minute)})
	signKeylessReferrer(t, ss, images["noproof"].repo, images["noproof"].desc, subject, issuer, sigstoretest.Options{NoInclusionProof: true})
	signKeylessReferrer(t, ss, images["worker"].repo, images["worker"].desc, subject, issuer, sigstoretest.Options{})
	signKeylessTag(t, ss, images["api"].repo, images["api"].desc["digest"].(string), subject, issuer, sigstoretest.Options{})

	return reg, ss, dir, pin
}

func TestPackVerifiesKeylessSignatures(t *testing.T) {
	t.Parallel()
	reg, _, dir, pin := keylessRegistry(t)
	const (
		issuer  = testIssuer
		subject = testSubject
	)
	apiDigest := func() string {
		ref, _ := name.ParseReference(reg.Host + "/demo/api:1.0")
		d, err := remote.Head(ref)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}()
	spec := func(workerVerify, apiVerify string, repo ...string) string {
		p := filepath.Join(dir, "airlock.yaml")
		worker := "worker"
		if len(repo) > 0 {
			worker = repo[0]
		}
		s := "name: up\nversion: 1.0.0\nimages:\n" +
			"  - ref: " + reg.Host + "/demo/" + worker + ":1.0\n    verify: " + workerVerify + "\n" +
			"  - ref: " + reg.Host + "/demo/api:1.0\n    verify: " + apiVerify + "\n"
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	ident := func(subj, rootFile, rootPin string) string {
		return "{ issuer: " + issuer + ", subject: " + subj + ", trustedRoot: " + rootFile + ", trustedRootSHA256: " + rootPin + " }"
	}
	good := ident(subject, "roots/sigstore.json", pin)
	out := filepath.Join(dir, "up.airlock")
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "release")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	code, _, stderr := runCLI(t, env, "pack", "-q", "-f", spec(good, "{ issuer: "+issuer+", subjectRegExp: 'https://github\\.com/example/.*', trustedRoot: roots/sigstore.json, trustedRootSHA256: "+pin+" }"), "-o", out, "--key", filepath.Join(dir, "release.key"))
	if code != 0 {
		t.Fatalf("pack with keyless identities: exit %d: %s", code, stderr)
	}
	// The signatures travel in the bundle, next to their images, and so
	// does the trusted root, once.
	code, stdout, _ := runCLI(t, nil, "inspect", out, "--json")
	if code != 0 || !strings.Contains(stdout, sigstoretest.MediaTypeBundle) || !strings.Contains(stdout, cosign.SignatureTag(apiDigest)) || strings.Count(stdout, `"kind": "trustedroot"`) != 1 {
		t.Errorf("the bundle does not carry both keyless signatures and the trusted root:\n%s", stdout)
	}
	// A policy may pin that carried root by digest; only that digest counts.
	for _, c := range []struct {
		pin  string
		code int
	}{{pin, 0}, {checked.Digest([]byte("another root")), exitRejected}} {
		pol := filepath.Join(dir, "policy.yaml")
		os.WriteFile(pol, []byte("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: up\n    signers: [release]\n    threshold: 1\n    images:\n"+
			"      - match: \"**\"\n        keyless: { issuer: "+issuer+", subject: "+subject+", trustedRootSHA256: "+c.pin+" }\n"), 0o644)
		code, stdout, stderr := runCLI(t, nil, "verify", out, "--policy", pol)
		if code != c.code || (c.code != 0 && !strings.Contains(stdout, "carries no trusted root with that digest")) {
			t.Errorf("policy pinning root %s: exit %d, want %d\n%s%s", c.pin, code, c.code, stdout, stderr)
		}
	}

	for _, c := range []struct {
		name        string
		worker, api string
		repo        string
		image, want string
	}{
		{"wrong identity", ident("https://github.com/example/other/.github/workflows/release.yml@refs/heads/main", "roots/sigstore.json", pin), good, "worker", "demo/worker:1.0", "wrong identity"},
		{"expired certificate", good, good, "expired", "demo/expired:1.0", "certificate not valid at the log entry's time"},
		{"no inclusion proof", good, good, "noproof", "demo/noproof:1.0", "inclusion proof"},
		{"unpinned trusted root", good, ident(subject, "roots/sigstore.json", "sha256:"+strings.Repeat("0", 64)), "worker", "roots/sigstore.json", "pinned digest"},
	} {
		os.Remove(out)
		code, _, stderr := runCLI(t, nil, "pack", "-q", "-f", spec(c.worker, c.api, c.repo), "-o", out)
		if code != exitError || !strings.Contains(stderr, c.image) || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr should name %s and say %q:\n%s", c.name, code, c.image, c.want, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: a bundle was written", c.name)
		}
	}
}

// TestPolicyReverifiesKeylessSignatures is the isolated side: the bundle
// carries keylessly signed images (packed without images[].verify, so the
// packer's word counts for nothing), and the policy's images rules make
// verify and mirror re-check those signatures offline against the trusted
// root the policy pins. verify --json lists which signature satisfied
// which rule; a wrong identity, an expired certificate, a missing inclusion
// proof, an unsigned image and a root the policy does not pin each fail
// with exit 3, naming the image and the reason; mirror refuses before it
// writes anything.
func TestPolicyReverifiesKeylessSignatures(t *testing.T) {
	t.Parallel()
	reg, _, dir, _ := keylessRegistry(t)
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	// demo/api also carries a key-based cosign signature by "upstream".
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "upstream")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	{
		signer, err := keys.LoadSigner(filepath.Join(dir, "upstream.key"), func(bool) ([]byte, error) { return []byte(testPassword), nil })
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(reg.Host + "/demo/api:1.0")
		d, err := remote.Head(ref)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := cosign.NewPayload(ref.Context().Name(), d.Digest.String())
		sig, err := signer.Sign(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		built, err := cosign.AppendSignature(nil, payload, sig, nil)
		if err != nil {
			t.Fatal(err)
		}
		pushBlob(t, ref.Context(), built.PayloadDesc.MediaType, built.Payload)
		pushBlob(t, ref.Context(), built.ConfigDesc.MediaType, built.Config)
		// The .sig tag holds the keyless signature already: a cosign
		// signature referrer carries this one.
		var m map[string]any
		json.Unmarshal(built.Manifest, &m)
		m["artifactType"] = cosign.ArtifactTypeReferrerSignature
		m["subject"] = map[string]any{"mediaType": string(d.MediaType), "digest": d.Digest.String(), "size": d.Size}
		raw, _ := json.Marshal(m)
		pushManifest(t, ref.Context().Digest(checked.Digest(raw)), raw)
	}
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "release")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	spec := "name: up\nversion: 1.0.0\nimages:\n"
	for _, n := range []string{"worker", "api", "expired", "noproof"} {
		spec += "  - ref: " + reg.Host + "/demo/" + n + ":1.0\n"
	}
	spec += "  - ref: " + reg.Host + "/demo/legacy:1.0\n"
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(spec), 0o644)
	b := filepath.Join(dir, "up.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", b, "--key", filepath.Join(dir, "release.key")); code != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	other := sigstoretest.New(t)
	os.WriteFile(filepath.Join(dir, "roots", "other.json"), other.Root, 0o644)

	policyWith := func(images string) string {
		p := filepath.Join(dir, "policy.yaml")
		os.WriteFile(p, []byte("keys:\n  release: { publicKey: release.pub }\n  upstream: { publicKey: upstream.pub }\nbundles:\n  - match: up\n    signers: [release]\n    threshold: 1\n    images:\n"+images), 0o644)
		return p
	}
	rule := func(img, identity, root string) string {
		return "      - match: \"" + reg.Host + "/demo/" + img + ":*\"\n        keyless: { issuer: " + testIssuer + ", " + identity + ", trustedRoot: roots/" + root + " }\n"
	}
	good := rule("worker", "subject: "+testSubject, "sigstore.json") +
		rule("api", "subjectRegExp: 'https://github\\.com/example/.*'", "sigstore.json")

	pol := policyWith(good)
	code, stdout, stderr := runCLI(t, nil, "verify", b, "--policy", pol, "--json")
	if code != 0 {
		t.Fatalf("verify with keyless rules: exit %d\n%s%s", code, stdout, stderr)
	}
	var rep struct {
		Verified bool
		Upstream []struct {
			Image, Form, Subject, Issuer, TrustedRoot, Reason string
			OK                                                bool
			Rule                                              int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{}
	for _, u := range rep.Upstream {
		if !u.OK || u.Subject != testSubject || u.Issuer != testIssuer || !strings.HasPrefix(u.TrustedRoot, "sha256:") {
			t.Errorf("upstream check %+v", u)
		}
		forms[u.Image] = u.Form
	}
	if len(rep.Upstream) != 2 || forms[reg.Host+"/demo/worker:1.0"] != "sigstore-bundle" || forms[reg.Host+"/demo/api:1.0"] != "cosign-tag" {
		t.Errorf("upstream report %+v", rep.Upstream)
	}
	if code, stdout, _ := runCLI(t, nil, "verify", b, "--policy", pol); code != 0 || !strings.Contains(stdout, "upstream: [+] "+reg.Host+"/demo/worker:1.0") {
		t.Errorf("text report: exit %d\n%s", code, stdout)
	}
	// The same from a volume set, given as its directory or as its last
	// volume: the signature blobs are read by random access across volumes.
	vols := filepath.Join(dir, "vols")
	os.Mkdir(vols, 0o755)
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(dir, "airlock.yaml"), "-o", filepath.Join(vols, "up.airlock"), "--key", filepath.Join(dir, "release.key"), "--volume-size", "160KiB", "--frame-size", "64KiB"); code != 0 {
		t.Fatalf("pack --volume-size: %s", stderr)
	}
	parts, _ := filepath.Glob(filepath.Join(vols, "up.airlock.*"))
	if len(parts) < 2 {
		t.Fatalf("pack --volume-size 160KiB wrote %v, want several volumes", parts)
	}
	for _, p := range []string{vols, parts[len(parts)-1]} {
		code, stdout, stderr := runCLI(t, nil, "verify", p, "--policy", pol)
		if code != 0 || strings.Count(stdout, "upstream: [+]") != 2 {
			t.Errorf("verify %s with keyless rules: exit %d\n%s%s", p, code, stdout, stderr)
		}
	}

	for _, c := range []struct{ name, images, image, want string }{
		{"wrong identity", rule("worker", "subject: https://github.com/example/other/.github/workflows/release.yml@refs/heads/main", "sigstore.json"), "demo/worker:1.0", "wrong identity"},
		{"expired certificate", rule("expired", "subject: "+testSubject, "sigstore.json"), "demo/expired:1.0", "certificate not valid at the log entry's time"},
		{"no inclusion proof", rule("noproof", "subject: "+testSubject, "sigstore.json"), "demo/noproof:1.0", "inclusion proof"},
		{"unsigned image", rule("legacy", "subject: "+testSubject, "sigstore.json"), "demo/legacy:1.0", "no Sigstore bundle referrer"},
		{"key rule, wrong key", "      - match: \"" + reg.Host + "/demo/api:*\"\n        keys: [release]\n", "demo/api:1.0", "no cosign signature by release"},
		{"root the policy does not pin", rule("worker", "subject: "+testSubject, "other.json"), "demo/worker:1.0", "trusted root"},
	} {
		pol := policyWith(c.images)
		code, stdout, stderr := runCLI(t, nil, "verify", b, "--policy", pol)
		if code != exitRejected || !strings.Contains(stdout, c.image) || !strings.Contains(stdout, c.want) {
			t.Errorf("%s: exit %d (want 3); the report should name %s and say %q:\n%s%s", c.name, code, c.image, c.want, stdout, stderr)
		}
	}

	// A keys rule re-verifies the key-based cosign signature.
	code, stdout, stderr = runCLI(t, nil, "verify", b, "--policy", policyWith("      - match: \""+reg.Host+"/demo/api:*\"\n        keys: [upstream, release]\n"), "--json")
	if code != 0 || !strings.Contains(stdout, `"form": "cosign-key"`) || !strings.Contains(stdout, "key upstream") {
		t.Errorf("keys rule: exit %d\n%s%s", code, stdout, stderr)
	}

	// mirror re-checks too, and refuses before writing anything.
	dst := testkit.StartInProcess(t)
	pol = policyWith(rule("expired", "subject: "+testSubject, "sigstore.json"))
	code, res, stderr := mirrorCLI(t, nil, b, dst.Host+"/site", pol)
	if code != exitRejected || res.Verify == nil || len(res.Verify.Upstream) != 1 || res.Verify.Upstream[0].OK {
		t.Errorf("mirror with an unmet keyless rule: exit %d: %s", code, stderr)
	}
	if cat, err := remote.Catalog(context.Background(), mustRegistry(t, dst.Host)); err != nil || len(cat) != 0 {
		t.Errorf("mirror wrote %v to the registry before refusing (%v)", cat, err)
	}
	code, _, stderr = mirrorCLI(t, nil, b, dst.Host+"/site", policyWith(good))
	if code != 0 {
		t.Errorf("mirror with met keyless rules: exit %d: %s", code, stderr)
	}
}
