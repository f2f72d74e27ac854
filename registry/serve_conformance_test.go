package registry_test

import (
	"context"
	"debug/buildinfo"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/registry"
)

// The OCI distribution-spec conformance program, pinned. `make
// tools-conformance` builds this version into the tools cache; the Makefile
// names it too (OCI_CONFORMANCE_VERSION): change both together.
const (
	conformanceModule  = "github.com/opencontainers/distribution-spec/conformance"
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"
	conformanceBinary  = "oci-conformance"
	// defaultToolsCache is the Makefile's TOOLS_CACHE, searched when the
	// binary is not in PATH (a plain `go test`).
	defaultToolsCache = "/var/cache/airlock-ci/bin"
	// minConformancePass is the fewest passing test cases (junit leaves)
	// of a full run; the pinned version passes 687 against Server.
	minConformancePass = 650
	// conformanceTimeout bounds one run (about 10 s on a quiet machine).
	conformanceTimeout = 5 * time.Minute
)

// conformanceTool returns the pinned conformance program: from PATH, else
// from the default tools cache. It is missing: the test fails under CI=true
// and is skipped otherwise. It is another version: the test fails.
func conformanceTool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath(conformanceBinary)
	if err != nil {
		p := filepath.Join(defaultToolsCache, conformanceBinary)
		if fi, serr := os.Stat(p); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			bin = p
		} else {
			bin = testkit.RequireTool(t, conformanceBinary, "make tools-conformance")
		}
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("%s: not a Go program with build information: %v", bin, err)
	}
	if info.Main.Path != conformanceModule || info.Main.Version != conformanceVersion {
		t.Fatalf("%s is %s@%s; the test pins %s@%s: run make tools-conformance (or update the pin here and in the Makefile)",
			bin, info.Main.Path, info.Main.Version, conformanceModule, conformanceVersion)
	}
	return bin
}

// junitReport is the part of the conformance program's junit.xml the test reads.
type junitReport struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Status    string `xml:"status,attr"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestServeOCIConformance runs the OCI distribution-spec conformance program
// (spec version 1.1, every API and data group it enables by default,
// including sha512 content and non-distributable layers) against a Server
// with default options, and fails on any test case that is not a pass, a
// skip or a disabled one. results.yaml, junit.xml and report.html stay in
// the test's temporary directory.
func TestServeOCIConformance(t *testing.T) {
	bin := conformanceTool(t)
	// The library logs each of the suite's many 4xx answers as an error
	// through the process-wide logrus logger; the suite's own report says
	// what went wrong.
	prevOut := logrus.StandardLogger().Out
	logrus.SetOutput(io.Discard)
	t.Cleanup(func() { logrus.SetOutput(prevOut) })
	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	results := filepath.Join(t.TempDir(), "results")

	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	// An empty working directory: no oci-conformance.yaml is picked up.
	cmd.Dir = t.TempDir()
	// Only these variables: an OCI_* setting of the caller must not change
	// what is tested.
	cmd.Env = []string{
		"HOME=" + cmd.Dir,
		"OCI_REGISTRY=" + srv.host,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR=" + results,
		"OCI_LOG=error",
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("conformance run did not finish within %v:\n%s", conformanceTimeout, tail(out, 4000))
	}

	raw, rerr := os.ReadFile(filepath.Join(results, "junit.xml"))
	if rerr != nil {
		t.Fatalf("conformance run wrote no junit.xml (exit: %v): %v\n%s", err, rerr, tail(out, 4000))
	}
	var rep junitReport
	if err := xml.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	if len(rep.Suites) != 1 {
		t.Fatalf("junit.xml has %d test suites, want 1", len(rep.Suites))
	}
	s := rep.Suites[0]
	pass := 0
	for _, c := range s.Cases {
		switch c.Status {
		case "passed":
			pass++
		case "skipped":
		default:
			t.Errorf("%s: %s\n%s", c.Name, c.Status, strings.TrimSpace(c.SystemOut))
		}
	}
	t.Logf("OCI conformance %s: %d test cases passed; suite totals: %d results, %d FAIL, %d Error, %d Skip, %d Disabled (results in %s)",
		conformanceVersion, pass, s.Tests, s.Failures, s.Errors, s.Skipped, s.Disabled, results)
	if s.Failures != 0 || s.Errors != 0 {
		t.Errorf("conformance: %d failures, %d errors", s.Failures, s.Errors)
	}
	if err != nil {
		t.Errorf("conformance program exited with %v:\n%s", err, tail(out, 4000))
	}
	// A run that tests nothing would pass the checks above.
	if pass < minConformancePass {
		t.Errorf("only %d test cases passed; a full run passes %d or more", pass, minConformancePass)
	}

	// The groups that needed our layer must have run and passed, not been
	// disabled by a changed default.
	var res struct {
		Data map[string]string `yaml:"data"`
		APIs map[string]string `yaml:"apis"`
	}
	yml, err := os.ReadFile(filepath.Join(results, "results.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(yml, &res); err != nil {
		t.Fatalf("results.yaml: %v", err)
	}
	for _, group := range []string{"Blobs sha256", "Blobs sha512", "Digest Algorithm sha512", "Non-distributable Layers", "Image", "Index", "Nested Index", "Artifacts with Subject", "Missing Subject"} {
		if got := res.Data[group]; got != "Pass" {
			t.Errorf("results.yaml: data group %q is %q, want Pass", group, got)
		}
	}
	for _, api := range []string{"Referrers", "Blob mount", "Blob post only", "Manifest put by digest", "Manifest delete"} {
		if got := res.APIs[api]; got != "Pass" {
			t.Errorf("results.yaml: API %q is %q, want Pass", api, got)
		}
	}
	if _, err := os.Stat(filepath.Join(results, "report.html")); err != nil {
		t.Errorf("report.html: %v", err)
	}
}

// tail returns the last n bytes of b, for failure messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
