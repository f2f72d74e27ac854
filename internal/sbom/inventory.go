package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
	spdxrdf "github.com/spdx/tools-golang/rdf"
	"github.com/spdx/tools-golang/spdx"
	spdxtv "github.com/spdx/tools-golang/tagvalue"
	spdxyaml "github.com/spdx/tools-golang/yaml"
)

// MaxComponents bounds the components an Inventory lists (200,000); a
// document with more is refused rather than listed in part.
const MaxComponents = 200_000

// Encoding names how an SBOM document is written.
type Encoding string

// The encodings Inventory reads.
const (
	EncodingJSON     Encoding = "json"
	EncodingXML      Encoding = "xml"       // CycloneDX XML
	EncodingTagValue Encoding = "tag-value" // SPDX tag-value
	EncodingYAML     Encoding = "yaml"      // SPDX YAML
	EncodingRDF      Encoding = "rdf"       // SPDX RDF/XML
)

// Component is one package or component an SBOM lists.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// PURL is the package URL, when the document gives one.
	PURL string `json:"purl,omitempty"`
	// License is the concluded license (SPDX; the declared one when none was
	// concluded) or the CycloneDX license ids, names or expression, joined
	// with " AND "; empty when the document gives none or says NOASSERTION.
	License string `json:"license,omitempty"`
}

// LicenseCount is how many components carry a license.
type LicenseCount struct {
	License string `json:"license"` // "" counts components without one
	Count   int    `json:"count"`
}

// Inventory is the full component list of an SBOM document.
type Inventory struct {
	Summary
	Encoding   Encoding       `json:"encoding"`
	Components []Component    `json:"components"`
	Licenses   []LicenseCount `json:"licenses"` // most frequent first
}

// List parses an SBOM document (at most MaxSize bytes) and lists its
// components: CycloneDX JSON and XML with cyclonedx-go, SPDX 2.x JSON,
// tag-value, YAML and RDF/XML with spdx/tools-golang. JSON documents first
// pass the same strict checks as Summarize (no duplicate or case-folded
// keys, no trailing data). name is used only in error messages. Every
// error is an *Error wrapping ErrUnknownFormat, ErrTooLarge or ErrMalformed.
func List(name string, data []byte) (*Inventory, error) {
	inv, err := inventory(data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Reason: "invalid SBOM: " + err.Error(), Err: ErrMalformed}
		}
		e.Name = name
		return nil, e
	}
	return inv, nil
}

func inventory(data []byte) (*Inventory, error) {
	if len(data) > MaxSize {
		return nil, tooLarge("larger than the 64 MiB limit for SBOMs")
	}
	if !utf8.Valid(data) {
		return nil, malformed("it is not valid UTF-8")
	}
	rest := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(rest) == 0:
		return nil, unknown("it is empty")
	case rest[0] == '{':
		s, err := summarize(data)
		if err != nil {
			return nil, err
		}
		if s.Format == CycloneDX {
			return cycloneDX(data, cdx.BOMFileFormatJSON, EncodingJSON)
		}
		doc, err := guard(EncodingJSON, func() (*spdx.Document, error) { return spdxjson.Read(bytes.NewReader(data)) })
		return spdxInventory(doc, err, EncodingJSON)
	case rest[0] == '<':
		head := rest[:min(len(rest), 4096)]
		if bytes.Contains(head, []byte("rdf:RDF")) || bytes.Contains(head, []byte("spdx.org/rdf")) {
			doc, err := guard(EncodingRDF, func() (*spdx.Document, error) { return spdxrdf.Read(bytes.NewReader(data)) })
			return spdxInventory(doc, err, EncodingRDF)
		}
		if bytes.Contains(head, []byte("cyclonedx.org/schema/bom")) {
			return cycloneDX(data, cdx.BOMFileFormatXML, EncodingXML)
		}
		return nil, unknown("it is XML but neither SPDX RDF nor CycloneDX")
	case bytes.HasPrefix(rest, []byte("SPDXVersion:")):
		doc, err := guard(EncodingTagValue, func() (*spdx.Document, error) { return spdxtv.Read(bytes.NewReader(data)) })
		return spdxInventory(doc, err, EncodingTagValue)
	case bytes.HasPrefix(rest, []byte("spdxVersion:")) || bytes.Contains(data, []byte("\nspdxVersion:")):
		doc, err := guard(EncodingYAML, func() (*spdx.Document, error) { return spdxyaml.Read(bytes.NewReader(data)) })
		return spdxInventory(doc, err, EncodingYAML)
	}
	return nil, unknown("it is neither JSON, XML, SPDX tag-value nor SPDX YAML")
}

// guard runs a third-party parser and turns a panic in it into
// ErrMalformed: a document crafted to crash a parser is malformed, and
// must not take airlock down (spdx/tools-golang v0.5.7 dereferences a null
// entry of "packages" in SPDX 2.2 JSON and YAML, found by FuzzList).
func guard[T any](enc Encoding, parse func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, malformed("the %s parser failed on this document (%v)", enc, r)
		}
	}()
	return parse()
}

func spdxInventory(doc *spdx.Document, err error, enc Encoding) (*Inventory, error) {
	if errors.Is(err, ErrMalformed) {
		return nil, err
	}
	if err != nil {
		return nil, malformed("SPDX %s: %v", enc, err)
	}
	if doc == nil || !strings.HasPrefix(doc.SPDXVersion, "SPDX-") {
		return nil, malformed("SPDX %s: no SPDXVersion", enc)
	}
	if len(doc.Packages) > MaxComponents {
		return nil, tooLarge("%d packages, more than the %d airlock lists", len(doc.Packages), MaxComponents)
	}
	inv := &Inventory{Summary: Summary{Format: SPDX, SpecVersion: clip(doc.SPDXVersion), Name: clip(doc.DocumentName), Packages: len(doc.Packages)}, Encoding: enc, Components: []Component{}}
	for _, p := range doc.Packages {
		if p == nil {
			continue
		}
		c := Component{Name: clip(p.PackageName), Version: clip(p.PackageVersion), License: spdxLicense(p.PackageLicenseConcluded)}
		if c.License == "" {
			c.License = spdxLicense(p.PackageLicenseDeclared)
		}
		for _, r := range p.PackageExternalReferences {
			if r != nil && strings.EqualFold(r.RefType, "purl") {
				c.PURL = clip(r.Locator)
				break
			}
		}
		inv.Components = append(inv.Components, c)
	}
	inv.count()
	return inv, nil
}

// spdxLicense drops the SPDX "unknown" markers.
func spdxLicense(l string) string {
	l = strings.TrimSpace(l)
	if l == "NOASSERTION" || l == "NONE" {
		return ""
	}
	return clip(l)
}

func cycloneDX(data []byte, f cdx.BOMFileFormat, enc Encoding) (*Inventory, error) {
	var bom cdx.BOM
	if _, err := guard(enc, func() (struct{}, error) { return struct{}{}, cdx.NewBOMDecoder(bytes.NewReader(data), f).Decode(&bom) }); err != nil {
		if errors.Is(err, ErrMalformed) {
			return nil, err
		}
		return nil, malformed("CycloneDX %s: %v", enc, err)
	}
	inv := &Inventory{Summary: Summary{Format: CycloneDX, SpecVersion: clip(bom.SpecVersion.String())}, Encoding: enc, Components: []Component{}}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		inv.Name = clip(bom.Metadata.Component.Name)
	}
	if bom.Components != nil {
		if err := inv.addComponents(*bom.Components, 1); err != nil {
			return nil, err
		}
	}
	inv.Packages = len(inv.Components)
	inv.count()
	return inv, nil
}

// addComponents lists components and, depth first, those nested in them.
func (inv *Inventory) addComponents(cs []cdx.Component, depth int) error {
	if depth > maxDepth {
		return malformed("components nest more than %d levels deep", maxDepth)
	}
	for _, c := range cs {
		if len(inv.Components) >= MaxComponents {
			return tooLarge("more than the %d components airlock lists", MaxComponents)
		}
		inv.Components = append(inv.Components, Component{Name: clip(c.Name), Version: clip(c.Version), PURL: clip(c.PackageURL), License: cdxLicense(c.Licenses)})
		if c.Components != nil {
			if err := inv.addComponents(*c.Components, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func cdxLicense(ls *cdx.Licenses) string {
	if ls == nil {
		return ""
	}
	var out []string
	for _, l := range *ls {
		switch {
		case l.Expression != "":
			out = append(out, l.Expression)
		case l.License != nil && l.License.ID != "":
			out = append(out, l.License.ID)
		case l.License != nil && l.License.Name != "":
			out = append(out, l.License.Name)
		}
	}
	return clip(strings.Join(out, " AND "))
}

// count fills Licenses from Components, most frequent first, then by name.
func (inv *Inventory) count() {
	n := map[string]int{}
	for _, c := range inv.Components {
		n[c.License]++
	}
	inv.Licenses = make([]LicenseCount, 0, len(n))
	for l, c := range n {
		inv.Licenses = append(inv.Licenses, LicenseCount{License: l, Count: c})
	}
	sort.Slice(inv.Licenses, func(i, j int) bool {
		a, b := inv.Licenses[i], inv.Licenses[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.License < b.License
	})
}

// clip bounds a string copied out of a document.
func clip(s string) string {
	if len(s) <= maxString {
		return s
	}
	cut := maxString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("... (%d bytes)", len(s))
}
