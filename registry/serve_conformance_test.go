package registry_test

import (
	"context"
	"debug/buildinfo"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/bundle"
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
	quietLogrus(t)
	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	out, results, err := runConformance(t, bin, srv.host, true, "OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2")

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

// TestServeBundleOCIConformance runs the conformance program's read-only
// mode (no push API: OCI_API_PUSH=false, deletes and upload cancel off)
// against a Server serving a bundle, with the read-only data taken from the
// bundle's head: the tag, manifests, blobs and referrers subject of the
// repository demo/api (a multi-platform image with an SBOM referrer).
func TestServeBundleOCIConformance(t *testing.T) {
	bin := conformanceTool(t)
	f := newBundleFixture(t)
	framed := filepath.Join(t.TempDir(), "demo.airlock")
	f.rewrite(t, framed, bundle.WriteOptions{FrameSize: testFrameSize}, nil)
	srv, a := serveBundle(t, framed)
	h := a.Head()

	const repo = "demo/api"
	var manifests, blobs []string
	var subject string
	for _, loc := range mustLocations(t, h) {
		if loc.Repo != repo {
			continue
		}
		art := h.Manifest.Artifacts[loc.Artifact]
		if art.Kind == bundle.KindImage {
			subject = art.Digest
		}
		c, err := h.Content(loc.Artifact)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.Manifests {
			manifests = append(manifests, m.Digest)
		}
		for _, cf := range c.Configs {
			blobs = append(blobs, cf.Digest)
		}
		for _, l := range c.Layers {
			blobs = append(blobs, l.Digest)
		}
	}
	if subject == "" || len(manifests) < 3 || len(blobs) < 3 {
		t.Fatalf("%s in the bundle: subject %q, %d manifests, %d blobs", repo, subject, len(manifests), len(blobs))
	}
	out, _, err := runConformance(t, bin, srv.host, false,
		"OCI_REPO1="+repo,
		"OCI_REPO2="+repo,
		"OCI_API_PUSH=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_BLOBS_UPLOAD_CANCEL=false",
		"OCI_RO_DATA_TAGS=1.0",
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "),
		"OCI_RO_DATA_REFERRERS="+subject)
	// The pinned program crashes (a nil pointer in ReportResultsYAML)
	// when push is disabled, after it has printed its summary and before
	// it writes results.yaml and junit.xml: the test reads the summary.
	sum := parseSummary(string(out))
	t.Logf("OCI conformance %s, read-only against serve --bundle (exit: %v):\n%s", conformanceVersion, err, tail(out, 2500))
	if sum.result != "Pass" || sum.counts["FAIL"] != 0 || sum.counts["Error"] != 0 {
		t.Errorf("conformance result %q: %d FAIL, %d Error", sum.result, sum.counts["FAIL"], sum.counts["Error"])
	}
	if sum.counts["Pass"] < minBundleConformancePass {
		t.Errorf("%d test cases passed; the read-only run passes %d", sum.counts["Pass"], minBundleConformancePass)
	}
	for _, group := range []string{"Ping", "Tag listing", "Blob get", "Blob head", "Manifest get by digest", "Manifest get by tag",
		"Manifest head by digest", "Manifest head by tag", "Referrers", "Read Only Inputs", "Invalid Manifest Digest"} {
		if got := sum.groups[group]; got != "Pass" {
			t.Errorf("%s: %q, want Pass", group, got)
		}
	}
	for group, st := range sum.groups {
		if st != "Pass" && st != "Disabled" && group != "Blob get range" {
			t.Errorf("%s: %s", group, st)
		}
	}
}

// runConformance runs the conformance program bin against the registry at
// host (plain HTTP, spec 1.1) with extra OCI_* settings, in an empty working
// directory (no oci-conformance.yaml is picked up) and with only these
// variables (an OCI_* setting of the caller must not change what is
// tested). It returns the program's output (standard error too when
// combined), its results directory and its exit error.
func runConformance(t *testing.T, bin, host string, combined bool, extra ...string) (out []byte, results string, err error) {
	t.Helper()
	results = filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{
		"HOME=" + cmd.Dir,
		"OCI_REGISTRY=" + host,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_RESULTS_DIR=" + results,
		"OCI_LOG=error",
	}, extra...)
	if combined {
		out, err = cmd.CombinedOutput()
	} else {
		out, err = cmd.Output()
	}
	if ctx.Err() != nil {
		t.Fatalf("conformance run did not finish within %v:\n%s", conformanceTimeout, tail(out, 4000))
	}
	return out, results, err
}

// conformanceSummary is what the conformance program prints at its end.
type conformanceSummary struct {
	result string
	counts map[string]int    // Pass, FAIL, Error, Skip, Disabled, Total
	groups map[string]string // API and data groups: Pass, FAIL, Disabled, Unknown...
}

var (
	summaryResult = regexp.MustCompile(`(?m)^\s*OCI Conformance Result: (\S+)`)
	summaryLine   = regexp.MustCompile(`(?m)^\s*([A-Za-z][A-Za-z0-9 ]*?)\.+:\s+(\S+)\s*$`)
)

func parseSummary(out string) conformanceSummary {
	s := conformanceSummary{counts: map[string]int{}, groups: map[string]string{}}
	if m := summaryResult.FindStringSubmatch(out); m != nil {
		s.result = m[1]
	}
	for _, m := range summaryLine.FindAllStringSubmatch(out, -1) {
		if n, err := strconv.Atoi(m[2]); err == nil {
			s.counts[m[1]] = n
		} else {
			s.groups[m[1]] = m[2]
		}
	}
	return s
}

// minBundleConformancePass is the fewest passing test cases of the
// read-only run against serve --bundle.
const minBundleConformancePass = 30

func mustLocations(t *testing.T, h *bundle.Head) []bundle.Location {
	t.Helper()
	locs, err := h.Locations(bundle.LocateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return locs
}
