package sbom

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	cdxFile  = "cyclonedx-proton-bridge-1.8.0.json"
	spdxFile = "spdx-2.3-spec-example.json"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countNested counts CycloneDX components the slow, obvious way: decode the
// whole document into generic maps and walk every "components" array nested
// in a component.
func countNested(t *testing.T, doc []byte) (total, topLevel int) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) int
	walk = func(v any) int {
		list, _ := v.([]any)
		n := 0
		for _, c := range list {
			n++
			if obj, ok := c.(map[string]any); ok {
				n += walk(obj["components"])
			}
		}
		return n
	}
	list, _ := m["components"].([]any)
	return walk(m["components"]), len(list)
}

func TestSummarizeRealCycloneDX(t *testing.T) {
	t.Parallel()
	doc := readTestdata(t, cdxFile)
	got, err := Summarize(cdxFile, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	total, top := countNested(t, doc)
	// The README says 201 components; none of them nests others, so
	// counting nested components gives the same number.
	if total != 201 || top != 201 {
		t.Fatalf("generic walk: %d components, %d at top level; want 201 and 201", total, top)
	}
	want := Summary{Format: CycloneDX, SpecVersion: "1.2", Name: "github.com/ProtonMail/proton-bridge", Packages: total}
	if got != want {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
}

func TestSummarizeRealSPDX(t *testing.T) {
	t.Parallel()
	doc := readTestdata(t, spdxFile)
	got, err := Summarize(spdxFile, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Packages []json.RawMessage `json:"packages"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Packages) != 5 {
		t.Fatalf("generic decode: %d packages, want 5", len(m.Packages))
	}
	want := Summary{Format: SPDX, SpecVersion: "SPDX-2.3", Name: "SPDX-Tools-v2.0", Packages: 5}
	if got != want {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
}

func TestSummarizeSynthetic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want Summary
	}{
		{
			name: "cyclonedx nested components counted, metadata component not",
			doc: `{"components":[{"name":"a","components":[{"name":"b"},{"components":[{}]}]},{"name":"c","components":[]}],
				"metadata":{"component":{"name":"app","components":[{},{}]}},
				"specVersion":"1.5","bomFormat":"CycloneDX"}`,
			want: Summary{Format: CycloneDX, SpecVersion: "1.5", Name: "app", Packages: 5},
		},
		{
			name: "cyclonedx minimal",
			doc:  `{"bomFormat":"CycloneDX","specVersion":"1.6"}`,
			want: Summary{Format: CycloneDX, SpecVersion: "1.6"},
		},
		{
			name: "cyclonedx nulls are absent",
			doc:  `{"bomFormat":"CycloneDX","specVersion":"1.4","metadata":{"component":null},"components":null}`,
			want: Summary{Format: CycloneDX, SpecVersion: "1.4"},
		},
		{
			name: "cyclonedx ignores SPDX-only members",
			doc:  `{"bomFormat":"CycloneDX","specVersion":"1.4","name":7,"packages":"x"}`,
			want: Summary{Format: CycloneDX, SpecVersion: "1.4"},
		},
		{
			name: "spdx minimal with escaped key",
			doc:  "\n\t {\"spdx\\u0056ersion\":\"SPDX-2.2\",\"packages\":[{},{}]} \r\n",
			want: Summary{Format: SPDX, SpecVersion: "SPDX-2.2", Packages: 2},
		},
		{
			name: "spdx ignores CycloneDX-only members",
			doc:  `{"spdxVersion":"SPDX-2.3","name":"doc","components":1,"metadata":[]}`,
			want: Summary{Format: SPDX, SpecVersion: "SPDX-2.3", Name: "doc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Summarize("x.json", strings.NewReader(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// nestedComponents returns a CycloneDX document whose components nest depth
// levels deep, one component per level.
func nestedComponents(depth int) string {
	return `{"bomFormat":"CycloneDX","specVersion":"1.5","components":` +
		strings.Repeat(`[{"components":`, depth-1) + `[{}]` + strings.Repeat(`}]`, depth-1) + `}`
}

func TestSummarizeDepth(t *testing.T) {
	t.Parallel()
	got, err := Summarize("deep.json", strings.NewReader(nestedComponents(maxDepth)))
	if err != nil {
		t.Fatalf("depth %d: %v", maxDepth, err)
	}
	if got.Packages != maxDepth {
		t.Fatalf("depth %d: %d packages, want %d", maxDepth, got.Packages, maxDepth)
	}
	_, err = Summarize("deep.json", strings.NewReader(nestedComponents(maxDepth+1)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("depth %d: err = %v, want ErrTooLarge", maxDepth+1, err)
	}
}

// spaces is an endless reader of spaces.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestSummarizeSizeLimit(t *testing.T) {
	t.Parallel()
	doc := `{"bomFormat":"CycloneDX","specVersion":"1.5"}`
	padding := io.LimitReader(spaces{}, int64(MaxSize-len(doc)))
	if _, err := Summarize("max.json", io.MultiReader(strings.NewReader(doc), padding)); err != nil {
		t.Fatalf("exactly MaxSize bytes: %v", err)
	}
	padding = io.LimitReader(spaces{}, int64(MaxSize-len(doc)+1))
	_, err := Summarize("big.json", io.MultiReader(strings.NewReader(doc), padding))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxSize+1 bytes: err = %v, want ErrTooLarge", err)
	}
	// An endless reader must stop at the limit instead of running out of memory.
	_, err = Summarize("endless.json", spaces{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: err = %v, want ErrTooLarge", err)
	}
}

// insertAfterBrace returns doc with member inserted as the first member of
// its top-level object.
func insertAfterBrace(doc []byte, member string) string {
	i := bytes.IndexByte(doc, '{')
	return string(doc[:i+1]) + member + "," + string(doc[i+1:])
}

func TestSummarizeErrors(t *testing.T) {
	t.Parallel()
	cdx := readTestdata(t, cdxFile)
	spdx := readTestdata(t, spdxFile)
	tests := []struct {
		name string
		doc  string
		want error
	}{
		{"empty", "", ErrUnknownFormat},
		{"whitespace only", " \n\t\r ", ErrUnknownFormat},
		{"xml cyclonedx", `<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.4"></bom>`, ErrUnknownFormat},
		{"tag-value spdx", "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n", ErrUnknownFormat},
		{"json array", `[{"spdxVersion":"SPDX-2.3"}]`, ErrUnknownFormat},
		{"json string", `"SPDX-2.3"`, ErrUnknownFormat},
		{"json null", `null`, ErrUnknownFormat},
		{"object without markers", `{"specVersion":"1.5","components":[]}`, ErrUnknownFormat},
		{"markers only nested", `{"metadata":{"bomFormat":"CycloneDX"}}`, ErrUnknownFormat},

		{"both markers", `{"spdxVersion":"SPDX-2.3","bomFormat":"CycloneDX","specVersion":"1.5"}`, ErrMalformed},
		{"duplicate spdxVersion in real document", insertAfterBrace(spdx, `"spdxVersion":"SPDX-2.2"`), ErrMalformed},
		{"duplicate bomFormat in real document", insertAfterBrace(cdx, `"bomFormat":"CycloneDX"`), ErrMalformed},
		{"duplicate unread key", `{"bomFormat":"CycloneDX","specVersion":"1.5","x":1,"x":2}`, ErrMalformed},
		{"duplicate key via escape", `{"spdxVersion":"SPDX-2.3","spdx\u0056ersion":"SPDX-2.2"}`, ErrMalformed},
		{"case-variant marker", `{"bomFormat":"CycloneDX","specVersion":"1.5","SpdxVersion":"SPDX-2.3"}`, ErrMalformed},
		{"case-variant components", `{"bomFormat":"CycloneDX","specVersion":"1.5","Components":[{}]}`, ErrMalformed},
		{"duplicate components in a component", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"components":[],"components":[{}]}]}`, ErrMalformed},
		{"duplicate metadata component name", `{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":"a","name":"b"}}}`, ErrMalformed},
		{"trailing object", `{"spdxVersion":"SPDX-2.3"}{}`, ErrMalformed},
		{"trailing garbage", `{"spdxVersion":"SPDX-2.3"} x`, ErrMalformed},
		{"trailing data after real document", string(cdx) + "\n{}", ErrMalformed},
		{"truncated real document", string(spdx[:len(spdx)/2]), ErrMalformed},
		{"truncated after brace", `{`, ErrMalformed},
		{"invalid json", `{"spdxVersion" "SPDX-2.3"}`, ErrMalformed},
		{"invalid utf-8", "{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"\xff\"}", ErrMalformed},
		{"byte order mark", "\uFEFF{\"spdxVersion\":\"SPDX-2.3\"}", ErrMalformed},
		{"spdxVersion not a string", `{"spdxVersion":2.3}`, ErrMalformed},
		{"spdxVersion null", `{"spdxVersion":null}`, ErrMalformed},
		{"spdxVersion without prefix", `{"spdxVersion":"2.3"}`, ErrMalformed},
		{"spdx name not a string", `{"spdxVersion":"SPDX-2.3","name":["a"]}`, ErrMalformed},
		{"spdx packages not an array", `{"spdxVersion":"SPDX-2.3","packages":{}}`, ErrMalformed},
		{"spdx package not an object", `{"spdxVersion":"SPDX-2.3","packages":[{},1]}`, ErrMalformed},
		{"bomFormat wrong value", `{"bomFormat":"cyclonedx","specVersion":"1.5"}`, ErrMalformed},
		{"bomFormat not a string", `{"bomFormat":true,"specVersion":"1.5"}`, ErrMalformed},
		{"cyclonedx without specVersion", `{"bomFormat":"CycloneDX"}`, ErrMalformed},
		{"cyclonedx empty specVersion", `{"bomFormat":"CycloneDX","specVersion":""}`, ErrMalformed},
		{"components not an array", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":{}}`, ErrMalformed},
		{"component not an object", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{},"x"]}`, ErrMalformed},
		{"component null", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[null]}`, ErrMalformed},
		{"metadata not an object", `{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":[]}`, ErrMalformed},
		{"metadata component name not a string", `{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":1}}}`, ErrMalformed},
		{"invalid json in skipped member", `{"bomFormat":"CycloneDX","specVersion":"1.5","x":[1,}`, ErrMalformed},

		{"components too deep", nestedComponents(maxDepth + 1), ErrTooLarge},
		{"components far too deep", nestedComponents(10 * maxDepth), ErrTooLarge},
		{"name too long", `{"spdxVersion":"SPDX-2.3","name":"` + strings.Repeat("n", maxString+1) + `"}`, ErrTooLarge},
		{"specVersion too long", `{"bomFormat":"CycloneDX","specVersion":"` + strings.Repeat("1", maxString+1) + `"}`, ErrTooLarge},
	}
	sentinels := []error{ErrUnknownFormat, ErrTooLarge, ErrMalformed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const name = "sbom/test.json"
			got, err := Summarize(name, strings.NewReader(tt.doc))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("err = %v also wraps %v", err, s)
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.Name != name || e.Reason == "" {
				t.Errorf("err = %#v, want an *Error naming %q with a reason", err, name)
			}
			if got != (Summary{}) {
				t.Errorf("Summary = %+v on error, want zero", got)
			}
		})
	}
}

// failingReader returns some bytes, then an error.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestSummarizeReadError(t *testing.T) {
	t.Parallel()
	readErr := errors.New("device unplugged")
	_, err := Summarize("media/sbom.json", &failingReader{data: []byte(`{"spdxVersion":`), err: readErr})
	if !errors.Is(err, readErr) {
		t.Fatalf("err = %v, want it to wrap %v", err, readErr)
	}
	var e *Error
	if !errors.As(err, &e) || e.Name != "media/sbom.json" {
		t.Fatalf("err = %#v, want an *Error naming the file", err)
	}
}

func TestFormatMediaType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    Format
		want string
	}{
		{SPDX, "application/spdx+json"},
		{CycloneDX, "application/vnd.cyclonedx+json"},
		{"", ""},
		{"SPDX", ""},
		{"cyclonedx-xml", ""},
	}
	for _, tt := range tests {
		if got := tt.f.MediaType(); got != tt.want {
			t.Errorf("Format(%q).MediaType() = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestSummaryJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    Summary
		want string
	}{
		{
			Summary{Format: SPDX, SpecVersion: "SPDX-2.3", Name: "doc", Packages: 5},
			`{"format":"spdx","specVersion":"SPDX-2.3","name":"doc","packages":5}`,
		},
		{
			Summary{Format: CycloneDX, SpecVersion: "1.2"},
			`{"format":"cyclonedx","specVersion":"1.2","packages":0}`,
		},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.s)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("json.Marshal(%+v) = %s, want %s", tt.s, b, tt.want)
		}
	}
}

func TestErrorMessageNamesFile(t *testing.T) {
	t.Parallel()
	// Errors are matched by type everywhere else; this only checks that the
	// message leads with the name, which the CLI relies on.
	_, err := Summarize("sbom/api.spdx.json", strings.NewReader("SPDXVersion: SPDX-2.3\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "sbom/api.spdx.json: ") {
		t.Fatalf("err = %v, want it to start with the file name", err)
	}
	t.Log(err)
}
