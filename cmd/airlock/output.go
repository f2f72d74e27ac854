package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// jsonSchemaVersion is the schemaVersion of every --json output that does
// not carry its own; fields are only ever added.
const jsonSchemaVersion = 1

// writeJSON prints v as indented JSON followed by a newline. A JSON object
// is stamped, in front of its own members, with "schemaVersion" (unless it
// has one) and "airlock" (the version that wrote it), so every --json
// output says which schema and which airlock produced it.
func writeJSON(w io.Writer, v any) error {
	b, err := stampJSON(v)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// stampJSON encodes v and, when it is an object, adds schemaVersion and
// airlock as its first members.
func stampJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) < 2 || b[0] != '{' {
		return b, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	var head bytes.Buffer
	head.WriteByte('{')
	if _, ok := top["schemaVersion"]; !ok {
		fmt.Fprintf(&head, `"schemaVersion":%d,`, jsonSchemaVersion)
	}
	if _, ok := top["airlock"]; !ok {
		ver, _ := json.Marshal(version())
		fmt.Fprintf(&head, `"airlock":%s,`, ver)
	}
	rest := b[1:]
	if len(top) == 0 {
		// "{}": drop the trailing comma of the stamp.
		h := bytes.TrimSuffix(head.Bytes(), []byte(","))
		return append(h, '}'), nil
	}
	return append(head.Bytes(), rest...), nil
}
