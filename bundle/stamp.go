package bundle

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// stampRE is the one form airlock writes and reads a time in: RFC 3339 in
// UTC with a "Z" and whole seconds, e.g. "2026-01-01T00:00:00Z". Offsets
// such as "+14:00", "z", fractional seconds and other RFC 3339 spellings
// of the same instant are refused, so a signed time has one byte form.
var stampRE = regexp.MustCompile(`^"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"$`)

// checkStamps checks that each named member of the JSON object raw holds a
// time in the form of stampRE. where names the document for messages.
func checkStamps(where string, raw []byte, names ...string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return malformed("%s: %v", where, err)
	}
	for _, n := range names {
		v, ok := obj[n]
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
