package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

type base struct {
	Name    string `json:"name"`
	Version int    `json:"version,omitempty"`
}

type artifact struct {
	Digest      string            `json:"digest"`
	Size        int64             `json:"size,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// level decodes itself from a JSON string, so its content is opaque.
type level string

func (l *level) UnmarshalText(b []byte) error {
	if s := string(b); s != "low" && s != "high" {
		return fmt.Errorf("level %q is neither low nor high", s)
	}
	*l = level(b)
	return nil
}

type doc struct {
	base
	Artifacts []artifact       `json:"artifacts,omitempty"`
	Extra     json.RawMessage  `json:"extra,omitempty"`
	Any       any              `json:"any,omitempty"`
	Ptr       *artifact        `json:"ptr,omitempty"`
	Counts    map[int]string   `json:"counts,omitempty"`
	Pair      [2]int           `json:"pair"`
	Level     level            `json:"level,omitempty"`
	Labels    map[string]level `json:"labels,omitempty"`
	Hidden    string           `json:"-"`
	Untagged  string
	// Types whose decoding differs most between JSON engines.
	When    time.Time         `json:"when,omitzero"`
	WhenPtr *time.Time        `json:"whenPtr,omitempty"`
	Bytes   []byte            `json:"bytes,omitempty"`
	Float   float64           `json:"float,omitempty"`
	Uint    uint8             `json:"uint,omitempty"`
	Str     int               `json:"str,omitempty,string"`
	Iface   map[string]any    `json:"iface,omitempty"`
	Nums    []json.Number     `json:"nums,omitempty"`
	Slots   map[string]*level `json:"slots,omitempty"`
}

func nest(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

type rejectCase struct {
	name  string
	check bool // use Check instead of Unmarshal into *doc
	in    string
	err   error
	path  string
	key   string
}

// rejectCases are inputs encoding/json's Decoder reads without complaint,
// except those listed in jsonRejects. They also seed the fuzz tests.
var rejectCases = []rejectCase{
	{name: "duplicate key", in: `{"name":"a","name":"b"}`, err: ErrDuplicateKey, key: "name"},
	{name: "duplicate key nested", in: `{"artifacts":[{"digest":"a"},{"digest":"a"},{"digest":"x","size":1,"digest":"y"}]}`, err: ErrDuplicateKey, path: "/artifacts/2", key: "digest"},
	{name: "case-fold duplicate", in: `{"name":"a","NAME":"b"}`, err: ErrDuplicateKey, key: "NAME"},
	{name: "Kelvin sign folds to k", in: `{"artifacts":[{"annotations":{"k":"1","\u212a":"2"}}]}`, err: ErrDuplicateKey, path: "/artifacts/0/annotations", key: "\u212a"},
	{name: "same number in int map", in: `{"counts":{"1":"a","+01":"b"}}`, err: ErrDuplicateKey, path: "/counts", key: "+01"},
	{name: "duplicate in RawMessage", in: `{"extra":{"a":1,"a":2}}`, err: ErrDuplicateKey, path: "/extra", key: "a"},
	{name: "duplicate in any", in: `{"any":[{"x":1,"X":2}]}`, err: ErrDuplicateKey, path: "/any/0", key: "X"},
	{name: "duplicate in map of TextUnmarshaler", in: `{"labels":{"a":"low","a":"high"}}`, err: ErrDuplicateKey, path: "/labels", key: "a"},
	{name: "pointer escapes", in: `{"any":{"a/b~c":{"k":1,"k":2}}}`, err: ErrDuplicateKey, path: "/any/a~1b~0c", key: "k"},
	{name: "unknown field", in: `{"name":"a","nmae":"b"}`, err: ErrUnknownField, key: "nmae"},
	{name: "field name in other case", in: `{"NAME":"a"}`, err: ErrUnknownField, key: "NAME"},
	{name: "Go name of tagged field", in: `{"Name":"a"}`, err: ErrUnknownField, key: "Name"},
	{name: "field tagged -", in: `{"Hidden":"x"}`, err: ErrUnknownField, key: "Hidden"},
	{name: "embedded struct by name", in: `{"base":{"name":"a"}}`, err: ErrUnknownField, key: "base"},
	{name: "unknown field in slice", in: `{"artifacts":[{"digest":"a","sha":"b"}]}`, err: ErrUnknownField, path: "/artifacts/0", key: "sha"},
	{name: "unknown field behind pointer", in: `{"ptr":{"Digest":"a"}}`, err: ErrUnknownField, path: "/ptr", key: "Digest"},
	{name: "empty key", in: `{"":1}`, err: ErrUnknownField, key: ""},
	{name: "array longer than Go array", in: `{"pair":[1,2,3]}`, err: ErrType, path: "/pair/2"},
	{name: "trailing object", in: `{"name":"a"} {"name":"b"}`, err: ErrTrailingData},
	{name: "trailing garbage", in: `{"name":"a"}x`, err: ErrTrailingData},
	{name: "trailing NUL", in: "{\"name\":\"a\"}\x00", err: ErrTrailingData},
	{name: "too deep", in: `{"any":` + nest(MaxDepth) + `}`, err: ErrTooDeep, path: "/any" + strings.Repeat("/0", MaxDepth-1)},
	{name: "invalid UTF-8", in: "{\"name\":\"\xff\"}", err: ErrSyntax},
	{name: "check: duplicate among unknown fields", check: true, in: `{"whatever":1,"x":{"a":1,"A":2}}`, err: ErrDuplicateKey, path: "/x", key: "A"},
	{name: "check: empty keys", check: true, in: `{"":1,"":2}`, err: ErrDuplicateKey, key: ""},
	{name: "check: lone surrogates decode alike", check: true, in: `{"\ud800":1,"\udc00":2}`, err: ErrDuplicateKey, key: "\ufffd"},
	{name: "check: trailing scalar", check: true, in: `1 2`, err: ErrTrailingData},
	{name: "check: too deep", check: true, in: nest(MaxDepth + 1), err: ErrTooDeep, path: strings.Repeat("/0", MaxDepth)},
	{name: "check: control characters in key", check: true, in: `{"\u001b[2J":1,"\u001b[2J":2}`, err: ErrDuplicateKey, key: "\x1b[2J"},
	// encoding/json rejects these as well.
	{name: "syntax", in: `{"name":}`, err: ErrSyntax},
	{name: "missing comma", in: `[1 2]`, err: ErrSyntax},
	{name: "trailing comma", in: `{"name":"a",}`, err: ErrSyntax},
	{name: "truncated", in: `{"artifacts":[{"digest":"a"`, err: ErrSyntax, path: "/artifacts/0"},
	{name: "empty", in: ``, err: ErrSyntax},
	{name: "whitespace only", in: " \n\t", err: ErrSyntax},
	{name: "type mismatch", in: `{"name":1}`, err: ErrType},
	{name: "bad TextUnmarshaler value", in: `{"level":"medium"}`, err: ErrType},
	{name: "check: single quotes", check: true, in: `{'a':1}`, err: ErrSyntax},
}

var jsonRejects = map[string]bool{
	"syntax": true, "missing comma": true, "trailing comma": true, "truncated": true,
	"empty": true, "whitespace only": true, "type mismatch": true,
	"bad TextUnmarshaler value": true, "check: single quotes": true,
}

func (c rejectCase) run() error {
	if c.check {
		return Check([]byte(c.in))
	}
	var d doc
	return Unmarshal([]byte(c.in), &d)
}

func TestRejects(t *testing.T) {
	t.Parallel()
	for _, c := range rejectCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.run()
			if !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T, want *Error", err)
			}
			if e.Path != c.path || e.Key != c.key {
				t.Errorf("path %q key %q, want path %q key %q", e.Path, e.Key, c.path, c.key)
			}
			if strings.ContainsAny(err.Error(), "\x00\x1b") {
				t.Errorf("message carries control characters: %q", err.Error())
			}
		})
	}
}

// TestEncodingJSONAccepts proves the rejections matter: encoding/json's
// Decoder, as most code uses it, reads these documents and returns a value.
func TestEncodingJSONAccepts(t *testing.T) {
	t.Parallel()
	for _, c := range rejectCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var v any = new(doc)
			if c.check {
				v = new(any)
			}
			err := json.NewDecoder(strings.NewReader(c.in)).Decode(v)
			if got := err != nil; got != jsonRejects[c.name] {
				t.Errorf("encoding/json error = %v, want rejected = %v", err, jsonRejects[c.name])
			}
		})
	}
}

func TestCaseFoldDuplicateNamesEarlierKey(t *testing.T) {
	t.Parallel()
	var e *Error
	err := Check([]byte(`{"digest":1,"DIGEST":2}`))
	if !errors.As(err, &e) || e.Earlier != "digest" || e.Key != "DIGEST" {
		t.Fatalf("got %#v", err)
	}
	err = Check([]byte(`{"digest":1,"digest":2}`))
	if !errors.As(err, &e) || e.Earlier != "" {
		t.Fatalf("got %#v", err)
	}
}

func TestAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want doc
	}{
		{name: "empty object", in: `{}`},
		{name: "omitted fields and whitespace", in: " {\"name\":\"a\"}\r\n\t ", want: doc{base: base{Name: "a"}}},
		{name: "embedded, nested and pointer", in: `{"name":"a","version":2,"artifacts":[{"digest":"d","size":3,"annotations":{"k":"v","K2":"w"}}],"ptr":{"digest":"e"},"Untagged":"u"}`,
			want: doc{base: base{Name: "a", Version: 2}, Artifacts: []artifact{{Digest: "d", Size: 3, Annotations: map[string]string{"k": "v", "K2": "w"}}}, Ptr: &artifact{Digest: "e"}, Untagged: "u"}},
		{name: "RawMessage keeps unknown keys", in: `{"extra":{"anything":[1,{"b":null}]}}`, want: doc{Extra: json.RawMessage(`{"anything":[1,{"b":null}]}`)}},
		{name: "any keeps unknown keys", in: `{"any":{"x":[true,"s"],"y":{}}}`, want: doc{Any: map[string]any{"x": []any{true, "s"}, "y": map[string]any{}}}},
		{name: "maps", in: `{"counts":{"1":"a","2":"b"},"labels":{"x":"low","X2":"high"}}`, want: doc{Counts: map[int]string{1: "a", 2: "b"}, Labels: map[string]level{"x": "low", "X2": "high"}}},
		{name: "array and TextUnmarshaler", in: `{"pair":[1,2],"level":"high"}`, want: doc{Pair: [2]int{1, 2}, Level: "high"}},
		{name: "same key in sibling objects", in: `{"artifacts":[{"digest":"a"},{"digest":"a"}]}`, want: doc{Artifacts: []artifact{{Digest: "a"}, {Digest: "a"}}}},
		{name: "nulls", in: `{"name":null,"ptr":null,"any":null,"artifacts":null}`},
		{name: "deepest nesting allowed", in: `{"any":` + nest(MaxDepth-1) + `}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got doc
			if err := Unmarshal([]byte(c.in), &got); err != nil {
				t.Fatal(err)
			}
			if err := Check([]byte(c.in)); err != nil {
				t.Fatalf("Check: %v", err)
			}
			var std doc
			if err := json.Unmarshal([]byte(c.in), &std); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, std) {
				t.Errorf("got %+v, encoding/json %+v", got, std)
			}
			if c.name != "deepest nesting allowed" && !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestCheckAcceptsUnknownFields(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"schemaVersion":2,"x-vendor":{"a":1}}`, `[]`, `"s"`, `-1.5e300`, `null`, nest(MaxDepth)} {
		if err := Check([]byte(in)); err != nil {
			t.Errorf("Check(%s): %v", in, err)
		}
	}
}

func TestUnmarshalNeedsPointer(t *testing.T) {
	t.Parallel()
	var ie *json.InvalidUnmarshalError
	for _, v := range []any{doc{}, (*doc)(nil), nil} {
		if err := Unmarshal([]byte(`{}`), v); !errors.As(err, &ie) {
			t.Errorf("Unmarshal into %T: got %v", v, err)
		}
	}
}

func TestUnmarshalIntoOtherTargets(t *testing.T) {
	t.Parallel()
	var m map[string]int
	if err := Unmarshal([]byte(`{"a":1,"b":2}`), &m); err != nil || len(m) != 2 {
		t.Fatalf("map: %v %v", m, err)
	}
	if err := Unmarshal([]byte(`{"a":1,"A":2}`), &m); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("map case fold: %v", err)
	}
	var s []*artifact
	if err := Unmarshal([]byte(`[{"digest":"a"},null]`), &s); err != nil || len(s) != 2 {
		t.Fatalf("slice: %v %v", s, err)
	}
	if err := Unmarshal([]byte(`[{"digest":"a"},{"Digest":"b"}]`), &s); !errors.Is(err, ErrUnknownField) {
		t.Fatalf("slice unknown field: %v", err)
	}
	var raw json.RawMessage
	if err := Unmarshal([]byte(` {"a":{"b":1}} `), &raw); err != nil || !bytes.Equal(raw, []byte(`{"a":{"b":1}}`)) {
		t.Fatalf("raw: %s %v", raw, err)
	}
}

// Types with the embedding rules encoding/json applies: a tagged field beats
// an untagged one at the same depth, equal fields at one depth hide each
// other, a shallower field hides deeper ones.
type (
	inner1 struct {
		A string
		B string `json:"b"`
		C string
		D string
	}
	Inner2 struct {
		A string
		B string
		C string `json:"C"`
		E string
	}
	hidden  struct{ F string }
	twiceA  struct{ hidden }
	twiceB  struct{ hidden }
	Exposed struct{ G string }
	outer   struct {
		inner1
		*Inner2
		twiceA
		twiceB
		*Exposed `json:"exp"`
		D        int
		skip     string
	}
)

// TestFieldNamesMatchEncodingJSON compares, for every candidate key, whether
// Unmarshal and encoding/json with DisallowUnknownFields know the field.
func TestFieldNamesMatchEncodingJSON(t *testing.T) {
	t.Parallel()
	keys := []string{"A", "a", "B", "b", "C", "D", "E", "F", "G", "exp", "inner1", "Inner2", "hidden", "twiceA", "Exposed", "skip"}
	for _, k := range keys {
		in := []byte(fmt.Sprintf(`{%q:null}`, k))
		var mine, std outer
		err := Unmarshal(in, &mine)
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.DisallowUnknownFields()
		stdErr := dec.Decode(&std)
		if (err == nil) != (stdErr == nil) {
			t.Errorf("key %q: strictjson %v, encoding/json %v", k, err, stdErr)
		}
		if err != nil && !errors.Is(err, ErrUnknownField) {
			t.Errorf("key %q: %v, want ErrUnknownField", k, err)
		}
	}
}
