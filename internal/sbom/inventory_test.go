package sbom

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListRealDocuments lists the components of real SBOMs in every
// encoding the libraries read.
func TestListRealDocuments(t *testing.T) {
	cases := []struct {
		file       string
		format     Format
		enc        Encoding
		components int
		// want is one component that must be listed exactly so.
		want Component
	}{
		{"cyclonedx-proton-bridge-1.8.0.json", CycloneDX, EncodingJSON, 201, Component{}},
		{"spdx-2.3-spec-example.json", SPDX, EncodingJSON, 5, Component{Name: "Jena", Version: "3.12.0", PURL: "pkg:maven/org.apache.jena/apache-jena@3.12.0"}},
		{"spdx-2.3-example.spdx", SPDX, EncodingTagValue, 5, Component{Name: "glibc", Version: "2.11.1", License: "(LGPL-2.0-only OR LicenseRef-3)"}},
		{"spdx-2.3-example.spdx.yaml", SPDX, EncodingYAML, 5, Component{Name: "Saxon", Version: "8.8", License: "MPL-1.0"}},
		{"spdx-2.2-example.spdx.rdf", SPDX, EncodingRDF, 2, Component{}},
		{"cyclonedx-1.6-license-expression.xml", CycloneDX, EncodingXML, 1, Component{Name: "tomcat-catalina", Version: "9.0.14", PURL: "pkg:maven/com.acme/tomcat-catalina@9.0.14?packaging=jar", License: "EPL-2.0 OR GPL-2.0 WITH Classpath-exception-2.0"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			inv, err := List(c.file, data)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if inv.Format != c.format || inv.Encoding != c.enc {
				t.Fatalf("format %s/%s, want %s/%s", inv.Format, inv.Encoding, c.format, c.enc)
			}
			if c.components > 0 && len(inv.Components) != c.components {
				t.Fatalf("%d components, want %d", len(inv.Components), c.components)
			}
			if len(inv.Components) == 0 {
				t.Fatalf("no components listed")
			}
			total := 0
			for _, l := range inv.Licenses {
				total += l.Count
			}
			if total != len(inv.Components) {
				t.Fatalf("license counts add up to %d, want %d", total, len(inv.Components))
			}
			if c.want.Name != "" {
				found := false
				for _, got := range inv.Components {
					if got.Name == c.want.Name {
						found = true
						if got.Version != c.want.Version || got.License != c.want.License || (c.want.PURL != "" && got.PURL != c.want.PURL) {
							t.Errorf("component %s: got %+v, want %+v", got.Name, got, c.want)
						}
					}
				}
				if !found {
					t.Errorf("component %s not listed: %+v", c.want.Name, inv.Components)
				}
			}
			t.Logf("%s %s %s: %d components, %d licenses", inv.Format, inv.SpecVersion, inv.Encoding, len(inv.Components), len(inv.Licenses))
		})
	}
}

// TestListRejects: the strict checks of Summarize apply to JSON, and
// other input is refused with the error class that says why.
func TestListRejects(t *testing.T) {
	cases := []struct {
		name string
		data string
		want error
	}{
		{"duplicate key", `{"spdxVersion":"SPDX-2.3","spdxVersion":"SPDX-2.3","name":"x","packages":[]}`, ErrMalformed},
		{"case-folded key", `{"bomFormat":"CycloneDX","specVersion":"1.5","Components":[]}`, ErrMalformed},
		{"trailing data", `{"bomFormat":"CycloneDX","specVersion":"1.5"} {}`, ErrMalformed},
		{"empty", ``, ErrUnknownFormat},
		{"other XML", `<html></html>`, ErrUnknownFormat},
		{"not UTF-8", "{\"name\":\"\xff\"}", ErrMalformed},
		{"broken tag-value", "SPDXVersion: SPDX-2.3\nPackageName\n", ErrMalformed},
		{"too large", `{"spdxVersion":"SPDX-2.3","name":"` + strings.Repeat("a", MaxSize) + `"}`, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := List("doc.json", []byte(c.data))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Name != "doc.json" {
				t.Fatalf("error does not name the document: %v", err)
			}
		})
	}
}
