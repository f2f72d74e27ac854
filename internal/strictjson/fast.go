package strictjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// The fast walk. Reading a bundle's head checks thousands of small JSON
// documents; encoding/json's Decoder.Token, which the walk was built on,
// allocates for every token and made that check most of the time `airlock
// inspect` took. The fast walk runs the same checks (walker.value, key,
// enter, push) on tokens from scanner, which reads the document in place,
// and it only answers whether the document is accepted: walk gives every
// document it refuses to the Decoder's walk, which finds the fault and
// describes it. So a document is accepted exactly when the Decoder's walk
// accepts it, as long as scanner accepts only what the Decoder accepts;
// fast_test.go and FuzzFastWalk compare the two.

// fastWalk reports whether data, valid UTF-8, is one JSON value that
// passes every check of walk for Go type t (nil: Check's checks).
func fastWalk(data []byte, t reflect.Type) bool {
	w := &walker{fast: &scanner{s: string(data)}, budget: Budget(len(data))}
	if w.value(t) != nil {
		return false
	}
	return w.fast.end()
}

// scanner splits a JSON document into tokens in the order encoding/json's
// Decoder.Token returns them, accepting exactly RFC 8259 JSON as
// encoding/json does (the input is known to be UTF-8). It returns false on
// anything else, without saying why.
type scanner struct {
	s     string
	pos   int
	state int
	open  bool   // the container on top was just opened: it may close at once
	stack []byte // '{' or '[' of each open container
}

const (
	wantValue = iota // a value: at the start, after '[', ':' or ',' in an array
	wantKey          // a key: after '{' or ',' in an object
	wantColon        // ':' after a key
	wantNext         // ',' or the closing bracket, after a value in a container
	wantEnd          // only whitespace, after the top-level value
)

// next returns the next token, or false when the document is not JSON
// (or ends where a token is due).
func (sc *scanner) next() (token, bool) {
	for {
		sc.space()
		if sc.pos >= len(sc.s) || sc.state == wantEnd {
			return token{}, false
		}
		c := sc.s[sc.pos]
		switch sc.state {
		case wantColon:
			if c != ':' {
				return token{}, false
			}
			sc.pos++
			sc.state = wantValue
			continue
		case wantNext:
			top := sc.stack[len(sc.stack)-1]
			switch {
			case c == ',':
				sc.pos++
				sc.state = wantValue
				if top == '{' {
					sc.state = wantKey
				}
				continue
			case top == '{' && c == '}', top == '[' && c == ']':
				return sc.close(c), true
			}
			return token{}, false
		case wantKey:
			if c == '}' && sc.open {
				return sc.close(c), true
			}
			if c != '"' {
				return token{}, false
			}
			key, ok := sc.str(true)
			if !ok {
				return token{}, false
			}
			sc.open = false
			sc.state = wantColon
			return token{kind: '"', s: key}, true
		}
		// wantValue
		if c == ']' && sc.open && sc.stack[len(sc.stack)-1] == '[' {
			return sc.close(c), true
		}
		sc.open = false
		switch c {
		case '{', '[':
			sc.pos++
			sc.stack = append(sc.stack, c)
			sc.open = true
			sc.state = wantValue
			if c == '{' {
				sc.state = wantKey
			}
			return token{kind: c}, true
		case '"':
			if _, ok := sc.str(false); !ok {
				return token{}, false
			}
			sc.valueDone()
			return token{kind: '"'}, true
		case 't', 'f', 'n':
			for _, lit := range [...]string{"true", "false", "null"} {
				if strings.HasPrefix(sc.s[sc.pos:], lit) {
					sc.pos += len(lit)
					sc.valueDone()
					return token{kind: 'v'}, true
				}
			}
			return token{}, false
		}
		if !sc.number() {
			return token{}, false
		}
		sc.valueDone()
		return token{kind: 'v'}, true
	}
}

// end reports whether only whitespace follows the top-level value.
func (sc *scanner) end() bool {
	sc.space()
	return sc.state == wantEnd && sc.pos == len(sc.s)
}

func (sc *scanner) space() {
	for sc.pos < len(sc.s) {
		switch sc.s[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// close consumes the closing bracket c of the container on top.
func (sc *scanner) close(c byte) token {
	sc.pos++
	sc.stack = sc.stack[:len(sc.stack)-1]
	sc.open = false
	sc.valueDone()
	return token{kind: c}
}

// valueDone moves past a complete value.
func (sc *scanner) valueDone() {
	if len(sc.stack) == 0 {
		sc.state = wantEnd
	} else {
		sc.state = wantNext
	}
}

// str reads the string starting at the opening quote at sc.pos. With
// decode, it returns the string's value (decoded by encoding/json when it
// holds escapes, so that odd escapes such as lone surrogates decode as the
// Decoder decodes them).
func (sc *scanner) str(decode bool) (string, bool) {
	start := sc.pos + 1
	escaped := false
	for i := start; i < len(sc.s); i++ {
		switch c := sc.s[i]; {
		case c == '"':
			sc.pos = i + 1
			if !decode || !escaped {
				return sc.s[start:i], true
			}
			var v string
			if json.Unmarshal([]byte(sc.s[start-1:i+1]), &v) != nil {
				return "", false
			}
			return v, true
		case c == '\\':
			escaped = true
			i++
			if i >= len(sc.s) {
				return "", false
			}
			switch sc.s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(sc.s) {
					return "", false
				}
				for _, h := range []byte(sc.s[i+1 : i+5]) {
					if !isHex(h) {
						return "", false
					}
				}
				i += 4
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at sc.pos.
// What follows it is checked by the next token or by end.
func (sc *scanner) number() bool {
	s, i := sc.s, sc.pos
	digits := func() bool {
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return i > j
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	sc.pos = i
	return true
}

// manyKeys is how many keys an object may hold before the fast walk looks
// repeats up in a map instead of comparing with each earlier key.
const manyKeys = 16

// repeats reports whether key equals an earlier key of object f as the
// Decoder's walk compares them (canonical), and records it.
func (f *frame) repeats(key string) bool {
	numeric := f.numericKeys()
	if f.folded == nil && (numeric || len(f.keys) >= manyKeys) {
		f.folded = make(map[string]bool, 2*len(f.keys)+1)
		for _, k := range f.keys {
			f.folded[f.canonical(k)] = true
		}
	}
	if f.folded != nil {
		c := f.canonical(key)
		if f.folded[c] {
			return true
		}
		f.folded[c] = true
		return false
	}
	for _, k := range f.keys {
		// canonical(a) == canonical(b) exactly when strings.EqualFold(a, b),
		// for keys that are not numbers of a map with integer keys.
		if strings.EqualFold(k, key) {
			return true
		}
	}
	f.keys = append(f.keys, key)
	return false
}

// numericKeys reports whether canonical reads f's keys as numbers.
func (f *frame) numericKeys() bool {
	if f.t == nil || f.t.Kind() != reflect.Map || reflect.PointerTo(f.t.Key()).Implements(textUnmarshalerType) {
		return false
	}
	switch f.t.Key().Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// fieldCache holds structFields by type: the fields of a type never change.
var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

func cachedFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	f, _ := fieldCache.LoadOrStore(t, structFields(t))
	return f.(map[string]reflect.Type)
}
