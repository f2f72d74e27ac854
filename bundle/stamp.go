package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// stampRE is the one form airlock writes and reads a time in: RFC 3339 in
// UTC with a "Z" and whole seconds, e.g. "2026-01-01T00:00:00Z". Offsets
// such as "+14:00", "z", fractional seconds and other RFC 3339 spellings
// of the same instant are refused, so a signed time has one byte form.
var stampRE = regexp.MustCompile(`^"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"$`)

// checkStamps checks that each named member of the JSON object raw holds a
// time in the form of stampRE. where names the document for messages. It
// reads the object's members in turn and stops once it has seen every
// name: bundle.json states "created" before its artifacts, so the list of
// thousands of artifacts is not read a second time. (The document is
// checked whole, duplicate keys included, by the strict decoding that
// runs beside this check.)
func checkStamps(where string, raw []byte, names ...string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return malformed("%s: not a JSON object", where)
	}
	found := map[string]json.RawMessage{}
	for len(found) < len(names) && dec.More() {
		t, err := dec.Token()
		if err != nil {
			return malformed("%s: %v", where, err)
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return malformed("%s: %v", where, err)
		}
		if slices.Contains(names, key) {
			found[key] = v
		}
	}
	for _, n := range names {
		v, ok := found[n]
		if !ok {
			return malformed("%s: %s is missing", where, n)
		}
		if !stampRE.Match(v) {
			return fmt.Errorf("%w: %s: %s is %s; write times as RFC 3339 in UTC with whole seconds and a Z, e.g. \"2026-01-01T00:00:00Z\"", ErrMalformed, where, n, shortJSON(v))
		}
	}
	return nil
}

func shortJSON(v []byte) string {
	if len(v) > 64 {
		return string(v[:64]) + "..."
	}
	return string(v)
}
