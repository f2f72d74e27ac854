package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestStampJSON: every --json object gets schemaVersion and airlock in front
// of its own members, unless it has them, and the result is the indented
// encoding json.Indent would give of the stamped object.
func TestStampJSON(t *testing.T) {
	type inner struct {
		Airlock string `json:"airlock"`
	}
	type withOwn struct {
		SchemaVersion int    `json:"schemaVersion"`
		Name          string `json:"name"`
	}
	type omitted struct {
		SchemaVersion int    `json:"schemaVersion,omitempty"`
		List          []int  `json:"list"`
		Skip          string `json:"-"`
	}
	type embedding struct {
		inner
		N int `json:"n"`
	}
	ver, _ := json.Marshal(version())
	cases := []struct {
		name string
		v    any
		want string // compact; S and A stand for the two stamps
	}{
		{"struct", struct {
			Name string `json:"name"`
		}{"x"}, `{S,A,"name":"x"}`},
		{"own schemaVersion", &withOwn{SchemaVersion: 3, Name: "x"}, `{A,"schemaVersion":3,"name":"x"}`},
		{"omitempty schemaVersion left out", omitted{}, `{S,A,"list":null}`},
		{"embedded airlock", embedding{inner: inner{Airlock: "y"}, N: 1}, `{S,"airlock":"y","n":1}`},
		{"empty map", map[string]int{}, `{S,A}`},
		{"map with schemaVersion", map[string]int{"schemaVersion": 7}, `{A,"schemaVersion":7}`},
		{"array", []int{1, 2}, `[1,2]`},
		{"raw message with its own stamp", json.RawMessage(`{"schemaVersion":9,"x":1}`), `{A,"schemaVersion":9,"x":1}`},
		{"nil pointer", (*withOwn)(nil), `null`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := strings.NewReplacer("S", `"schemaVersion":1`, "A", `"airlock":`+string(ver)).Replace(c.want)
			var ind bytes.Buffer
			if err := json.Indent(&ind, []byte(want), "", "  "); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := writeJSON(&got, c.v); err != nil {
				t.Fatal(err)
			}
			if got.String() != ind.String()+"\n" {
				t.Errorf("got\n%s\nwant\n%s", got.String(), ind.String())
			}
		})
	}
}

// TestIndentJSON: indentJSON gives json.Indent's bytes for compact JSON,
// strings with escaped quotes and backslashes, brackets inside strings and
// empty objects and arrays included.
func TestIndentJSON(t *testing.T) {
	docs := []any{
		map[string]any{},
		[]any{},
		"plain",
		42,
		map[string]any{"a": []any{}, "b": map[string]any{}, "c": []any{1, "x", nil, true, 2.5}},
		map[string]any{`q"uo\te`: `{[,:]}\"`, "\\": "\\\\", "u": "é\u2028<>&\x01"},
		[]any{[]any{[]any{}}, map[string]any{"k": map[string]any{"k": []any{map[string]any{}}}}},
	}
	for i := range 50 {
		docs = append(docs, map[string]any{"n": i, "s": strings.Repeat(`a"\`, i%7), "l": make([]int, i%4)})
	}
	for _, d := range docs {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
		compact := bytes.TrimSpace(buf.Bytes())
		var want bytes.Buffer
		if err := json.Indent(&want, compact, "", "  "); err != nil {
			t.Fatal(err)
		}
		if got := indentJSON(compact, "  "); string(got) != want.String() {
			t.Errorf("indentJSON(%s):\n%s\nwant\n%s", compact, got, want.String())
		}
	}
}

// FuzzIndentJSON compares indentJSON with json.Indent on compacted input.
func FuzzIndentJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"c\"d\\"}],"e":{}}`))
	f.Add([]byte(`[[],{},"]",":"]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var compact bytes.Buffer
		if json.Compact(&compact, in) != nil {
			return
		}
		var want bytes.Buffer
		if err := json.Indent(&want, compact.Bytes(), "", "\t"); err != nil {
			t.Fatal(err)
		}
		if got := indentJSON(compact.Bytes(), "\t"); string(got) != want.String() {
			t.Errorf("indentJSON(%s):\n%s\nwant\n%s", compact.Bytes(), got, want.String())
		}
	})
}

// TestCollectorOn: the garbage collector startgc holds off during package
// initialization is on again before any command runs.
func TestCollectorOn(t *testing.T) {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	if p < 0 && os.Getenv("GOGC") != "off" {
		t.Fatalf("the garbage collector is off (GOGC %d) after initialization", p)
	}
}
