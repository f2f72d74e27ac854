package airlock_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/airlock-dev/airlock"

// deps lists the packages pkg links (itself included), as go list -deps
// sees them for a build without tests.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+"/"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	list := strings.Fields(string(out))
	if len(list) < 5 {
		t.Fatalf("go list -deps %s listed only %v", pkg, list)
	}
	return list
}

// imports lists the packages pkg imports directly.
func imports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+"/"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestLayering keeps the architecture of DESIGN.md: one job per package and
// data flowing one way, from pack to install.
func TestLayering(t *testing.T) {
	t.Parallel()
	forbidden := []struct {
		pkgs   []string
		prefix []string
		why    string
	}{
		{[]string{"bundle", "policy", "verify", "cosign"}, []string{"net/http", "github.com/sigstore/sigstore-go", module + "/keyless"},
			"the trust decision is offline: these must not link the network (sigstore-go links net/http; package keyless is composed by the CLI)"},
		{[]string{"report", "attest", "audit"}, []string{"net/http"},
			"the reviewer's report, the verification record and the audit log are made offline"},
		{[]string{"audit"}, []string{module + "/bundle", module + "/verify", module + "/policy", module + "/mirror", module + "/registry", module + "/install", module + "/report", module + "/attest"},
			"audit is a leaf: install, mirror and the CLI call it, it calls none of them"},
		{[]string{"install"}, []string{module + "/mirror", module + "/registry", module + "/source", module + "/pack",
			"github.com/google/go-containerregistry/pkg/v1/remote", "github.com/distribution/distribution"},
			"install is a peer of mirror: the CLI composes them; install links no registry code"},
		{[]string{"mirror"}, []string{module + "/install", module + "/registry"},
			"mirror is a peer of install and a client of registries, not a server"},
		{[]string{"bundle", "policy", "verify", "cosign", "mirror", "registry", "install", "report", "attest", "audit"}, []string{module + "/pack", module + "/source"},
			"connected-side packages are not linked by isolated-side ones"},
		{[]string{"bundle"}, []string{module + "/policy", module + "/verify", module + "/mirror", module + "/install", module + "/cosign"},
			"bundle is the format only"},
		{[]string{"bundle", "policy", "verify", "cosign", "mirror", "registry", "install"}, []string{"helm.sh/helm", "k8s.io"},
			"Helm's library packages and renders charts at pack time only; the isolated side reads charts as OCI artifacts"},
		{[]string{"bundle", "policy", "verify", "cosign", "mirror", "registry", "install", "pack", "source", "internal/keys"},
			[]string{"github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11", module + "/internal/pkcs11key"},
			"PKCS#11 needs cgo and loads a native module: only the CLI links it (internal/pkcs11key)"},
		{[]string{"bundle", "policy", "verify", "cosign", "mirror", "registry", "install", "pack", "source", "internal/keys"},
			[]string{module + "/internal/kmskey", "github.com/sigstore/sigstore/pkg/signature/kms", "github.com/aws/aws-sdk-go-v2", "cloud.google.com/go/kms", "github.com/Azure/azure-sdk-for-go", "github.com/hashicorp/vault"},
			"the KMS clients reach cloud services: only the CLI links them (internal/kmskey)"},
	}
	for _, f := range forbidden {
		for _, pkg := range f.pkgs {
			for _, d := range deps(t, pkg) {
				for _, p := range f.prefix {
					if d == p || strings.HasPrefix(d, p+"/") {
						t.Errorf("%s links %s: %s", pkg, d, f.why)
					}
				}
			}
		}
	}
}

// TestInternalIsLeaf: nothing under internal/ imports a top-level package,
// and cosign imports none either.
func TestInternalIsLeaf(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", module+"/internal/...", module+"/cosign").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 5 {
		t.Fatalf("go list listed only %v", pkgs)
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p, module+"/")
		for _, imp := range imports(t, rel) {
			if strings.HasPrefix(imp, module+"/") && !strings.HasPrefix(imp, module+"/internal/") {
				t.Errorf("%s imports %s: internal packages and cosign are leaves", rel, imp)
			}
		}
	}
}
