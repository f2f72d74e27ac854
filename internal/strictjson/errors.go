package strictjson

import (
	"errors"
	"strconv"
	"unicode"
)

// Sentinel errors wrapped by *Error. A producer that hits one of them must fix
// the document it emits; a consumer must refuse the document.
var (
	// ErrSyntax: the input is not one well-formed UTF-8 JSON value. The json
	// package's error is wrapped too.
	ErrSyntax = errors.New("invalid JSON")
	// ErrTrailingData: something other than whitespace follows the JSON value.
	ErrTrailingData = errors.New("trailing data after the JSON value")
	// ErrDuplicateKey: an object repeats a key, or holds two keys that are equal
	// under Unicode case folding, or two keys of a map with integer keys that
	// name the same number ("1" and "01").
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrUnknownField: an object decoded into a struct has a key that is not
	// exactly (case-sensitively) the JSON name of one of its fields.
	ErrUnknownField = errors.New("unknown field")
	// ErrTooDeep: arrays and objects are nested deeper than MaxDepth.
	ErrTooDeep = errors.New("nesting too deep")
	// ErrType: the well-formed document does not fit the Go type: a type
	// mismatch (the *json.UnmarshalTypeError is wrapped too), a failing
	// UnmarshalJSON or UnmarshalText, or an array longer than a Go array.
	ErrType = errors.New("value does not fit the Go type")
	// ErrTooLarge: decoding the document would take more memory than
	// Budget allows for its size: thousands of "{}" or "0" elements, each
	// a few bytes of JSON but a whole Go value once decoded.
	ErrTooLarge = errors.New("decodes to too much memory for its size")
)

// Error is the error returned by Unmarshal and Check for a rejected document.
type Error struct {
	// Path is a JSON pointer (RFC 6901) to the object or value at fault, such
	// as "/artifacts/2"; "" is the whole document. For ErrType errors found by
	// encoding/json the path is "" and the wrapped error names the Go field.
	Path string
	// Key is the offending object key, for ErrDuplicateKey and ErrUnknownField.
	Key string
	// Earlier is, for ErrDuplicateKey, the earlier key when it is spelled
	// differently from Key (equal under case folding, or the same number).
	Earlier string
	// Err wraps one of the sentinel errors.
	Err error
}

// Error names the place and the key at fault, for example
// `json /artifacts/2: duplicate key "digest"`.
func (e *Error) Error() string {
	msg := "json: " + e.Err.Error()
	if e.Path != "" {
		msg = "json " + show(e.Path, false) + ": " + e.Err.Error()
	}
	if e.Key != "" || errors.Is(e.Err, ErrDuplicateKey) || errors.Is(e.Err, ErrUnknownField) {
		msg += " " + show(e.Key, true)
	}
	if e.Earlier != "" {
		msg += " (same as " + show(e.Earlier, true) + ")"
	}
	return msg
}

// Unwrap returns the sentinel error, with any json package error it wraps.
func (e *Error) Unwrap() error { return e.Err }

// show makes untrusted text safe and short enough for an error message.
func show(s string, quote bool) string {
	const limit = 120
	clipped := len(s) > limit
	if clipped {
		s = s[:limit]
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			quote = true
		}
	}
	if quote {
		s = strconv.Quote(s)
	}
	if clipped {
		s += "..."
	}
	return s
}
