package sbom

import (
	"bytes"
	"errors"
	"testing"
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

// FuzzList: List never panics, and either lists components whose license
// counts add up, or returns an *Error naming the input.
func FuzzList(f *testing.F) {
	for _, name := range []string{cdxFile, spdxFile, "spdx-2.3-example.spdx", "spdx-2.3-example.spdx.yaml", "cyclonedx-1.6-license-expression.xml"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{``, `<bom xmlns="http://cyclonedx.org/schema/bom/1.6"><components><component><name>a</name></component></components></bom>`,
		"SPDXVersion: SPDX-2.3\nPackageName: x\n", "spdxVersion: SPDX-2.3\npackages:\n- name: a\n", `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := List("fuzz", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Name != "fuzz" {
				t.Fatalf("err = %#v, want an *Error naming the input", err)
			}
			return
		}
		n := 0
		for _, l := range inv.Licenses {
			n += l.Count
		}
		if n != len(inv.Components) {
			t.Fatalf("license counts add up to %d, %d components", n, len(inv.Components))
		}
	})
}
