package pack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodSpec = `name: payments
version: 1.4.2
images:
  - ref: registry.example.com/payments/api:1.4.2
    platforms: [linux/amd64, linux/arm64]
  - ref: oci:./images/worker:1.0
  - ref: docker-archive:./images/legacy.tar
models:
  - source: models/resnet50/
    name: resnet50
    target: models/resnet50
files:
  - source: config/app.yaml
    target: etc/payments/app.yaml
    mode: "0640"
sboms:
  - source: sbom/api.spdx.json
    subject: registry.example.com/payments/api:1.4.2
`

func TestParseSpecGood(t *testing.T) {
	t.Parallel()
	s, err := ParseSpec("airlock.yaml", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "payments" || len(s.Images) != 3 || s.Images[0].Platforms[1] != "linux/arm64" || s.Files[0].Mode != "0640" {
		t.Fatalf("parsed %+v", s)
	}
}

func TestParseSpecCommittedSample(t *testing.T) {
	t.Parallel()
	if _, err := LoadSpec("../testdata/sample/airlock.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		yaml  string
		line  int    // expected line, 0 = do not check
		field string // expected field, "" = do not check
	}{
		{"unknown field", "name: a\nversion: 1.0.0\nimagez: []\n", 3, ""},
		{"unknown nested field", "name: a\nversion: 1.0.0\nimages:\n  - ref: r.io/a:1\n    platform: [linux/amd64]\n", 5, ""},
		{"wrong type", "name: a\nversion: 1.0.0\nimages: {ref: x}\n", 3, ""},
		{"duplicate key", "name: a\nname: b\nversion: 1.0.0\n", 2, ""},
		{"two documents", "name: a\nversion: 1.0.0\nfiles: [{source: a, target: b}]\n---\nname: b\n", 0, ""},
		{"empty", "", 0, ""},
		{"missing name", "version: 1.0.0\nfiles: [{source: a, target: b}]\n", 0, "name"},
		{"bad name", "name: Payments\nversion: 1.0.0\nfiles: [{source: a, target: b}]\n", 1, "name"},
		{"bad version", "name: a\nversion: v1.0\nfiles: [{source: a, target: b}]\n", 2, "version"},
		{"no artifacts", "name: a\nversion: 1.0.0\n", 0, "images"},
		{"bad ref", "name: a\nversion: 1.0.0\nimages:\n  - ref: 'UPPER/case:1'\n", 4, "images[0].ref"},
		{"duplicate ref", "name: a\nversion: 1.0.0\nimages:\n  - ref: r.io/a:1\n  - ref: r.io/a:1\n", 5, "images[1].ref"},
		{"bad platform", "name: a\nversion: 1.0.0\nimages:\n  - ref: r.io/a:1\n    platforms: [amd64]\n", 5, "images[0].platforms[0]"},
		{"absolute target", "name: a\nversion: 1.0.0\nfiles:\n  - source: a\n    target: /etc/passwd\n", 5, "files[0].target"},
		{"dotdot target", "name: a\nversion: 1.0.0\nfiles:\n  - source: a\n    target: etc/../../x\n", 5, "files[0].target"},
		{"same target twice", "name: a\nversion: 1.0.0\nfiles:\n  - {source: a, target: etc/x}\n  - {source: b, target: etc/x}\n", 5, "files[1].target"},
		{"file inside model target", "name: a\nversion: 1.0.0\nmodels:\n  - {source: m, name: m, target: models/m}\nfiles:\n  - {source: b, target: models/m/config.json}\n", 6, "files[0].target"},
		{"setuid mode", "name: a\nversion: 1.0.0\nfiles:\n  - {source: a, target: x, mode: \"4755\"}\n", 4, "files[0].mode"},
		{"non-octal mode", "name: a\nversion: 1.0.0\nfiles:\n  - {source: a, target: x, mode: 0998}\n", 4, "files[0].mode"},
		{"unknown subject", "name: a\nversion: 1.0.0\nsboms:\n  - {source: s.json, subject: r.io/x:1}\n", 4, "sboms[0].subject"},
		{"model without name", "name: a\nversion: 1.0.0\nmodels:\n  - {source: m, target: models/m}\n", 4, "models[0].name"},
		{"bad oci digest", "name: a\nversion: 1.0.0\nimages:\n  - ref: oci:./x@sha256:abc\n", 4, "images[0].ref"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec("rel/airlock.yaml", []byte(tc.yaml))
			var se *SpecError
			if !errors.As(err, &se) || !errors.Is(err, ErrSpec) {
				t.Fatalf("err = %v, want *SpecError", err)
			}
			if se.File != "rel/airlock.yaml" {
				t.Fatalf("File = %q", se.File)
			}
			if tc.line != 0 && se.Line != tc.line {
				t.Fatalf("Line = %d, want %d (%v)", se.Line, tc.line, err)
			}
			if tc.field != "" && se.Field != tc.field {
				t.Fatalf("Field = %q, want %q (%v)", se.Field, tc.field, err)
			}
		})
	}
}

func TestLoadSpecMissingAndLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LoadSpec(filepath.Join(dir, "nope.yaml")); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("missing: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("name: a\n"+strings.Repeat("# pad\n", MaxSpecSize/6+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSpec(big); !errors.Is(err, ErrSpec) {
		t.Fatalf("large: %v", err)
	}
}

func TestParseOCIRef(t *testing.T) {
	t.Parallel()
	d := "sha256:" + strings.Repeat("a", 64)
	cases := []struct{ in, path, tag, digest string }{
		{"oci:./images/worker:1.0", "./images/worker", "1.0", ""},
		{"oci:./images/worker", "./images/worker", "", ""},
		{"oci:/abs/dir@" + d, "/abs/dir", "", d},
		{"oci:./layout:demo/api:1.0", "./layout", "demo/api:1.0", ""},
	}
	for _, c := range cases {
		p, tag, dig, err := ParseOCIRef(c.in)
		if err != nil || p != c.path || tag != c.tag || dig != c.digest {
			t.Errorf("ParseOCIRef(%q) = %q %q %q %v", c.in, p, tag, dig, err)
		}
	}
}

// TestParseSpecUnknownFieldSuggests: a mistyped key is named as written in
// the YAML, with its line, and the nearest known key of that level is
// suggested (never a Go type name).
func TestParseSpecUnknownFieldSuggests(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml, want string
		line       int
	}{
		{"name: a\nversion: 1.0.0\nimage:\n  - ref: r.io/a:1\n", `unknown field "image"; did you mean "images"?`, 3},
		{"name: a\nversion: 1.0.0\nfiles:\n  - source: a\n    targt: b\n", `unknown field "targt"; did you mean "target"?`, 5},
		{"name: a\nversion: 1.0.0\nimages:\n  - ref: r.io/a:1\n    platform: [linux/amd64]\n", `unknown field "platform"; did you mean "platforms"?`, 5},
		{"name: a\nversion: 1.0.0\nzzzzzz: 1\n", `unknown field "zzzzzz" (see`, 3},
	}
	for _, c := range cases {
		_, err := ParseSpec("airlock.yaml", []byte(c.yaml))
		var se *SpecError
		if !errors.As(err, &se) || se.Line != c.line || !strings.Contains(se.Msg, c.want) || strings.Contains(se.Msg, "pack.") {
			t.Errorf("%q: %v; want line %d and %q", c.yaml, err, c.line, c.want)
		}
	}
}

// TestParseSpecTargetCollisionNamesTheFirst: a target that would contain
// several earlier ones is refused naming the first of them, and 4,000
// distinct targets are checked against each other quickly (the check is
// linear, safepath.Targets).
func TestParseSpecTargetCollisionNamesTheFirst(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("name: a\nversion: 1.0.0\nfiles:\n")
	for i := range 4000 {
		fmt.Fprintf(&b, "  - {source: f%d, target: etc/svc%02d/app%04d.yaml}\n", i, i%40, i)
	}
	if _, err := ParseSpec("airlock.yaml", []byte(b.String())); err != nil {
		t.Fatalf("4,000 distinct targets: %v", err)
	}
	b.WriteString("  - {source: d, target: etc/svc07}\n")
	_, err := ParseSpec("airlock.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), `target "etc/svc07" collides with target "etc/svc07/app0007.yaml"`) || !strings.Contains(err.Error(), "files[4000].target") {
		t.Fatalf("err = %v", err)
	}
}
