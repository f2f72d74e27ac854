package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/keys"
)

const (
	okKeys = `keys:
  release: {publicKey: keys/release.pub}
  security: {publicKey: keys/security.pub}
`
	okRule = `bundles:
  - match: "*"
    signers: [release, security]
    threshold: 2
`
)

// TestParseRejects lists every way a policy is refused before a bundle is
// read, with the line and field the error must name.
func TestParseRejects(t *testing.T) {
	t.Parallel()
	release, err := os.ReadFile("testdata/keys/release.pub")
	if err != nil {
		t.Fatal(err)
	}
	crlf := bytes.ReplaceAll(release, []byte("\n"), []byte("\r\n"))
	tests := []struct {
		name  string
		yaml  string
		line  int    // 0: do not check
		field string // "": do not check
		cause error  // also wrapped, when set
		files map[string][]byte
	}{
		{name: "empty", yaml: ""},
		{name: "comments only", yaml: "# nothing\n"},
		{name: "not a mapping", yaml: "- keys\n", line: 1},
		{name: "syntax", yaml: okKeys + "bundles:\n  - match: \"*\n", line: 5},
		{name: "two documents", yaml: okKeys + okRule + "---\n" + okKeys, line: 8},
		{name: "unknown top-level field", yaml: okKeys + okRule + "trust: all\n", line: 8},
		{name: "unknown key field", yaml: "keys:\n  release: {publicKy: keys/release.pub}\n" + okRule, line: 2},
		{name: "unknown rule field", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: 1\n    thresold: 2\n", line: 8},
		{name: "unknown require field", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: 1\n    require: {sbom: true}\n", line: 8},
		{name: "case-folded field", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    Threshold: 1\n", line: 7},
		{name: "duplicate key name", yaml: okKeys + "  release: {publicKey: keys/ops.pub}\n" + okRule, line: 4},
		{name: "duplicate rule field", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: 1\n    threshold: 0\n", line: 8},
		{name: "wrong type", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: \"1\"\n", line: 7},
		{name: "no keys", yaml: "keys: {}\n" + okRule, line: 1, field: "keys"},
		{name: "keys missing", yaml: okRule, field: "keys"},
		{name: "bad key name", yaml: "keys:\n  rel.ease: {publicKey: keys/release.pub}\n" + okRule, line: 2, field: "keys.rel.ease"},
		{name: "empty publicKey", yaml: "keys:\n  release: {publicKey: \"\"}\n" + okRule, line: 2, field: "keys.release.publicKey"},
		{name: "unreadable key", yaml: okKeys + "  ops:\n    publicKey: keys/nope.pub\n" + okRule, line: 5, field: "keys.ops.publicKey", cause: fs.ErrNotExist},
		{name: "unsupported key", yaml: okKeys + "  weak: {publicKey: keys/weak-rsa-2048.pub}\n" + okRule, line: 4, field: "keys.weak.publicKey", cause: keys.ErrUnsupportedKey},
		{name: "not a key", yaml: okKeys + "  readme: {publicKey: README.md}\n" + okRule, line: 4, field: "keys.readme.publicKey", cause: keys.ErrBadKey,
			files: map[string][]byte{"testdata/README.md": []byte("hello")}},
		{name: "same key file twice", yaml: okKeys + "  again: {publicKey: keys/release.pub}\n" + okRule, line: 4, field: "keys.again.publicKey"},
		{name: "same key other encoding", yaml: okKeys + "  again: {publicKey: copy/release.pub}\n" + okRule, line: 4, field: "keys.again.publicKey",
			files: map[string][]byte{"testdata/copy/release.pub": append([]byte("\n\n"), crlf...)}},
		{name: "no rules", yaml: okKeys + "bundles: []\n", line: 4, field: "bundles"},
		{name: "bundles missing", yaml: okKeys, field: "bundles"},
		{name: "empty match", yaml: okKeys + "bundles:\n  - signers: [release]\n    threshold: 1\n", field: "bundles[0].match"},
		{name: "bad glob", yaml: okKeys + "bundles:\n  - match: \"pay[\"\n    signers: [release]\n    threshold: 1\n", line: 5, field: "bundles[0].match"},
		{name: "repeated match", yaml: okKeys + "bundles:\n  - {match: a, signers: [release], threshold: 1}\n  - {match: a, signers: [security], threshold: 1}\n", line: 6, field: "bundles[1].match"},
		{name: "rule after catch-all", yaml: okKeys + okRule + "  - {match: payments, signers: [release], threshold: 1}\n", line: 8, field: "bundles[1].match"},
		{name: "no signers", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: []\n    threshold: 1\n", line: 6, field: "bundles[0].signers"},
		{name: "unknown signer", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers:\n      - release\n      - mallory\n    threshold: 1\n", line: 8, field: "bundles[0].signers[1]"},
		{name: "signer twice", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release, security, release]\n    threshold: 2\n", line: 6, field: "bundles[0].signers[2]"},
		{name: "threshold missing", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n", field: "bundles[0].threshold"},
		{name: "threshold null", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold:\n", field: "bundles[0].threshold"},
		{name: "threshold zero", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: 0\n", line: 7, field: "bundles[0].threshold"},
		{name: "threshold negative", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: -1\n", line: 7, field: "bundles[0].threshold"},
		{name: "threshold above signers", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release, security]\n    threshold: 3\n", line: 7, field: "bundles[0].threshold"},
		{name: "threshold huge", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: [release]\n    threshold: 99999999999999999999\n", line: 7},
		{name: "bad channel", yaml: okKeys + okRule + "    channel: \"prod env\"\n", line: 8, field: "bundles[0].channel"},
		{name: "maxAge without unit", yaml: okKeys + okRule + "    maxAge: 30\n", line: 8, field: "bundles[0].maxAge"},
		{name: "maxAge zero", yaml: okKeys + okRule + "    maxAge: 0d\n", line: 8, field: "bundles[0].maxAge"},
		{name: "maxAge negative", yaml: okKeys + okRule + "    maxAge: -1h\n", line: 8, field: "bundles[0].maxAge"},
		{name: "maxAge years", yaml: okKeys + okRule + "    maxAge: 1y\n", line: 8, field: "bundles[0].maxAge"},
		{name: "maxAge overflow", yaml: okKeys + okRule + "    maxAge: 999999d\n", line: 8, field: "bundles[0].maxAge"},
		{name: "maxAge huge duration", yaml: okKeys + okRule + "    maxAge: 2000000h\n", line: 8, field: "bundles[0].maxAge"},
		{name: "alias", yaml: okKeys + "bundles:\n  - match: \"*\"\n    signers: &s [release]\n    threshold: 1\n  - match: b\n    signers: *s\n    threshold: 1\n", line: 6},
		{name: "merge key", yaml: okKeys + "bundles:\n  - {match: a, signers: [release], threshold: 1}\n  - <<: {signers: [release], threshold: 1}\n    match: b\n", line: 6},
		{name: "null key name", yaml: okKeys + "  ~: {publicKey: keys/ops.pub}\n" + okRule, field: "keys"},
		{name: "bad platform", yaml: okKeys + okRule + "    require:\n      platforms: [linux/amd64, Linux/ARM64]\n", line: 9, field: "bundles[0].require.platforms[1]"},
		{name: "platform without arch", yaml: okKeys + okRule + "    require:\n      platforms:\n        - linux\n", line: 10, field: "bundles[0].require.platforms[0]"},
		{name: "platform twice", yaml: okKeys + okRule + "    require: {platforms: [linux/amd64, linux/amd64]}\n", line: 8, field: "bundles[0].require.platforms[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(fixture, []byte(tc.yaml), fixtureFiles(tc.files))
			if p != nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse = %v, %v; want ErrInvalidPolicy", p, err)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.File != fixture {
				t.Fatalf("error does not name the file: %#v", err)
			}
			if tc.line != 0 && pe.Line != tc.line {
				t.Errorf("line %d, want %d: %v", pe.Line, tc.line, err)
			}
			if tc.field != "" && pe.Field != tc.field {
				t.Errorf("field %q, want %q: %v", pe.Field, tc.field, err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("cause not wrapped: got %v, want %v", err, tc.cause)
			}
			if errors.Is(err, ErrPolicy) {
				t.Errorf("an invalid policy must not look like a bundle rejection: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestParseAccepts covers the optional forms that must parse.
func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		extra  string
		maxAge time.Duration
	}{
		{"days", "    maxAge: 7d\n", 7 * 24 * time.Hour},
		{"hours", "    maxAge: 12h\n", 12 * time.Hour},
		{"minutes", "    maxAge: 90m\n", 90 * time.Minute},
		{"go duration", "    maxAge: 1h30m\n", 90 * time.Minute},
		{"no maxAge", "", 0},
		{"channel with slash", "    channel: site-a/prod\n", 0},
		{"platform variant", "    require: {platforms: [linux/arm64/v8], sbomForEveryImage: false}\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(fixture, []byte(okKeys+okRule+tc.extra), fixtureFiles(nil))
			if err != nil {
				t.Fatal(err)
			}
			if p.Rules[0].MaxAge != tc.maxAge {
				t.Fatalf("maxAge %v, want %v", p.Rules[0].MaxAge, tc.maxAge)
			}
		})
	}
	// A nil readFile cannot read keys: an error, not a panic.
	if _, err := Parse(fixture, []byte(okKeys+okRule), nil); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("nil readFile: %v", err)
	}
}

// TestParseUnknownFieldSuggests: a mistyped policy key is named as written,
// with its line, and the nearest known key is suggested.
func TestParseUnknownFieldSuggests(t *testing.T) {
	t.Parallel()
	_, err := Parse("policy.yaml", []byte("keys:\n  a: {publicKey: a.pub}\nbundle:\n  - match: x\n"), nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(pe.Msg, `unknown field "bundle"; did you mean "bundles"?`) {
		t.Fatalf("got %v", err)
	}
}

func TestParseRequireCharts(t *testing.T) {
	t.Parallel()
	doc := okKeys + okRule + "    require:\n      charts: {provenance: true, signature: true}\n"
	p, err := Parse("testdata/policy.yaml", []byte(doc), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Rules[0].Require.Charts; !r.Provenance || !r.Signature {
		t.Fatalf("require.charts: %+v", r)
	}
	if _, err := Parse("testdata/policy.yaml", []byte(strings.Replace(doc, "signature: true", "signed: true", 1)), os.ReadFile); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("an unknown require.charts field: %v", err)
	}
}

func TestEvaluateCharts(t *testing.T) {
	t.Parallel()
	var checks []Check
	add := func(name string, ok bool, format string, args ...any) {
		checks = append(checks, Check{Name: name, OK: ok})
	}
	charts := []ChartFacts{{Name: "a", Version: "1.0.0", HasProvenance: true}, {Name: "b", Version: "2.0.0", HasSignature: true}}
	evaluateCharts(ChartRequire{}, charts, add)
	if len(checks) != 0 {
		t.Fatalf("nothing required, checks %+v", checks)
	}
	evaluateCharts(ChartRequire{Provenance: true, Signature: true}, charts, add)
	if len(checks) != 2 || checks[0].OK || checks[1].OK {
		t.Fatalf("checks %+v", checks)
	}
	checks = nil
	evaluateCharts(ChartRequire{Provenance: true, Signature: true}, nil, add)
	if len(checks) != 2 || !checks[0].OK || !checks[1].OK {
		t.Fatalf("no charts: %+v", checks)
	}
}
