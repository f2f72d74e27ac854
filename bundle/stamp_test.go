package bundle

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckStamps: a stamp is found wherever the member stands, its one
// form is required, and a missing, non-object or broken document is refused.
func TestCheckStamps(t *testing.T) {
	ok := `"2026-01-01T00:00:00Z"`
	cases := []struct {
		doc  string
		want string // "" when accepted, else part of the error
	}{
		{`{"created":` + ok + `}`, ""},
		{`{"a":[1,{"created":"x"}],"b":{"c":"d"},"created":` + ok + `}`, ""},
		{`{"created":` + ok + `,"rest":[1,2,` + strings.Repeat(`{"x":"y"},`, 100) + `3]}`, ""},
		{`{"created":"2026-01-01T00:00:00+00:00"}`, "RFC 3339"},
		{`{"created":"2026-01-01T00:00:00.5Z"}`, "RFC 3339"},
		{`{"created":20260101}`, "RFC 3339"},
		{`{"other":` + ok + `}`, "created is missing"},
		{`{}`, "created is missing"},
		{`[]`, "not a JSON object"},
		{`{"a":tru}`, "bundle.json"},
		{``, "not a JSON object"},
	}
	for _, c := range cases {
		err := checkStamps("bundle.json", []byte(c.doc), "created")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.doc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrMalformed)):
			t.Errorf("%s: got %v, want a malformed error with %q", c.doc, err, c.want)
		}
	}
}
