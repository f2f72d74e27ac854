package main

import (
	"bytes"
	"encoding/json"
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
