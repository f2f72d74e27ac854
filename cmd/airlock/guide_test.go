package main

// TestGuideExamples runs the examples of docs/guide.md as written. The
// conventions (markers, the world the examples run in) are described at
// the top of the guide, under "The examples are tested".

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
)

// guidePath is the guide, from this package's directory.
const guidePath = "../../docs/guide.md"

// guideBlock is one fenced block of the guide.
type guideBlock struct {
	line   int    // line of the opening fence, 1-based
	lang   string // the fence's info string: "sh", "yaml", "" ...
	marker string // the <!-- ... --> comment on the line before, without the delimiters
	text   string // the lines between the fences
}

var (
	markerRE = regexp.MustCompile(`^<!--\s*(.*?)\s*-->$`)
	// commandLineRE finds a line that reads as an airlock command (not an
	// error message such as "airlock verify: ..."), to catch commands put
	// in a block without a language, which the test would not run.
	commandLineRE = regexp.MustCompile(`^(\$ )?airlock [a-z]+( |$)`)
)

// guideBlocks returns the fenced blocks of the guide in order.
func guideBlocks(t *testing.T, doc []byte) []guideBlock {
	t.Helper()
	var blocks []guideBlock
	var cur *guideBlock
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if fence, ok := strings.CutPrefix(line, "```"); ok {
			if cur == nil {
				cur = &guideBlock{line: n, lang: strings.TrimSpace(fence)}
				if m := markerRE.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
					cur.marker = m[1]
				}
			} else {
				blocks = append(blocks, *cur)
				cur = nil
			}
		} else if cur != nil {
			cur.text += line + "\n"
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: the block does not end", guidePath, cur.line)
	}
	return blocks
}

// guideWorld is what the examples run against: a working directory, the
// registries and the environment.
type guideWorld struct {
	dir     string
	env     []string
	replace *strings.Replacer
}

// newGuideWorld builds the world the top of the guide describes.
func newGuideWorld(t *testing.T) *guideWorld {
	t.Helper()
	for _, tool := range []string{"bash", "tar", "zstd", "jq", "git", "cosign"} {
		testkit.RequireTool(t, tool, "sudo make tools")
	}
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", filepath.Join(bin, "airlock"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cosign := testkit.RequireTool(t, "cosign", "sudo make tools")

	// The source registry of the sample images, and registry.site:5000.
	src := testkit.StartInProcess(t)
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.Push(t.Context(), src.Host, imgs); err != nil {
		t.Fatal(err)
	}
	site := testkit.StartSecure(t)

	dir := filepath.Join(t.TempDir(), "work")
	for _, d := range []string{".", "release"} {
		if err := sample.WriteRelease(filepath.Join(dir, d), src.Host); err != nil {
			t.Fatal(err)
		}
		spec := filepath.Join(dir, d, "airlock.yaml")
		raw, err := os.ReadFile(spec)
		if err != nil {
			t.Fatal(err)
		}
		renamed := strings.Replace(string(raw), "\nname: demo\nversion: 1.0.0\n", "\nname: payments\nversion: 1.4.2\n", 1)
		if renamed == string(raw) {
			t.Fatalf("the sample airlock.yaml has no 'name: demo', 'version: 1.0.0' to rename:\n%s", raw)
		}
		if err := os.WriteFile(spec, []byte(renamed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"media/usb", "opt", "var/log/airlock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	auth := filepath.Join(home, "auth.json")
	cred := base64.StdEncoding.EncodeToString([]byte(site.User + ":" + site.Password))
	if err := os.WriteFile(auth, []byte(`{"auths":{"`+site.Host+`":{"auth":"`+cred+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + bin + ":" + filepath.Dir(cosign) + ":" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + t.TempDir(),
		"AIRLOCK_PASSWORD=...",
		"SSL_CERT_FILE=" + site.CAFile,
		"REGISTRY_AUTH_FILE=" + auth,
		"TUF_ROOT=" + filepath.Join(home, "tuf"),
		"GIT_AUTHOR_NAME=airlock-dev", "GIT_AUTHOR_EMAIL=dev@airlock.invalid",
		"GIT_COMMITTER_NAME=airlock-dev", "GIT_COMMITTER_EMAIL=dev@airlock.invalid",
		"GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C",
	}
	w := &guideWorld{dir: dir, env: env}
	if out, err := w.bash(t.Context(), dir, "git init -q && git add -A && git commit -q -m 'payments 1.4.2'"); err != nil {
		t.Fatalf("git: %v\n%s", err, out)
	}
	// Paths and names the examples use, as the top of the guide lists them;
	// ${GUIDE_ROOT} is the directory a block runs in.
	w.replace = strings.NewReplacer(
		"/media/usb", "${GUIDE_ROOT}/media/usb",
		"/opt/payments", "${GUIDE_ROOT}/opt/payments",
		"/var/log/airlock", "${GUIDE_ROOT}/var/log/airlock",
		"registry.site:5000", site.Host,
	)
	return w
}

// bash runs script with bash in dir, with the world's environment.
func (w *guideWorld) bash(ctx context.Context, dir, script string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, w.env...), "GUIDE_ROOT="+dir)
	return cmd.CombinedOutput()
}

// failedLineRE finds the line the ERR trap of a block reports.
var failedLineRE = regexp.MustCompile(`(?m)^guide-failed-line=(\d+)$`)

// scriptHeader is put before each block: stop at the first failing command
// and say its line (bash's LINENO counts from the first line of the script).
const scriptHeader = "set -eo pipefail\ntrap 'echo guide-failed-line=$LINENO >&2' ERR\n"

func TestGuideExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := guideBlocks(t, doc)

	// Every block is one the test knows how to treat; nothing is skipped
	// without a reason.
	var todo []guideBlock
	for _, b := range blocks {
		kind, reason, _ := strings.Cut(b.marker, ":")
		reason = strings.TrimSpace(reason)
		switch {
		case b.marker != "" && kind != "not run" && kind != "file" && kind != "in a copy":
			t.Errorf("%s:%d: unknown marker <!-- %s -->; use not run: REASON, file: NAME or in a copy: REASON", guidePath, b.line, b.marker)
		case (kind == "not run" || kind == "in a copy" || kind == "file") && reason == "":
			t.Errorf("%s:%d: <!-- %s --> needs a reason or name after the colon", guidePath, b.line, b.marker)
		case kind == "not run":
		case kind == "file" && b.lang != "yaml":
			t.Errorf("%s:%d: file: is for yaml blocks, this one is %q", guidePath, b.line, b.lang)
		case b.lang == "sh" || kind == "file":
			todo = append(todo, b)
		case b.lang == "":
			for i, l := range strings.Split(b.text, "\n") {
				if commandLineRE.MatchString(l) && !strings.HasPrefix(l, "$ ") {
					t.Errorf("%s:%d: %q is a command in a block without a language: mark the block sh (the test runs it) or give it <!-- not run: REASON -->", guidePath, b.line+1+i, l)
				}
			}
		default:
			t.Errorf("%s:%d: a %q block must be run (sh, or yaml with <!-- file: NAME -->) or marked <!-- not run: REASON -->", guidePath, b.line, b.lang)
		}
	}
	if t.Failed() {
		return
	}
	if len(todo) < 20 {
		t.Fatalf("only %d blocks to run; the guide has more examples than that", len(todo))
	}

	w := newGuideWorld(t)
	for _, b := range todo {
		kind, arg, _ := strings.Cut(b.marker, ":")
		arg = strings.TrimSpace(arg)
		if kind == "file" {
			if err := os.WriteFile(filepath.Join(w.dir, arg), []byte(b.text), 0o644); err != nil {
				t.Fatalf("%s:%d: %v", guidePath, b.line, err)
			}
			continue
		}
		dir := w.dir
		if kind == "in a copy" {
			dir = filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", w.dir, dir).CombinedOutput(); err != nil {
				t.Fatalf("copy the working directory: %v\n%s", err, out)
			}
		}
		start := time.Now()
		out, err := w.bash(t.Context(), dir, scriptHeader+w.replace.Replace(b.text))
		if err != nil {
			line := b.line + 1
			if m := failedLineRE.FindSubmatch(out); m != nil {
				n, _ := strconv.Atoi(string(m[1]))
				line = b.line + n - strings.Count(scriptHeader, "\n")
			}
			t.Fatalf("%s:%d: the example failed (%v):\n%s\noutput:\n%s", guidePath, line, err, commandAt(doc, line), out)
		}
		t.Logf("%s:%d: ok in %.1fs", guidePath, b.line, time.Since(start).Seconds())
	}
}

// commandAt returns line n (1-based) of doc.
func commandAt(doc []byte, n int) string {
	lines := strings.Split(string(doc), "\n")
	if n < 1 || n > len(lines) {
		return fmt.Sprintf("(line %d)", n)
	}
	return lines[n-1]
}
