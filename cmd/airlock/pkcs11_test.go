//go:build cgo

package main

import (
	"crypto/elliptic"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThalesGroup/crypto11"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// hsmToken initialises a SoftHSM2 token and generates ECDSA P-256 key
// pairs labelled labels on it, inside the token (crypto11, as an HSM
// administrator's tool would).
func hsmToken(t *testing.T, labels ...string) *testkit.SoftHSM {
	t.Helper()
	h := testkit.NewSoftHSM(t, "airlock-release")
	c, err := crypto11.Configure(&crypto11.Config{Path: h.Module, TokenLabel: h.Token, Pin: h.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, l := range labels {
		if _, err := c.GenerateECDSAKeyPairWithLabel([]byte{byte(i + 1)}, []byte(l), elliptic.P256()); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// TestPKCS11ReleaseKeys is the regulated release team's path: the release
// and security keys live in a token (SoftHSM2); export-public writes the
// PEMs the policy names; pack and sign use pkcs11: URIs (PIN from the
// environment, then from a pin-source file); airlock verifies the 2-of-2
// policy; stock cosign accepts the token's bundle signature; mirror
// --sign-key signs the mirrored images with a token key that cosign accepts.
func TestPKCS11ReleaseKeys(t *testing.T) {
	cs := newCosign(t)
	h := hsmToken(t, "release", "security", "site")
	dir := cs.Dir
	uri := func(object string) string { return "pkcs11:token=" + h.Token + ";object=" + object }
	env := map[string]string{"AIRLOCK_PKCS11_PIN": h.PIN, "AIRLOCK_PKCS11_MODULE": h.Module}

	fps := map[string]string{}
	for _, k := range []string{"release", "security", "site"} {
		code, stdout, stderr := runCLI(t, env, "key", "export-public", "--key", uri(k), "-o", filepath.Join(dir, k))
		if code != 0 {
			t.Fatalf("key export-public %s: exit %d: %s", k, code, stderr)
		}
		code, fp, _ := runCLI(t, nil, "key", "fingerprint", filepath.Join(dir, k+".pub"))
		if code != 0 || !strings.Contains(stdout, strings.Fields(fp)[0]) || !strings.Contains(fp, "ecdsa-p256") {
			t.Fatalf("fingerprint of the exported %s.pub %q not in %q", k, fp, stdout)
		}
		fps[k] = strings.Fields(fp)[0]
	}
	// Without --output the PEM goes to stdout, byte-identical to the file.
	_, pemOut, _ := runCLI(t, env, "key", "export-public", "--key", uri("release"))
	if want, _ := os.ReadFile(filepath.Join(dir, "release.pub")); pemOut != string(want) {
		t.Errorf("export-public to stdout:\n%s\nwant:\n%s", pemOut, want)
	}
	// export-public refuses to overwrite.
	if code, _, stderr := runCLI(t, env, "key", "export-public", "--key", uri("release"), "-o", filepath.Join(dir, "release")); code == 0 || !strings.Contains(stderr, "release.pub") {
		t.Errorf("export-public over an existing file: exit %d: %s", code, stderr)
	}

	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: demo\n    signers: [release, security]\n    threshold: 2\n"), 0o644)
	rel := sampleRelease(t)
	b := filepath.Join(dir, "demo.airlock")
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", b, "--key", uri("release")); code != 0 {
		t.Fatalf("pack --key pkcs11: exit %d: %s", code, stderr)
	}
	if code, _, _ := runCLI(t, nil, "verify", b, "--policy", pol); code != exitRejected {
		t.Fatalf("one of two signatures: exit %d, want 3", code)
	}
	// The second signature: PIN from a pin-source file, module from the URI.
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(h.PIN+"\n"), 0o600)
	code, stdout, stderr := runCLI(t, nil, "sign", b, "--key", uri("security")+"?pin-source="+pinFile+"&module-path="+h.Module)
	if code != 0 || !strings.Contains(stdout, fps["security"]) {
		t.Fatalf("sign --key pkcs11 with pin-source: exit %d: %s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, nil, "verify", b, "--policy", pol)
	if code != 0 || !strings.Contains(stdout, "VERIFIED") {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}

	// Stock cosign checks each token signature with the exported PEM.
	x := filepath.Join(dir, "x")
	os.MkdirAll(x, 0o755)
	tarBin := testkit.RequireTool(t, "tar", "apt-get install tar zstd")
	if out, err := exec.Command(tarBin, "--zstd", "-xf", b, "-C", x, "airlock/signatures.json", "index.json").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	check := func(pub string) error {
		_, err := cs.Run("verify-blob-attestation", "--key", filepath.Join(dir, pub),
			"--signature", filepath.Join(x, "airlock/signatures.json"),
			"--type", "https://airlock.dev/bundle/v1", "--insecure-ignore-tlog=true", filepath.Join(x, "index.json"))
		return err
	}
	for _, k := range []string{"release.pub", "security.pub"} {
		if err := check(k); err != nil {
			t.Errorf("cosign rejected the token signature of %s: %v", k, err)
		}
	}
	if err := check("site.pub"); err == nil {
		t.Error("cosign accepted site.pub, which never signed the bundle")
	}

	// mirror --sign-key with a token key: cosign verifies the site signature.
	dst := testkit.Start(t)
	dest := dst.Host + "/site"
	code, res, stderr := mirrorCLI(t, env, b, dest, pol, "--sign-key", uri("site"))
	if code != 0 || res.Signed == 0 {
		t.Fatalf("mirror --sign-key pkcs11: exit %d, signed %d: %s", code, res.Signed, stderr)
	}
	signedRef := ""
	for _, m := range res.Mappings {
		if m.Kind == "image" {
			repo, _, _ := strings.Cut(m.Target, "@")
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			signedRef = repo + "@" + m.Digest
			break
		}
	}
	if signedRef == "" {
		t.Fatalf("no image in the mirror mappings: %+v", res.Mappings)
	}
	if _, err := cs.Run("verify", "--key", filepath.Join(dir, "site.pub"), "--insecure-ignore-tlog=true", "--allow-insecure-registry", signedRef); err != nil {
		t.Errorf("cosign verify --key site.pub %s: %v", signedRef, err)
	}
	if _, err := cs.Run("verify", "--key", filepath.Join(dir, "release.pub"), "--insecure-ignore-tlog=true", "--allow-insecure-registry", signedRef); err == nil {
		t.Errorf("cosign verify --key release.pub %s passed; release never signed the image", signedRef)
	}

	// Failures name the key and say what to do; nothing is signed.
	before, _ := os.ReadFile(b)
	t.Setenv("VAULT_ADDR", "") // the provider reads it from the process
	t.Setenv("BAO_ADDR", "")
	for _, c := range []struct {
		name string
		env  map[string]string
		key  string
		code int
		want string
	}{
		{"wrong PIN", map[string]string{"AIRLOCK_PKCS11_PIN": "000000", "AIRLOCK_PKCS11_MODULE": h.Module}, uri("release"), exitError, "refused the PIN"},
		{"no PIN", map[string]string{"AIRLOCK_PKCS11_MODULE": h.Module}, uri("release"), exitError, "AIRLOCK_PKCS11_PIN"},
		{"no such key", env, uri("nobody"), exitError, `object="nobody"`},
		{"no module", map[string]string{"AIRLOCK_PKCS11_PIN": h.PIN, "AIRLOCK_PKCS11_MODULE": "/nonexistent/p11.so"}, uri("release"), exitError, "/nonexistent/p11.so"},
		{"bad URI", env, "pkcs11:object=release", exitUsage, "token="},
		{"PIN in the URI", env, uri("release") + "?pin-value=123456", exitUsage, "pin-source"},
		// A KMS key goes to its provider (no network here: hashivault
		// without VAULT_ADDR stops before any request).
		{"KMS without its server", env, "hashivault://release", exitError, "VAULT_ADDR"},
	} {
		code, _, stderr := runCLI(t, c.env, "sign", b, "--key", c.key)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, c.key) {
			t.Errorf("%s: exit %d (want %d), stderr %q should name the key and contain %q", c.name, code, c.code, stderr, c.want)
		}
	}
	if after, _ := os.ReadFile(b); string(after) != string(before) {
		t.Error("a failed sign changed the bundle")
	}
}
