package main

import (
	"bytes"
	"context"
	"github.com/vbauerster/mpb/v8/decor"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// runCLIEvery is runCLI with progress lines every `every` on the
// (non-terminal) standard error.
func runCLIEvery(t *testing.T, environ map[string]string, every time.Duration, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }, progressEvery: every}
	code := run(context.Background(), args, e)
	return code, out.String(), errb.String()
}

// runCLITerminal is runCLI with standard error taken for a terminal.
func runCLITerminal(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }, stderrTTY: true}
	code := run(context.Background(), args, e)
	return code, out.String(), errb.String()
}

var progressLine = regexp.MustCompile(`(?m)^airlock (\w+): ([0-9.]+ \w?i?B) of ([0-9.]+ \w?i?B) \((\d+)%\), (\d+) of (\d+) artifacts? done, .*elapsed\)$`)

// TestProgressLinesMove: on a non-terminal, pack, mirror and install
// --registry write progress lines whose bytes and artifacts move (finding 4
// of issue 9: mirror and install --registry stayed at 0 B, and nothing was
// written without a terminal); --quiet writes none.
func TestProgressLinesMove(t *testing.T) {
	t.Parallel()
	reg := testkit.Start(t)
	rel := sampleRelease(t)
	dir := t.TempDir()
	b := filepath.Join(dir, "demo.airlock")
	env := map[string]string{"AIRLOCK_PASSWORD": testPassword}
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "release")); code != 0 {
		t.Fatal(stderr)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: demo\n    signers: [release]\n    threshold: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const every = 2 * time.Millisecond
	check := func(name string, stderr string) {
		t.Helper()
		lines := progressLine.FindAllStringSubmatch(stderr, -1)
		if len(lines) == 0 {
			t.Errorf("%s: no progress lines on stderr:\n%s", name, stderr)
			return
		}
		maxPct, maxArts := 0, 0
		for _, l := range lines {
			pct, _ := strconv.Atoi(l[4])
			arts, _ := strconv.Atoi(l[5])
			maxPct, maxArts = max(maxPct, pct), max(maxArts, arts)
		}
		if maxPct == 0 || maxArts == 0 {
			t.Errorf("%s: progress never moved (%d lines, last %q)", name, len(lines), lines[len(lines)-1][0])
		}
		t.Logf("%s: %d lines, last: %s", name, len(lines), lines[len(lines)-1][0])
	}
	code, _, stderr := runCLIEvery(t, env, every, "pack", "-f", filepath.Join(rel, "airlock.yaml"), "-o", b, "--key", filepath.Join(dir, "release.key"))
	if code != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	check("pack", stderr)
	code, _, stderr = runCLIEvery(t, nil, every, "mirror", b, "--to", reg.Host+"/m", "--insecure-registry", reg.Host, "--policy", pol)
	if code != 0 {
		t.Fatalf("mirror: %s", stderr)
	}
	check("mirror", stderr)
	code, _, stderr = runCLIEvery(t, nil, every, "install", b, "--root", t.TempDir(), "--registry", reg.Host+"/i", "--insecure-registry", reg.Host, "--policy", pol)
	if code != 0 {
		t.Fatalf("install: %s", stderr)
	}
	check("install --registry", stderr)
	// On a terminal: a bar per blob pushed, and the overall bar, complete
	// at the end (a buffer is 40 columns wide for mpb: the counters are cut).
	code, _, stderr = runCLITerminal(t, nil, "mirror", b, "--to", reg.Host+"/t", "--insecure-registry", reg.Host, "--policy", pol)
	if code != 0 || !regexp.MustCompile(`total: (\d+)/(\d+) artifacts`).MatchString(stderr) || !completeBar(stderr) || !strings.Contains(stderr, "push sha256:") {
		t.Errorf("mirror on a terminal: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runCLIEvery(t, nil, every, "mirror", b, "--to", reg.Host+"/q", "--insecure-registry", reg.Host, "--policy", pol, "--quiet")
	if code != 0 || stderr != "" {
		t.Errorf("mirror --quiet: exit %d, stderr %q", code, stderr)
	}
}

// TestOverallBarFollowsPlans: on a terminal, the overall bar keeps moving
// when a second library adds to the plan (mirror after verify), instead of
// stopping at the first plan's total.
func TestOverallBarFollowsPlans(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	pr := newProgress(&env{stderr: &errb, stderrTTY: true}, false, "mirror")
	pr.Plan(100, 1)
	pr.Moved(60)
	pr.Plan(100, 0)
	pr.Moved(50) // past the first plan's total
	pr.Moved(50)
	pr.Moved(40)
	pr.ArtifactDone()
	if pr.overall.Completed() {
		t.Error("the overall bar completed at the first plan's total")
	}
	if got := pr.overall.Current(); got != 200 {
		t.Errorf("overall bar at %d of 200", got)
	}
	pr.wait()
	if !strings.Contains(errb.String(), "total: 1/1 artifacts") {
		t.Errorf("final bar:\n%s", errb.String())
	}
}

// completeBar reports whether the overall bar reached N/N artifacts.
func completeBar(stderr string) bool {
	for _, m := range regexp.MustCompile(`total: (\d+)/(\d+) artifacts`).FindAllStringSubmatch(stderr, -1) {
		if m[1] == m[2] {
			return true
		}
	}
	return false
}

// TestBarUnits: the bars count bytes in the units people write (B, KiB,
// MiB), never mpb's lowercase "b".
func TestBarUnits(t *testing.T) {
	t.Parallel()
	got, _ := byteCounters().Decor(decor.Statistics{Current: 512, Total: 3 << 20})
	if got != "512 B / 3.0 MiB" {
		t.Errorf("counters %q, want %q", got, "512 B / 3.0 MiB")
	}
	speed, _ := byteSpeed(time.Now().Add(-time.Second)).Decor(decor.Statistics{Current: 2048})
	if !strings.HasSuffix(speed, "KiB/s") && !strings.HasSuffix(speed, " B/s") {
		t.Errorf("speed %q", speed)
	}
}
