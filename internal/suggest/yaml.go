package suggest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownFieldRE matches the message yaml.v3 gives a key that no field of
// the Go type takes (with KnownFields set).
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

// UnknownYAMLField reads yaml.v3's "field X not found in type T" message
// (without its "line N: " prefix). It returns the key as written, and the
// nearest key that type T, reachable from root, does take ("" when none is
// close). ok is false when msg is not that message.
func UnknownYAMLField(msg string, root any) (key, near string, ok bool) {
	m := unknownFieldRE.FindStringSubmatch(msg)
	if m == nil {
		return "", "", false
	}
	return m[1], Nearest(m[1], yamlKeys(reflect.TypeOf(root), m[2])), true
}

// yamlKeys returns the yaml keys of the struct type named typeName (as
// reflect prints it, "pack.Spec"), found by walking t's fields.
func yamlKeys(t reflect.Type, typeName string) []string {
	seen := map[reflect.Type]bool{}
	var found []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		var keys []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			keys = append(keys, name)
			walk(f.Type)
		}
		if t.String() == typeName {
			found = keys
		}
	}
	walk(t)
	return found
}

// yamlLineRE finds the line yaml.v3 names in its messages.
var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// YAMLProblem turns an error from decoding YAML into root (with yaml.v3 and
// KnownFields) into the line it names (0 when none) and a message for a
// person: an unknown key is named as written, with the nearest key root's
// type takes at that level, and docPage says where the fields are listed.
func YAMLProblem(err error, root any, docPage string) (line int, msg string) {
	msg = err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if key, near, ok := UnknownYAMLField(msg, root); ok {
		msg = fmt.Sprintf("unknown field %q", key)
		if near != "" {
			msg += fmt.Sprintf("; did you mean %q?", near)
		}
		msg += " (see " + docPage + " for the fields)"
	}
	return line, msg
}
