package pkcs11key

import (
	"net/url"
	"strconv"
	"strings"
)

// Scheme is the prefix that makes a --key value a PKCS#11 URI instead of a
// file path.
const Scheme = "pkcs11:"

// maxURI bounds the length of a URI airlock parses.
const maxURI = 4096

// URI is the part of an RFC 7512 PKCS#11 URI that airlock uses. Exactly one
// of Token, Serial and SlotID selects the token; Object (CKA_LABEL) and/or
// ID (CKA_ID) select the key pair on it.
type URI struct {
	Token  string // "token": the token label
	Serial string // "serial": the token serial number
	SlotID *int   // "slot-id": the slot number
	Object string // "object": the key's label
	ID     []byte // "id": the key's CKA_ID, percent-encoded bytes
	// ModulePath is the "module-path" query attribute: the PKCS#11 library
	// to load; empty means Options.ModulePath, then DefaultModulePath.
	ModulePath string
	// PINSource is the "pin-source" query attribute: a file holding the PIN
	// ("file:" URI or a plain path); empty means Options.PIN.
	PINSource string

	raw string
}

// String returns the URI as given (it never holds a PIN: pin-value is
// refused).
func (u *URI) String() string { return u.raw }

// IsURI reports whether a --key value names a PKCS#11 key rather than a file.
func IsURI(s string) bool { return len(s) >= len(Scheme) && strings.EqualFold(s[:len(Scheme)], Scheme) }

// ParseURI parses an RFC 7512 URI such as
// "pkcs11:token=release;object=airlock-release?pin-source=/run/pin". It
// refuses, with ErrBadURI: duplicate attributes, attributes airlock would
// have to ignore (manufacturer, model, library-*: a key must not be chosen
// by fewer attributes than the URI names), pin-value (a PIN on a command
// line is visible to every process), module-name, a type other than
// private, and a URI that selects no token or no key.
func ParseURI(s string) (*URI, error) {
	if !IsURI(s) {
		return nil, wrap(s, ErrBadURI, "does not start with %q", Scheme)
	}
	if len(s) > maxURI {
		return nil, wrap(s[:64]+"...", ErrBadURI, "longer than %d bytes", maxURI)
	}
	u := &URI{raw: s}
	rest := s[len(Scheme):]
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(rest, "#") {
		return nil, wrap(s, ErrBadURI, "a fragment (#) is not part of a PKCS#11 URI")
	}
	seen := map[string]bool{}
	attr := func(part, sep string) (string, string, error) {
		name, raw, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return "", "", wrap(s, ErrBadURI, "attribute %q is not name=value (attributes are separated by %q)", part, sep)
		}
		if seen[name] {
			return "", "", wrap(s, ErrBadURI, "attribute %q appears twice", name)
		}
		seen[name] = true
		v, err := url.PathUnescape(raw)
		if err != nil {
			return "", "", wrap(s, ErrBadURI, "attribute %q: %v", name, err)
		}
		return name, v, nil
	}
	if path != "" {
		for _, part := range strings.Split(path, ";") {
			name, v, err := attr(part, ";")
			if err != nil {
				return nil, err
			}
			switch name {
			case "token":
				u.Token = v
			case "serial":
				u.Serial = v
			case "slot-id":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, wrap(s, ErrBadURI, "slot-id %q is not a slot number", v)
				}
				u.SlotID = &n
			case "object":
				u.Object = v
			case "id":
				u.ID = []byte(v)
			case "type":
				if v != "private" {
					return nil, wrap(s, ErrBadURI, "type=%s: airlock signs with a private key (type=private, or leave type out)", v)
				}
			case "manufacturer", "model", "library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer":
				return nil, wrap(s, ErrBadURI, "attribute %q is not used to choose a token; select it by exactly one of token, serial or slot-id", name)
			default:
				return nil, wrap(s, ErrBadURI, "unknown path attribute %q (airlock reads token, serial, slot-id, object, id, type)", name)
			}
		}
	}
	if query != "" {
		for _, part := range strings.Split(query, "&") {
			name, v, err := attr(part, "&")
			if err != nil {
				return nil, err
			}
			switch name {
			case "module-path":
				if v == "" {
					return nil, wrap(s, ErrBadURI, "module-path is empty")
				}
				u.ModulePath = v
			case "pin-source":
				if p, ok := strings.CutPrefix(v, "file:"); ok {
					fu, err := url.Parse(v)
					if err != nil || (fu.Host != "" && fu.Host != "localhost") {
						return nil, wrap(s, ErrBadURI, "pin-source %q is not a local file: URI", v)
					}
					p = fu.Path
					if p == "" {
						p = fu.Opaque
					}
					v = p
				}
				if v == "" {
					return nil, wrap(s, ErrBadURI, "pin-source names no file")
				}
				u.PINSource = v
			case "pin-value":
				return nil, wrap(s, ErrBadURI, "pin-value would put the PIN on the command line; use pin-source=FILE or the PIN environment variable")
			case "module-name":
				return nil, wrap(s, ErrBadURI, "module-name is not supported; give the library with module-path=/path/to/module.so")
			default:
				return nil, wrap(s, ErrBadURI, "unknown query attribute %q (airlock reads module-path and pin-source)", name)
			}
		}
	}
	selectors := 0
	for _, set := range []bool{u.Token != "", u.Serial != "", u.SlotID != nil} {
		if set {
			selectors++
		}
	}
	if selectors != 1 {
		return nil, wrap(s, ErrBadURI, "select the token by exactly one of token=LABEL, serial=SERIAL or slot-id=N (%d given)", selectors)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, wrap(s, ErrBadURI, "select the key with object=LABEL and/or id=%%XX..")
	}
	return u, nil
}
