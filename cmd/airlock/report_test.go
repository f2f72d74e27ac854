package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/report"
)

// reportRelease is the sample release signed by release and security (a
// verified 2-of-3 bundle), with its head.
func reportRelease(t *testing.T) (dir, b, pol string, env map[string]string, head *bundle.Head) {
	t.Helper()
	dir, b, pol, env = signedRelease(t)
	if code, _, stderr := runCLI(t, env, "sign", b, "--key", filepath.Join(dir, "security.key")); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	head, err := bundle.ReadHeadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return dir, b, pol, env, head
}

// TestReportInBrowser renders the sample bundle's report in real headless
// chromium to a PNG and a PDF, and reads the PDF back with pdftotext: the
// verdict, every signer and every artifact and file digest are in it.
func TestReportInBrowser(t *testing.T) {
	t.Parallel()
	chromium := testkit.RequireTool(t, "chromium", "apt-get install chromium (sudo make tools)")
	pdftotext := testkit.RequireTool(t, "pdftotext", "apt-get install poppler-utils (sudo make tools)")
	dir, b, pol, _, head := reportRelease(t)
	html := filepath.Join(dir, "report.html")
	code, _, stderr := runCLI(t, nil, "report", b, "--policy", pol, "-o", html, "-q")
	if code != exitOK || !strings.Contains(stderr, "VERIFIED") {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	assertSelfContained(t, page)

	png, pdf := filepath.Join(dir, "report.png"), filepath.Join(dir, "report.pdf")
	runTool(t, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "chromium"),
		"--window-size=1280,4000", "--screenshot="+png, "file://"+html)
	runTool(t, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "chromium"),
		"--no-pdf-header-footer", "--print-to-pdf="+pdf, "file://"+html)
	for _, f := range []struct {
		path  string
		magic string
	}{{png, "\x89PNG"}, {pdf, "%PDF"}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatalf("chromium did not write %s: %v", f.path, err)
		}
		if len(data) < 10_000 || !bytes.HasPrefix(data, []byte(f.magic)) {
			t.Fatalf("%s: %d bytes, not a real %q file", f.path, len(data), f.magic)
		}
	}
	text := string(runTool(t, pdftotext, pdf, "-"))
	flat := strings.Join(strings.Fields(text), "")
	want := []string{report.Verified, "release", "security", head.Manifest.Root.Digest, head.ManifestDigest}
	for _, a := range head.Manifest.Artifacts {
		want = append(want, a.Digest)
	}
	for _, f := range head.ContentFiles() {
		want = append(want, f.SHA256)
	}
	var rep struct {
		Verification struct {
			Signers []struct{ KeyID string } `json:"signers"`
		} `json:"verification"`
	}
	code, stdout, _ := runCLI(t, nil, "report", b, "--policy", pol, "--format", "json", "-q")
	if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Verification.Signers) != 2 {
		t.Fatalf("report --format json: exit %d\n%s", code, stdout)
	}
	for _, s := range rep.Verification.Signers {
		want = append(want, s.KeyID)
	}
	for _, w := range want {
		if !strings.Contains(text, w) && !strings.Contains(flat, w) {
			t.Errorf("the PDF's text lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("pdftotext:\n%s", text)
	}
	if os.Getenv("AIRLOCK_KEEP_REPORT") != "" {
		// For looking at the rendering by eye: AIRLOCK_KEEP_REPORT=DIR.
		for _, f := range []string{html, png, pdf} {
			data, _ := os.ReadFile(f)
			os.WriteFile(filepath.Join(os.Getenv("AIRLOCK_KEEP_REPORT"), filepath.Base(f)), data, 0o644)
		}
	}
}

// TestReportFormatsAndVerdicts: Markdown carries the same digests; a
// head-only report says so; a rejected bundle still gets a report and
// exit status 3.
func TestReportFormatsAndVerdicts(t *testing.T) {
	t.Parallel()
	dir, b, pol, env, head := reportRelease(t)

	md := filepath.Join(dir, "report.md")
	if code, _, stderr := runCLI(t, nil, "report", b, "--policy", pol, "-o", md, "-q"); code != exitOK {
		t.Fatalf("report md: exit %d: %s", code, stderr)
	}
	text, _ := os.ReadFile(md)
	for _, w := range []string{"**VERIFIED**", head.Manifest.Root.Digest, "| **release** |", "| **security** |", "All 4 components", "pkg:golang/github.com/google/uuid@v1.6.0"} {
		if !strings.Contains(string(text), w) {
			t.Errorf("the Markdown report lacks %q", w)
		}
	}
	for _, a := range head.Manifest.Artifacts {
		if !strings.Contains(string(text), a.Digest) {
			t.Errorf("the Markdown report lacks artifact %s", a.Digest)
		}
	}

	code, stdout, _ := runCLI(t, nil, "report", b, "--policy", pol, "--head-only", "--format", "json", "-q")
	var doc report.Document
	if code != exitOK || json.Unmarshal([]byte(stdout), &doc) != nil {
		t.Fatalf("head-only json: exit %d\n%s", code, stdout)
	}
	if doc.Verdict != report.HeadOnly || doc.Verification.Verified || !doc.Verification.HeadOnly || doc.Airlock != version() {
		t.Fatalf("head-only document: verdict %q verified %v headOnly %v", doc.Verdict, doc.Verification.Verified, doc.Verification.HeadOnly)
	}
	code, stdout, _ = runCLI(t, nil, "report", b, "--policy", pol, "--head-only", "-q")
	if code != exitOK || !strings.Contains(stdout, "TRUSTED (HEAD ONLY)") || !strings.Contains(stdout, "no content digest was checked") {
		t.Fatalf("head-only html: exit %d", code)
	}

	// Rejected: a policy requiring three signers.
	strict := filepath.Join(dir, "strict.yaml")
	polText, _ := os.ReadFile(pol)
	os.WriteFile(strict, bytes.Replace(polText, []byte("threshold: 2"), []byte("threshold: 3"), 1), 0o644)
	out := filepath.Join(dir, "rejected.html")
	code, _, stderr := runCLI(t, env, "report", b, "--policy", strict, "-o", out, "-q")
	if code != exitRejected || !strings.Contains(stderr, "REJECTED") {
		t.Fatalf("rejected: exit %d: %s", code, stderr)
	}
	page, _ := os.ReadFile(out)
	if !strings.Contains(string(page), `class="verdict bad"`) || !strings.Contains(string(page), "2 of 3 required distinct signers") {
		t.Fatal("the rejected report does not show the verdict and the failed check")
	}
	if !strings.Contains(string(page), "not trusted, so its content was not read") {
		t.Error("the rejected report does not say why the SBOM components are missing")
	}

	// Usage errors.
	for _, args := range [][]string{{"report", b}, {"report", b, "--policy", pol, "--format", "pdf"}, {"report", "--policy", pol}} {
		if code, _, _ := runCLI(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// assertSelfContained fails when the page would load anything: no src or
// href attribute, no CSS url() or @import.
func assertSelfContained(t *testing.T, page []byte) {
	t.Helper()
	for _, re := range []*regexp.Regexp{regexp.MustCompile(`(?i)\s(src|href|srcset|action)\s*=`), regexp.MustCompile(`(?i)url\(`), regexp.MustCompile(`(?i)@import`)} {
		if m := re.Find(page); m != nil {
			t.Errorf("the report loads external content: %q", m)
		}
	}
}

// runTool runs a real tool with a deadline and returns its stdout.
func runTool(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}
