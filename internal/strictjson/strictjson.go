package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// MaxDepth bounds the nesting of arrays and objects: a top-level array or
// object is at depth 1, and anything deeper than 64 is rejected with ErrTooDeep.
const MaxDepth = 64

// What a value costs against the decoding budget when its Go type is not
// known (Check, or a member decoded into any or json.RawMessage): a caller
// of Check decodes the document afterwards into types of its own, so an
// array element that is an object is taken to become a value of about
// ElementCost bytes (a descriptor, say), any other element ValueCost, and
// an object member a map entry or a field of about MemberCost.
const (
	ElementCost = 128
	ValueCost   = 16
	MemberCost  = 48
)

// Budget is how many bytes of Go values a document of size bytes may
// decode into: four times its size, plus 1 KiB for small documents (kept
// small: a head of thousands of small documents is bounded by the sum). A
// document written by a producer takes well under half of it (a descriptor
// or an artifact is hundreds of bytes of JSON for a Go value of about the
// same size); what takes more is made of tiny values ("{}" in an array is
// three bytes of JSON and a whole struct once decoded) and is refused with
// ErrTooLarge before anything is decoded, so that a document bounded in
// size is also bounded in the memory it costs.
func Budget(size int) int64 { return 4*int64(size) + 1<<10 }

// Unmarshal decodes exactly one JSON value from data into v, which must be a
// non-nil pointer (otherwise it returns a *json.InvalidUnmarshalError).
//
// It rejects, with an *Error: input that is not UTF-8 JSON (ErrSyntax);
// anything but whitespace after the value (ErrTrailingData); an object anywhere
// with a repeated key, or two keys equal under Unicode case folding
// (strings.EqualFold), or two keys of a map[int]T naming one number
// (ErrDuplicateKey); an object decoded into a struct with a key that is not
// exactly a field's JSON name (ErrUnknownField); nesting deeper than MaxDepth
// (ErrTooDeep); values that do not fit the Go type, including a JSON array
// longer than a Go array (ErrType); and a document that would decode into
// more bytes of Go values than Budget allows for its size (ErrTooLarge).
//
// Field names follow encoding/json: the tag name or else the Go name, fields of
// embedded structs count as the struct's own, fields tagged "-" are unknown.
// Keys of maps are only checked for duplicates. Values decoded into
// json.RawMessage, interfaces (any), or types implementing json.Unmarshaler or
// encoding.TextUnmarshaler are checked for duplicate keys throughout but not
// for unknown fields.
//
// The document is fully checked before v is touched; only an ErrType error can
// leave v partly filled, and v must then be discarded.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	if err := walk(data, rv.Type()); err != nil {
		return err
	}
	// The walk has refused every document whose value depends on how
	// names are matched; what is left is decoded by the v2 engine with
	// encoding/json's semantics (three times as fast on a bundle.json of
	// thousands of artifacts). Should it refuse the value, encoding/json
	// decodes it again into v as it was, so its result or its error (and
	// message) is exactly encoding/json's. FuzzUnmarshal compares the two.
	if decodedV2(data, rv) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // belt and braces: walk already refused them
	if err := dec.Decode(v); err != nil {
		return &Error{Err: fmt.Errorf("%w: %w", ErrType, err)}
	}
	return nil
}

// Check validates data as one UTF-8 JSON value with no duplicate or
// case-fold-duplicate keys anywhere, no trailing data and nesting no deeper
// than MaxDepth, and not too large for its size as its caller will decode
// it (ErrTooLarge: see ElementCost), without decoding it. Unknown fields are allowed: use it for
// documents such as OCI manifests whose keys must be unambiguous but whose
// fields are not all known. Errors are as for Unmarshal.
func Check(data []byte) error {
	return walk(data, nil)
}

// v1Semantics are the v2 engine's options for decoding as encoding/json
// does. The engine reads a time.Time with its own parser, which unescapes
// the string first ("\u0032026-..." is a time to it); encoding/json gives
// the raw bytes to time.Time.UnmarshalJSON, which refuses any escape. So a
// time.Time is handed its raw bytes here too.
var v1Semantics = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.WithUnmarshalers(
	jsonv2.UnmarshalFromFunc(func(d *jsontext.Decoder, t *time.Time) error {
		raw, err := d.ReadValue()
		if err != nil {
			return err
		}
		return t.UnmarshalJSON(raw)
	})))

// Decode decodes data, which Check accepted, into v exactly as
// json.Unmarshal does (unknown members are ignored, names match as
// encoding/json matches them), with the faster v2 engine when it accepts
// the value, else with json.Unmarshal for its result and error. v must be
// a non-nil pointer to a value json.Unmarshal may fill in.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	if decodedV2(data, rv) {
		return nil
	}
	return json.Unmarshal(data, v)
}

// decodedV2 decodes data into the value rv points to with the v2 engine in
// encoding/json's semantics, and reports whether it did; if not, the value
// is as it was before (as far as a shallow copy restores it), for
// encoding/json to decode.
func decodedV2(data []byte, rv reflect.Value) bool {
	orig := reflect.New(rv.Elem().Type()).Elem()
	orig.Set(rv.Elem())
	if jsonv2.Unmarshal(data, rv.Interface(), v1Semantics) == nil {
		return true
	}
	rv.Elem().Set(orig)
	return false
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// frame is an array or object being read.
type frame struct {
	object  bool
	t       reflect.Type            // Go type it decodes into; nil when not checked
	fields  map[string]reflect.Type // JSON field names, when t is a struct
	seen    map[string]string       // folded key -> key as written (the decoder's walk)
	keys    []string                // keys so far (the fast walk)
	folded  map[string]bool         // canonical keys, once keys is long (the fast walk)
	key     string                  // key of the current member
	index   int                     // index of the current element
	wantKey bool                    // the next token is a key or '}'
}

// walker reads a document token by token, keeping the path and the Go type
// at each level, and checks keys and depth. The tokens come from
// encoding/json's Decoder, or in the fast walk from a scanner (fast.go).
type walker struct {
	dec   *json.Decoder
	fast  *scanner
	stack []frame
	spare [][]string // the fast walk's key slices, by depth, for reuse
	// cost is what the values read so far take once decoded, by the
	// estimate of enter; budget is Budget of the document's size.
	cost, budget int64
}

// token is one token of a document: kind is '{', '}', '[' or ']', '"' for
// a string (s holds it, decoded), or 'v' for a number, true, false or null.
type token struct {
	kind byte
	s    string
}

// walk checks data first with the fast walk, which only decides whether
// the document is accepted; a document it does not accept is walked again
// with encoding/json's Decoder, which finds the same fault (or accepts it)
// and describes it. Both walks share the checks of keys, fields, types and
// depth (value, key, enter, push); the fast walk's scanner accepts only
// what the Decoder accepts (fast_test.go compares them).
func walk(data []byte, t reflect.Type) error {
	if !utf8.Valid(data) {
		return &Error{Err: fmt.Errorf("%w: not UTF-8", ErrSyntax)}
	}
	if fastWalk(data, t) {
		return nil
	}
	return decoderWalk(data, t)
}

// decoderWalk is walk with tokens from encoding/json's Decoder: it makes
// every error message.
func decoderWalk(data []byte, t reflect.Type) error {
	w := &walker{dec: json.NewDecoder(bytes.NewReader(data)), budget: Budget(len(data))}
	w.dec.UseNumber() // numbers stay text: no float range errors here
	if err := w.value(t); err != nil {
		return err
	}
	end := w.dec.InputOffset()
	if _, err := w.dec.Token(); err != io.EOF {
		return &Error{Err: fmt.Errorf("%w at offset %d", ErrTrailingData, end)}
	}
	return nil
}

// errRefused stops the fast walk; decoderWalk then finds and names the fault.
var errRefused = errors.New("refused by the fast walk")

// next returns the next token.
func (w *walker) next() (token, error) {
	if w.fast != nil {
		tok, ok := w.fast.next()
		if !ok {
			return token{}, errRefused
		}
		return tok, nil
	}
	tok, err := w.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return token{}, &Error{Path: w.path(len(w.stack) - 1), Err: fmt.Errorf("%w at offset %d: %w", ErrSyntax, w.dec.InputOffset(), err)}
	}
	switch v := tok.(type) {
	case json.Delim:
		return token{kind: byte(v)}, nil
	case string:
		return token{kind: '"', s: v}, nil
	}
	return token{kind: 'v'}, nil
}

// value reads one JSON value that decodes into Go type t (nil: unchecked).
func (w *walker) value(t reflect.Type) error {
	for {
		tok, err := w.next()
		if err != nil {
			return err
		}
		top := w.top()
		switch {
		case top != nil && top.object && top.wantKey && tok.kind != '}':
			if err := w.key(top, tok); err != nil {
				return err
			}
			continue
		case top != nil && (tok.kind == '}' || tok.kind == ']'):
			w.pop()
		default:
			ct, err := w.enter(t, tok.kind)
			if err != nil {
				return err
			}
			if tok.kind == '{' || tok.kind == '[' {
				if len(w.stack) >= MaxDepth {
					return &Error{Path: w.path(len(w.stack)), Err: fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)}
				}
				w.push(tok.kind == '{', ct)
				continue
			}
		}
		if len(w.stack) == 0 {
			return nil
		}
	}
}

// pop ends the array or object on top, keeping the fast walk's key slice.
func (w *walker) pop() {
	d := len(w.stack) - 1
	if w.fast != nil && w.stack[d].keys != nil {
		for len(w.spare) <= d {
			w.spare = append(w.spare, nil)
		}
		w.spare[d] = w.stack[d].keys[:0]
	}
	w.stack = w.stack[:d]
}

func (w *walker) top() *frame {
	if len(w.stack) == 0 {
		return nil
	}
	return &w.stack[len(w.stack)-1]
}

// key checks an object key and makes it the current member.
func (w *walker) key(f *frame, tok token) error {
	if tok.kind != '"' { // json.Decoder only returns strings here
		return &Error{Path: w.path(len(w.stack) - 1), Err: fmt.Errorf("%w: object key is not a string", ErrSyntax)}
	}
	key := tok.s
	if w.fast != nil {
		if f.repeats(key) {
			return errRefused
		}
	} else {
		folded := f.canonical(key)
		if earlier, dup := f.seen[folded]; dup {
			e := &Error{Path: w.path(len(w.stack) - 1), Key: key, Err: ErrDuplicateKey}
			if earlier != key {
				e.Earlier = earlier
			}
			return e
		}
		f.seen[folded] = key
	}
	if f.t != nil && f.t.Kind() == reflect.Struct {
		if _, ok := f.fields[key]; !ok {
			return &Error{Path: w.path(len(w.stack) - 1), Key: key, Err: ErrUnknownField}
		}
	}
	f.key, f.wantKey = key, false
	return nil
}

// enter starts a value inside the top frame (or at the top level, of type
// root) and returns the Go type it decodes into; kind is its first token's.
// It adds what the value takes once decoded to the walk's cost, and
// refuses the document with ErrTooLarge once the cost passes the budget.
func (w *walker) enter(root reflect.Type, kind byte) (reflect.Type, error) {
	f := w.top()
	var t reflect.Type
	var cost int64
	switch {
	case f == nil:
		return root, nil
	case f.object:
		f.wantKey = true
		switch {
		case f.t == nil:
			cost = MemberCost
		case f.t.Kind() == reflect.Struct:
			t = f.fields[f.key]
			cost = pointee(t)
		default: // map
			t = f.t.Elem()
			cost = int64(f.t.Key().Size()+t.Size()) + 16 + pointee(t)
		}
	default:
		f.index++
		if f.t == nil {
			cost = ValueCost
			if kind == '{' {
				cost = ElementCost
			}
			break
		}
		if f.t.Kind() == reflect.Array && f.index >= f.t.Len() {
			return nil, &Error{Path: w.path(len(w.stack)), Err: fmt.Errorf("%w: more than %d elements for %s", ErrType, f.t.Len(), f.t)}
		}
		t = f.t.Elem()
		cost = max(int64(t.Size()), 16) + pointee(t)
	}
	if w.cost += cost; w.cost > w.budget {
		return nil, &Error{Path: w.path(len(w.stack)), Err: fmt.Errorf("%w: more than %d bytes of values (at most four times the document's size, plus 1 KiB)", ErrTooLarge, w.budget)}
	}
	return t, nil
}

// pointee is the size of what a value of type t points to, allocated
// when it is decoded: a struct behind a pointer field, say.
func pointee(t reflect.Type) int64 {
	if t != nil && t.Kind() == reflect.Pointer {
		return int64(t.Elem().Size())
	}
	return 0
}

// push starts an array or object that decodes into Go type t.
func (w *walker) push(object bool, t reflect.Type) {
	f := frame{object: object, t: target(t), index: -1, wantKey: object}
	switch {
	case f.t == nil:
	case object && f.t.Kind() == reflect.Struct:
		f.fields = cachedFields(f.t)
	case object && f.t.Kind() == reflect.Map:
	case !object && (f.t.Kind() == reflect.Slice || f.t.Kind() == reflect.Array):
	default:
		f.t = nil // a type mismatch, reported by encoding/json
	}
	switch {
	case object && w.fast != nil:
		if d := len(w.stack); d < len(w.spare) {
			f.keys, w.spare[d] = w.spare[d], nil
		}
	case object:
		f.seen = map[string]string{}
	}
	w.stack = append(w.stack, f)
}

// path returns the JSON pointer to the value held by frame n-1 (the current
// member or element of each of the first n frames).
func (w *walker) path(n int) string {
	var b strings.Builder
	for _, f := range w.stack[:max(n, 0)] {
		b.WriteByte('/')
		if f.object {
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(f.key, "~", "~0"), "/", "~1"))
		} else {
			b.WriteString(strconv.Itoa(f.index))
		}
	}
	return b.String()
}

// canonical returns the form of key under which two keys of f are duplicates:
// case-folded, or for maps with integer keys the number encoding/json reads.
func (f *frame) canonical(key string) string {
	if f.t != nil && f.t.Kind() == reflect.Map && !reflect.PointerTo(f.t.Key()).Implements(textUnmarshalerType) {
		switch f.t.Key().Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if n, err := strconv.ParseInt(key, 10, 64); err == nil {
				return strconv.FormatInt(n, 10)
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			if n, err := strconv.ParseUint(key, 10, 64); err == nil {
				return strconv.FormatUint(n, 10)
			}
		}
	}
	return strings.Map(foldRune, key)
}

// foldRune maps r to the smallest rune of its Unicode simple case folding
// orbit, so that two strings are strings.EqualFold exactly when they map to
// the same string.
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// target follows pointers from t to the type whose fields are checked, or
// returns nil for types that take any JSON or decode themselves.
func target(t reflect.Type) reflect.Type {
	for t != nil {
		pt := reflect.PointerTo(t)
		if t.Kind() == reflect.Interface || pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// structFields returns the JSON names that encoding/json decodes into for
// struct type t, with the Go type of each. Like encoding/json it promotes the
// fields of embedded structs (breadth first, a tagged field beating an
// untagged one at the same depth, two equals at the same depth hiding each
// other) and skips unexported fields and fields tagged "-".
func structFields(t reflect.Type) map[string]reflect.Type {
	type candidate struct {
		typ    reflect.Type
		depth  int
		tagged bool
	}
	found := map[string][]candidate{}
	visited := map[reflect.Type]bool{}
	next, nextCount := []reflect.Type{t}, map[reflect.Type]int{t: 1}
	for depth := 0; len(next) > 0; depth++ {
		level, count := next, nextCount
		next, nextCount = nil, map[reflect.Type]int{}
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !sf.IsExported() && !(sf.Anonymous && ft.Kind() == reflect.Struct) {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validName(name) {
					name = ""
				}
				if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					if nextCount[ft]++; nextCount[ft] == 1 {
						next = append(next, ft)
					}
					continue
				}
				c := candidate{typ: sf.Type, depth: depth, tagged: name != ""}
				if name == "" {
					name = sf.Name
				}
				found[name] = append(found[name], c)
				if count[st] > 1 { // embedded twice at this depth: hidden
					found[name] = append(found[name], c)
				}
			}
		}
	}
	fields := make(map[string]reflect.Type, len(found))
	for name, cs := range found {
		var best []candidate // shallowest, tagged before untagged
		for _, c := range cs {
			switch {
			case len(best) == 0 || c.depth < best[0].depth || (c.depth == best[0].depth && c.tagged && !best[0].tagged):
				best = []candidate{c}
			case c.depth == best[0].depth && c.tagged == best[0].tagged:
				best = append(best, c)
			}
		}
		if len(best) == 1 {
			fields[name] = best[0].typ
		}
	}
	return fields
}

// validName reports whether encoding/json accepts s as a field name in a tag.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", r) && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
