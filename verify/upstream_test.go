package verify_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// imagesPolicy is the default 2-of-3 policy plus an images rule.
func imagesPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	f := getFixture(t)
	dir := t.TempDir()
	for _, k := range []string{"release", "security", "ops"} {
		b, err := os.ReadFile(filepath.Join(f.dir, k+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, k+".pub"), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "root.json"), []byte("{}"), 0o644)
	p := filepath.Join(dir, "policy.yaml")
	os.WriteFile(p, []byte("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\n  ops: { publicKey: ops.pub }\n"+
		"bundles:\n  - match: demo\n    signers: [release, security, ops]\n    threshold: 2\n    images:\n"+
		"      - match: \"registry.example/**\"\n        keyless: { issuer: https://issuer.example, subject: ci@example.com, trustedRoot: root.json }\n"), 0o644)
	pol, err := policy.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// TestUpstreamFailsClosed: a rule with images entries is never skipped; a
// verifier's findings reject the bundle before any body byte is consumed.
func TestUpstreamFailsClosed(t *testing.T) {
	t.Parallel()
	b := packDemo(t, bundle.StatementOptions{}, "release", "security")
	pol := imagesPolicy(t)
	touched := false
	hooks := verify.Options{Policy: pol, Now: soon,
		Trusted: func(context.Context, *bundle.Head) error { touched = true; return nil },
		Blob:    func(context.Context, *bundle.BodyEntry) error { touched = true; return nil },
	}
	vr := func(up verify.UpstreamVerifier) (*verify.Report, error) {
		o := hooks
		o.Upstream = up
		return verify.Verify(context.Background(), bytes.NewReader(b), o)
	}

	rep, err := vr(nil)
	if !errors.Is(err, verify.ErrUpstreamUnchecked) || !verify.IsFailure(err) || rep.Stage != "upstream" || rep.Verified {
		t.Fatalf("no upstream verifier: %v (stage %q)", err, rep.Stage)
	}
	failing := func(context.Context, *bundle.Head, *policy.Rule) ([]verify.UpstreamCheck, error) {
		return []verify.UpstreamCheck{{Image: "registry.example/a:1", Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)), Reason: "wrong identity"}}, nil
	}
	rep, err = vr(failing)
	if !errors.Is(err, verify.ErrUpstream) || !verify.IsFailure(err) || len(rep.Upstream) != 1 || rep.Verified {
		t.Fatalf("failing check: %v %+v", err, rep.Upstream)
	}
	broken := func(context.Context, *bundle.Head, *policy.Rule) ([]verify.UpstreamCheck, error) {
		return nil, errors.New("disk on fire")
	}
	if _, err = vr(broken); err == nil || verify.IsFailure(err) {
		t.Fatalf("a verifier that could not run: %v (want an error that is not a rejection)", err)
	}
	if touched {
		t.Fatal("a consumer hook ran although the upstream requirement failed")
	}
	ok := func(_ context.Context, h *bundle.Head, r *policy.Rule) ([]verify.UpstreamCheck, error) {
		if len(r.Images) != 1 || r.Images[0].Keyless.RootDigest == "" || !r.Images[0].Matches("registry.example/team/app:1.0") || r.Images[0].Matches("other.example/app:1.0") {
			t.Errorf("rule handed to the verifier: %+v", r.Images)
		}
		return []verify.UpstreamCheck{{Image: "registry.example/a:1", OK: true}}, nil
	}
	if rep, err = vr(ok); err != nil || !rep.Verified || !touched {
		t.Fatalf("satisfied requirement: %v", err)
	}
}
