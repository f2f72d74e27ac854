package sbom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Format names an SBOM format.
type Format string

const (
	// SPDX is SPDX JSON, version 2.x.
	SPDX Format = "spdx"
	// CycloneDX is CycloneDX JSON.
	CycloneDX Format = "cyclonedx"
)

// MediaType returns the IANA media type of f: "application/spdx+json" for
// SPDX, "application/vnd.cyclonedx+json" for CycloneDX, and "" for any other
// value.
func (f Format) MediaType() string {
	switch f {
	case SPDX:
		return "application/spdx+json"
	case CycloneDX:
		return "application/vnd.cyclonedx+json"
	}
	return ""
}

// Summary is what airlock records about an SBOM. Its JSON encoding is part of
// the bundle metadata and stays stable.
type Summary struct {
	// Format is SPDX or CycloneDX.
	Format Format `json:"format"`
	// SpecVersion is the SPDX "spdxVersion" (for example "SPDX-2.3") or the
	// CycloneDX "specVersion" (for example "1.2"), as written.
	SpecVersion string `json:"specVersion"`
	// Name is the SPDX document name or the name of the CycloneDX
	// metadata.component; empty when the document has none.
	Name string `json:"name,omitempty"`
	// Packages is the number of SPDX packages, or the number of CycloneDX
	// components including components nested inside components (but not the
	// metadata.component, nor pedigree components). Zero when there are none.
	Packages int `json:"packages"`
}

// MaxSize is the largest SBOM, in bytes, that Summarize accepts (64 MiB).
const MaxSize = 64 << 20

const (
	// maxDepth is how many levels of CycloneDX components may nest: the
	// top-level "components" array is level 1.
	maxDepth = 64
	// maxString bounds each string copied into a Summary.
	maxString = 4096
)

// topKeys are the top-level members Summarize reads.
var topKeys = []string{"spdxVersion", "bomFormat", "specVersion", "name", "packages", "metadata", "components"}

// Summarize reads at most MaxSize+1 bytes of r, detects whether they are an
// SPDX JSON (2.x) or CycloneDX JSON document and returns its summary. name is
// used only in error messages; it is usually the file path.
//
// The document must be a single JSON object with exactly one of the format
// markers: "spdxVersion" holding a string that starts with "SPDX-", or
// "bomFormat" holding "CycloneDX". CycloneDX components may nest at most 64
// levels deep. Every error is an *Error wrapping ErrUnknownFormat,
// ErrTooLarge, ErrMalformed or the error returned by r.
func Summarize(name string, r io.Reader) (Summary, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Summary{}, &Error{Name: name, Reason: fmt.Sprintf("cannot read the SBOM: %v", err), Err: err}
	}
	if len(data) > MaxSize {
		return Summary{}, &Error{
			Name:   name,
			Reason: "larger than the 64 MiB limit for SBOMs (shrink the document, for example by leaving out file-level entries)",
			Err:    ErrTooLarge,
		}
	}
	s, err := summarize(data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = malformed("%v", err).(*Error)
		}
		e.Name = name
		return Summary{}, e
	}
	return s, nil
}

// summarize does the work of Summarize on a bounded document.
func summarize(data []byte) (Summary, error) {
	if err := sniff(data); err != nil {
		return Summary{}, err
	}
	w := &walker{dec: json.NewDecoder(bytes.NewReader(data))}
	if _, err := w.open('{', "the document", false); err != nil {
		return Summary{}, err
	}
	top := make(map[string]raw)
	err := w.members(topKeys, func(key string) error {
		if !slices.Contains(topKeys, key) {
			return w.skip()
		}
		v, err := w.raw()
		top[key] = v
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return Summary{}, malformed("data after the end of the JSON document at byte %d", w.offset())
	}

	_, isSPDX := top["spdxVersion"]
	_, isCDX := top["bomFormat"]
	switch {
	case isSPDX && isCDX:
		return Summary{}, malformed(`the document has both "spdxVersion" (SPDX) and "bomFormat" (CycloneDX)`)
	case isSPDX:
		return summarizeSPDX(top)
	case isCDX:
		return summarizeCycloneDX(top)
	}
	return Summary{}, unknown(`it is a JSON object without "spdxVersion" or "bomFormat"`)
}

// sniff rejects inputs that cannot be a JSON object before any decoding, so
// that the error says what the input looks like.
func sniff(data []byte) error {
	rest, bom := bytes.CutPrefix(data, []byte("\uFEFF"))
	rest = bytes.TrimLeft(rest, " \t\r\n")
	switch {
	case len(rest) == 0:
		return unknown("it is empty")
	case rest[0] == '{' && bom:
		return malformed("it starts with a UTF-8 byte order mark (remove it)")
	case rest[0] == '{':
	case rest[0] == '<':
		return unknown("it looks like XML")
	case rest[0] == '[':
		return unknown("it is a JSON array")
	case bytes.HasPrefix(rest, []byte("SPDXVersion:")):
		return unknown("it looks like tag-value SPDX")
	default:
		return unknown("it is not a JSON object")
	}
	if !utf8.Valid(data) {
		return malformed("it is not valid UTF-8")
	}
	return nil
}

// summarizeSPDX summarises an SPDX document from its top-level members.
func summarizeSPDX(top map[string]raw) (Summary, error) {
	version, err := top["spdxVersion"].str("spdxVersion", true)
	if err != nil {
		return Summary{}, err
	}
	if !strings.HasPrefix(version, "SPDX-") {
		return Summary{}, malformed(`"spdxVersion" is %q, not "SPDX-" followed by a version`, version)
	}
	name, err := top["name"].str("name", false)
	if err != nil {
		return Summary{}, err
	}
	n, err := top["packages"].countObjects("packages")
	if err != nil {
		return Summary{}, err
	}
	return Summary{Format: SPDX, SpecVersion: version, Name: name, Packages: n}, nil
}

// summarizeCycloneDX summarises a CycloneDX document from its top-level
// members.
func summarizeCycloneDX(top map[string]raw) (Summary, error) {
	format, err := top["bomFormat"].str("bomFormat", true)
	if err != nil {
		return Summary{}, err
	}
	if format != "CycloneDX" {
		return Summary{}, malformed(`"bomFormat" is %q, not "CycloneDX"`, format)
	}
	version, err := top["specVersion"].str("specVersion", true)
	if err != nil {
		return Summary{}, err
	}
	if version == "" {
		return Summary{}, malformed(`"specVersion" is empty`)
	}
	name, err := top["metadata"].componentName()
	if err != nil {
		return Summary{}, err
	}
	n := 0
	if v := top["components"]; v.data != nil {
		w := v.walker()
		if n, err = w.countComponents(1); err != nil {
			return Summary{}, err
		}
	}
	return Summary{Format: CycloneDX, SpecVersion: version, Name: name, Packages: n}, nil
}

// unknown returns an *Error wrapping ErrUnknownFormat.
func unknown(detail string) error {
	return &Error{
		Reason: "not an SPDX JSON or CycloneDX JSON document (" + detail + "; convert tag-value or XML SBOMs to JSON)",
		Err:    ErrUnknownFormat,
	}
}

// malformed returns an *Error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return &Error{
		Reason: "invalid SBOM JSON: " + fmt.Sprintf(format, args...) + " (regenerate it with a tool that writes valid SPDX or CycloneDX JSON)",
		Err:    ErrMalformed,
	}
}

// tooLarge returns an *Error wrapping ErrTooLarge.
func tooLarge(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...), Err: ErrTooLarge}
}

// raw is one JSON value cut out of the document, with its position in it so
// that errors report offsets in the document.
type raw struct {
	data json.RawMessage // nil when the member is absent
	base int64           // offset of data in the document
}

// walker reads JSON tokens strictly and reports errors with document offsets.
type walker struct {
	dec     *json.Decoder
	base    int64           // offset of the decoder's input in the document
	scratch json.RawMessage // reused by skip
}

// walker returns a walker over v.
func (v raw) walker() *walker {
	return &walker{dec: json.NewDecoder(bytes.NewReader(v.data)), base: v.base}
}

// isNull reports whether v is absent or JSON null.
func (v raw) isNull() bool {
	return v.data == nil || string(v.data) == "null"
}

// str returns v as a string: "" when v is absent or null, unless required.
func (v raw) str(key string, required bool) (string, error) {
	if v.isNull() {
		if required {
			return "", malformed("%q is missing or null", key)
		}
		return "", nil
	}
	var s string
	if v.data[0] != '"' || json.Unmarshal(v.data, &s) != nil {
		return "", malformed("%q at byte %d is not a string", key, v.base)
	}
	if len(s) > maxString {
		return "", tooLarge("%q at byte %d is longer than %d bytes (shorten it)", key, v.base, maxString)
	}
	return s, nil
}

// countObjects returns the number of elements of the array v, each of which
// must be an object. Absent or null counts as empty.
func (v raw) countObjects(key string) (int, error) {
	if v.isNull() {
		return 0, nil
	}
	w := v.walker()
	if _, err := w.open('[', fmt.Sprintf("%q", key), false); err != nil {
		return 0, err
	}
	n := 0
	var elem json.RawMessage
	for w.dec.More() {
		if err := w.dec.Decode(&elem); err != nil {
			return 0, w.syntax(err)
		}
		if elem[0] != '{' {
			return 0, malformed("an element of %q before byte %d is not an object", key, w.offset())
		}
		n++
	}
	return n, w.close(']')
}

// componentName returns metadata.component.name from the CycloneDX metadata
// object v, or "" when any part of that path is absent or null.
func (v raw) componentName() (string, error) {
	if v.isNull() {
		return "", nil
	}
	w := v.walker()
	if _, err := w.open('{', `"metadata"`, false); err != nil {
		return "", err
	}
	var name string
	err := w.members([]string{"component"}, func(key string) error {
		if key != "component" {
			return w.skip()
		}
		ok, err := w.open('{', `"metadata.component"`, true)
		if !ok || err != nil {
			return err
		}
		return w.members([]string{"name"}, func(key string) error {
			if key != "name" {
				return w.skip()
			}
			v, err := w.raw()
			if err != nil {
				return err
			}
			name, err = v.str("metadata.component.name", false)
			return err
		})
	})
	return name, err
}

// countComponents counts the components in the CycloneDX "components" array
// that comes next, and those nested in them. depth is 1 for the top-level
// array.
func (w *walker) countComponents(depth int) (int, error) {
	if depth > maxDepth {
		return 0, tooLarge("components are nested more than %d levels deep at byte %d (flatten the component tree)", maxDepth, w.offset())
	}
	ok, err := w.open('[', `"components"`, true)
	if !ok || err != nil {
		return 0, err
	}
	n := 0
	for w.dec.More() {
		if _, err := w.open('{', "a component", false); err != nil {
			return 0, err
		}
		n++
		err := w.members([]string{"components"}, func(key string) error {
			if key != "components" {
				return w.skip()
			}
			nested, err := w.countComponents(depth + 1)
			n += nested
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return n, w.close(']')
}

// offset returns the document offset the walker has read up to.
func (w *walker) offset() int64 {
	return w.base + w.dec.InputOffset()
}

// open reads the next token, which must open an array or object (delim is
// '[' or '{'); it reports false when the value is null and nullable.
func (w *walker) open(delim json.Delim, what string, nullable bool) (bool, error) {
	at := w.offset()
	tok, err := w.dec.Token()
	if err != nil {
		return false, w.syntax(err)
	}
	if tok == nil && nullable {
		return false, nil
	}
	if tok != delim {
		kind := "an object"
		if delim == '[' {
			kind = "an array"
		}
		return false, malformed("%s after byte %d is not %s", what, at, kind)
	}
	return true, nil
}

// close reads the token that closes the current array or object.
func (w *walker) close(delim json.Delim) error {
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err)
	}
	if tok != delim {
		return malformed("expected %q at byte %d", delim, w.offset())
	}
	return nil
}

// members reads the members of the object whose opening brace was just read,
// then its closing brace. For each key it calls value, which must consume the
// member's value. It rejects duplicate keys, and keys that equal one of known
// only when letter case is ignored (encoding/json would match those).
func (w *walker) members(known []string, value func(key string) error) error {
	seen := make(map[string]bool)
	for w.dec.More() {
		at := w.offset()
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		key, ok := tok.(string)
		if !ok {
			return malformed("expected a key after byte %d", at)
		}
		if seen[key] {
			return malformed("duplicate key %q after byte %d", key, at)
		}
		seen[key] = true
		for _, k := range known {
			if key != k && strings.EqualFold(key, k) {
				return malformed("key %q after byte %d differs from %q only in letter case", key, at, k)
			}
		}
		if err := value(key); err != nil {
			return err
		}
	}
	return w.close('}')
}

// raw reads the next value and returns a copy of it.
func (w *walker) raw() (raw, error) {
	var v json.RawMessage
	if err := w.dec.Decode(&v); err != nil {
		return raw{}, w.syntax(err)
	}
	// A RawMessage holds exactly the value's bytes and the decoder has read
	// up to its end, so the value starts len(v) bytes back.
	return raw{data: v, base: w.offset() - int64(len(v))}, nil
}

// skip reads and discards the next value, checking that it is valid JSON.
func (w *walker) skip() error {
	if err := w.dec.Decode(&w.scratch); err != nil {
		return w.syntax(err)
	}
	return nil
}

// syntax turns a decoding error into an *Error wrapping ErrMalformed.
func (w *walker) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("the JSON ends early at byte %d, so the file may be truncated", w.offset())
	case errors.As(err, &se):
		return malformed("%v at byte %d", se, w.base+se.Offset)
	}
	return malformed("%v at byte %d", err, w.offset())
}
