package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
)

func FuzzSummarize(f *testing.F) {
	for _, name := range []string{cdxFile, spdxFile} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{
		``,
		`[]`,
		`<bom/>`,
		"SPDXVersion: SPDX-2.3\n",
		`{"spdxVersion":"SPDX-2.3","name":"n","packages":[{},{}]}`,
		`{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":"a"}},"components":[{"components":[{}]}]}`,
		`{"spdxVersion":"SPDX-2.3","spdxVersion":"SPDX-2.2"}`,
		`{"spdxVersion":"SPDX-2.3","bomFormat":"CycloneDX"}`,
		`{"spdxVersion":"SPDX-2.3"} {}`,
		nestedComponents(maxDepth + 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Summarize("fuzz.json", bytes.NewReader(data))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Name != "fuzz.json" {
				t.Fatalf("err = %#v, want an *Error naming the input", err)
			}
			n := 0
			for _, sentinel := range []error{ErrUnknownFormat, ErrTooLarge, ErrMalformed} {
				if errors.Is(err, sentinel) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("err = %v wraps %d sentinels, want 1", err, n)
			}
			if s != (Summary{}) {
				t.Fatalf("Summary = %+v on error, want zero", s)
			}
			return
		}
		if s.Format.MediaType() == "" {
			t.Fatalf("Summary.Format = %q on success, want spdx or cyclonedx", s.Format)
		}
		if s.SpecVersion == "" || s.Packages < 0 || s.Packages > len(data) {
			t.Fatalf("implausible summary %+v for %d bytes", s, len(data))
		}
	})
}

// FuzzList: List never panics; on error it returns no inventory and an
// *Error naming the input that wraps exactly one sentinel; on success the
// inventory is bounded by the input and consistent: a known format and
// encoding, at most MaxComponents components (no more than the input has
// bytes), every string clipped and valid UTF-8, and license counts that are
// sorted, distinct, positive and add up to the components' licenses.
func FuzzList(f *testing.F) {
	for _, name := range []string{cdxFile, spdxFile, "spdx-2.3-example.spdx", "spdx-2.3-example.spdx.yaml", "cyclonedx-1.6-license-expression.xml", "spdx-2.2-example.spdx.rdf"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{``, `<bom xmlns="http://cyclonedx.org/schema/bom/1.6"><components><component><name>a</name></component></components></bom>`,
		"SPDXVersion: SPDX-2.3\nPackageName: x\n", "spdxVersion: SPDX-2.3\npackages:\n- name: a\n", `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>`,
		nestedComponents(maxDepth + 1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := List("fuzz", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Name != "fuzz" {
				t.Fatalf("err = %#v, want an *Error naming the input", err)
			}
			n := 0
			for _, sentinel := range []error{ErrUnknownFormat, ErrTooLarge, ErrMalformed} {
				if errors.Is(err, sentinel) {
					n++
				}
			}
			if n != 1 || inv != nil {
				t.Fatalf("err = %v wraps %d sentinels (want 1), inventory %v", err, n, inv != nil)
			}
			return
		}
		checkInventory(t, inv, len(data))
	})
}

// checkInventory fails t unless inv is a consistent inventory of an input
// of size bytes (see FuzzList).
func checkInventory(t *testing.T, inv *Inventory, size int) {
	t.Helper()
	if inv == nil {
		t.Fatal("nil inventory without an error")
	}
	if inv.Format.MediaType() == "" {
		t.Fatalf("Format = %q, want spdx or cyclonedx", inv.Format)
	}
	switch inv.Encoding {
	case EncodingJSON, EncodingXML, EncodingTagValue, EncodingYAML, EncodingRDF:
	default:
		t.Fatalf("Encoding = %q", inv.Encoding)
	}
	if inv.Components == nil || len(inv.Components) > MaxComponents || len(inv.Components) > size {
		t.Fatalf("%d components (nil %v) from %d bytes", len(inv.Components), inv.Components == nil, size)
	}
	if inv.Format == CycloneDX && inv.Packages != len(inv.Components) || inv.Format == SPDX && inv.Packages < len(inv.Components) {
		t.Fatalf("%s: Packages = %d, %d components", inv.Format, inv.Packages, len(inv.Components))
	}
	clipped := func(what, s string) {
		if len(s) > maxString+len("... (18446744073709551615 bytes)") || !utf8.ValidString(s) {
			t.Fatalf("%s not clipped or not UTF-8: %d bytes, valid %v", what, len(s), utf8.ValidString(s))
		}
	}
	clipped("spec version", inv.SpecVersion)
	clipped("name", inv.Name)
	want := map[string]int{}
	for i, c := range inv.Components {
		for _, s := range []string{c.Name, c.Version, c.PURL, c.License} {
			clipped(fmt.Sprintf("component %d", i), s)
		}
		want[c.License]++
	}
	total := 0
	for i, l := range inv.Licenses {
		if l.Count <= 0 || want[l.License] != l.Count {
			t.Fatalf("license %q counted %d, %d components carry it", l.License, l.Count, want[l.License])
		}
		if i > 0 {
			p := inv.Licenses[i-1]
			if p.Count < l.Count || p.Count == l.Count && p.License >= l.License {
				t.Fatalf("licenses not sorted (or repeated): %+v before %+v", p, l)
			}
		}
		total += l.Count
	}
	if total != len(inv.Components) || len(inv.Licenses) != len(want) {
		t.Fatalf("license counts add up to %d over %d licenses; %d components with %d licenses", total, len(inv.Licenses), len(inv.Components), len(want))
	}
}
