package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// jsonSchemaVersion is the schemaVersion of every --json output that does
// not carry its own; fields are only ever added.
const jsonSchemaVersion = 1

// writeJSON prints v as indented JSON followed by a newline. A JSON object
// is stamped, in front of its own members, with "schemaVersion" (unless it
// has one) and "airlock" (the version that wrote it), so every --json
// output says which schema and which airlock produced it.
func writeJSON(w io.Writer, v any) error {
	b, err := stampJSON(v, "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// stampJSON encodes v (indented by indent, or compact when it is "") and,
// when it is an object, adds schemaVersion and airlock as its first
// members. Which members v has is read from its type (a struct's JSON
// names, a map's keys), so the output is encoded once and never parsed.
func stampJSON(v any, indent string) ([]byte, error) {
	b, err := stampCompact(v)
	if err != nil || indent == "" {
		return b, err
	}
	return indentJSON(b, indent), nil
}

// stampCompact is stampJSON without indentation.
func stampCompact(v any) ([]byte, error) {
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
	has := func(name string) bool { return hasMember(v, name) }
	if _, ok := v.(json.Marshaler); ok {
		// A value that encodes itself: its members are read back from
		// what it wrote.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			return nil, err
		}
		has = func(name string) bool { _, ok := top[name]; return ok }
	}
	var stamp []string
	if !has("schemaVersion") {
		stamp = append(stamp, fmt.Sprintf(`"schemaVersion":%d`, jsonSchemaVersion))
	}
	if !has("airlock") {
		ver, _ := json.Marshal(version())
		stamp = append(stamp, fmt.Sprintf(`"airlock":%s`, ver))
	}
	if len(stamp) == 0 {
		return b, nil
	}
	var out bytes.Buffer
	out.Grow(len(b) + 64)
	out.WriteString("{" + strings.Join(stamp, ","))
	if b[1] != '}' { // not an empty object
		out.WriteString(",")
	}
	out.Write(b[1:])
	return out.Bytes(), nil
}

// indentJSON indents src, compact JSON as json.Marshal writes it, exactly
// as json.Indent(dst, src, "", indent) would, in one pass that copies the
// strings whole: for the 2 MB that `inspect --json` prints for a bundle of
// thousands of artifacts, json.Indent's byte-by-byte scanner took longer
// than encoding the value (TestIndentJSON compares the two).
func indentJSON(src []byte, indent string) []byte {
	dst := make([]byte, 0, len(src)+len(src)/2)
	depth := 0
	newline := func() {
		dst = append(dst, '\n')
		for range depth {
			dst = append(dst, indent...)
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			// Copy the string up to its closing quote, skipping escapes.
			j := i + 1
			for j < len(src) {
				k := bytes.IndexAny(src[j:], `"\`)
				if k < 0 {
					j = len(src)
					break
				}
				j += k
				if src[j] == '"' {
					break
				}
				j += 2 // a backslash and the byte it escapes
			}
			end := min(j+1, len(src))
			dst = append(dst, src[i:end]...)
			i = end - 1
		case '{', '[':
			dst = append(dst, c)
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst = append(dst, src[i+1])
				i++
				continue
			}
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, ':', ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// hasMember reports whether the JSON encoding of v, an object, has the
// member name at its top level: a map key, or a struct field (embedded
// structs included) named so that is not left out as empty.
func hasMember(v any, name string) bool {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return false
		}
		return rv.MapIndex(reflect.ValueOf(name).Convert(rv.Type().Key())).IsValid()
	case reflect.Struct:
		return structHas(rv, name)
	}
	return false
}

func structHas(rv reflect.Value, name string) bool {
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		tname, opts, _ := strings.Cut(tag, ",")
		fv := rv.Field(i)
		if f.Anonymous && tname == "" {
			for fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					break
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct && structHas(fv, name) {
				return true
			}
			continue
		}
		if tname == "" {
			tname = f.Name
		}
		if tname != name {
			continue
		}
		o := "," + opts + ","
		return !(strings.Contains(o, ",omitempty,") && emptyJSON(fv) || strings.Contains(o, ",omitzero,") && fv.IsZero())
	}
	return false
}

// emptyJSON is encoding/json's "empty" for omitempty.
func emptyJSON(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}
