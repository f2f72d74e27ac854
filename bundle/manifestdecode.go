package bundle

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/strictjson"
)

// fastDecodeUnion decodes raw into a nodeUnion as json.Unmarshal does, for
// the plain form in which airlock and registries write manifests: keys
// spelled exactly as the fields, strings without escapes, integers without
// fraction or exponent, no null inside arrays and maps. For anything else
// it returns false and decodeBoth uses json.Unmarshal. raw has passed
// strictjson.Check (valid UTF-8 JSON, no repeated keys), so the decoder
// does not describe syntax errors; it only refuses what it does not expect.
// A head of thousands of artifacts is mostly such manifests, and
// encoding/json spent about 15 us on each. TestFastDecodeUnion and
// FuzzFastDecodeUnion compare the result with json.Unmarshal's.
//
// With strict, it also refuses anything strictjson.Check might refuse, so
// that a manifest it decodes needs no Check: a key not among the fields it
// reads, a key repeated in an object or equal to another under case
// folding, a string holding a control character or invalid UTF-8, a number
// with a leading zero, a map of more than maxPlainMapKeys keys, and a
// document strictjson would refuse as decoding to too much for its size. raw
// need not have passed Check then. FuzzFastDecodeUnionStrict checks that
// what it decodes, Check accepts.
func fastDecodeUnion(raw []byte, strict bool) (*nodeUnion, bool) {
	d := &plainDecoder{s: string(raw), strict: strict, budget: strictjson.Budget(len(raw))}
	var u nodeUnion
	ok := d.object(unionFields, func(key string) bool {
		switch key {
		case "schemaVersion":
			return d.int(func(n int64) { u.SchemaVersion = int(n) })
		case "mediaType":
			return d.str(&u.MediaType)
		case "artifactType":
			return d.str(&u.ArtifactType)
		case "config":
			return d.descriptor(&u.Config)
		case "subject":
			return d.descriptor(&u.Subject)
		case "manifests":
			return d.array(func() bool {
				u.Manifests = append(u.Manifests, ociDescriptor{})
				return d.descriptorFields(&u.Manifests[len(u.Manifests)-1], nil)
			}, func() { u.Manifests = []ociDescriptor{} })
		case "layers":
			return d.array(func() bool {
				u.Layers = append(u.Layers, unionLayer{})
				l := &u.Layers[len(u.Layers)-1]
				var desc ociDescriptor
				if !d.descriptorFields(&desc, &l.Annotations) {
					return false
				}
				l.MediaType, l.Digest, l.Size, l.Platform = desc.MediaType, desc.Digest, desc.Size, desc.Platform
				return true
			}, func() { u.Layers = []unionLayer{} })
		case "annotations":
			return d.stringMap(&u.Annotations)
		}
		return d.skip()
	})
	if !ok {
		return nil, false
	}
	d.space()
	return &u, d.pos == len(d.s)
}

// The JSON names of the fields of nodeUnion, ociDescriptor (plus the
// layers' annotations) and ociPlatform. A key that differs from one of them
// only in case would be matched to it by encoding/json: plainDecoder
// refuses such keys.
var (
	unionFields      = []string{"schemaVersion", "mediaType", "artifactType", "config", "subject", "layers", "manifests", "annotations"}
	descriptorFields = []string{"mediaType", "digest", "size", "platform"}
	layerFields      = []string{"mediaType", "digest", "size", "platform", "annotations"}
	platformFields   = []string{"os", "architecture", "variant"}
)

// plainDecoder reads the plain JSON fastDecodeUnion accepts.
type plainDecoder struct {
	s      string
	pos    int
	strict bool // see fastDecodeUnion
	// cost counts the members and elements read as strictjson.Check
	// counts them, so that the decoder refuses a document Check would
	// refuse as too large for its size (budget is strictjson.Budget).
	cost, budget int64
}

// spend adds c to the decoder's cost and reports whether it is still
// within the budget.
func (d *plainDecoder) spend(c int64) bool {
	d.cost += c
	return d.cost <= d.budget
}

// maxPlainMapKeys bounds the keys of a map the strict decoder compares
// with each other under case folding; a larger map goes to strictjson.
const maxPlainMapKeys = 32

func (d *plainDecoder) space() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (d *plainDecoder) peek() byte {
	d.space()
	if d.pos >= len(d.s) {
		return 0
	}
	return d.s[d.pos]
}

// literal consumes lit if it comes next.
func (d *plainDecoder) literal(lit string) bool {
	d.space()
	if strings.HasPrefix(d.s[d.pos:], lit) {
		d.pos += len(lit)
		return true
	}
	return false
}

// plainString reads a string without escapes.
func (d *plainDecoder) plainString() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	end := strings.IndexAny(d.s[d.pos+1:], `"\`)
	if end < 0 || d.s[d.pos+1+end] != '"' {
		return "", false // an escape: leave it to encoding/json
	}
	v := d.s[d.pos+1 : d.pos+1+end]
	if d.strict {
		ascii := true
		for i := range len(v) {
			if v[i] < 0x20 {
				return "", false // a control character must be escaped
			}
			ascii = ascii && v[i] < utf8.RuneSelf
		}
		if !ascii && !utf8.ValidString(v) {
			return "", false
		}
	}
	d.pos += end + 2
	return v, true
}

// object reads an object, calling member for each key in fields (every
// key when fields is nil: a map) after consuming the colon; member must
// consume the value. Other keys are skipped, but a key that equals one of
// fields under case folding is refused.
func (d *plainDecoder) object(fields []string, member func(key string) bool) bool {
	if !d.literal("{") {
		return false
	}
	if d.literal("}") {
		return true
	}
	var seen uint64   // strict: the fields met, by index
	var keys []string // strict: a map's keys so far
	for {
		key, ok := d.plainString()
		if !ok || !d.literal(":") || !d.spend(strictjson.MemberCost) {
			return false
		}
		exact := fields == nil
		for i, f := range fields {
			if key == f {
				exact = true
				if d.strict {
					if seen&(1<<i) != 0 {
						return false
					}
					seen |= 1 << i
				}
				break
			}
			if strings.EqualFold(key, f) {
				return false
			}
		}
		if d.strict {
			if !exact {
				return false // skip would not check it
			}
			if fields == nil {
				if len(keys) == maxPlainMapKeys {
					return false
				}
				for _, k := range keys {
					if strings.EqualFold(k, key) {
						return false
					}
				}
				keys = append(keys, key)
			}
		}
		if exact {
			if !member(key) {
				return false
			}
		} else if !d.skip() {
			return false
		}
		if d.literal(",") {
			continue
		}
		return d.literal("}")
	}
}

// array reads null (leaving the slice nil) or an array, calling elem for
// each element and empty for an empty array (encoding/json makes an empty,
// non-nil slice). A null element is refused.
func (d *plainDecoder) array(elem func() bool, empty func()) bool {
	if d.literal("null") {
		return true
	}
	if !d.literal("[") {
		return false
	}
	if d.literal("]") {
		empty()
		return true
	}
	for {
		if d.peek() != '{' || !d.spend(strictjson.ElementCost) || !elem() {
			return false
		}
		if d.literal(",") {
			continue
		}
		return d.literal("]")
	}
}

// str reads null (leaving *v alone) or a plain string into *v.
func (d *plainDecoder) str(v *string) bool {
	if d.literal("null") {
		return true
	}
	s, ok := d.plainString()
	if ok {
		*v = s
	}
	return ok
}

// int reads null (nothing) or an integer without fraction or exponent that
// fits in 64 bits, passing it to set.
func (d *plainDecoder) int(set func(int64)) bool {
	if d.literal("null") {
		return true
	}
	d.space()
	i := d.pos
	if i < len(d.s) && d.s[i] == '-' {
		i++
	}
	j := i
	for j < len(d.s) && '0' <= d.s[j] && d.s[j] <= '9' {
		j++
	}
	if j == i || j < len(d.s) && (d.s[j] == '.' || d.s[j] == 'e' || d.s[j] == 'E') {
		return false
	}
	if d.strict && d.s[i] == '0' && j > i+1 {
		return false // a leading zero is not JSON
	}
	n, err := strconv.ParseInt(d.s[d.pos:j], 10, 64)
	if err != nil {
		return false
	}
	d.pos = j
	set(n)
	return true
}

// descriptor reads null (a nil pointer) or a descriptor object.
func (d *plainDecoder) descriptor(p **ociDescriptor) bool {
	if d.literal("null") {
		*p = nil
		return true
	}
	if d.peek() != '{' {
		return false
	}
	*p = &ociDescriptor{}
	return d.descriptorFields(*p, nil)
}

// descriptorFields reads a descriptor object into desc; with annotations
// non-nil (a layer) it reads the annotations member too.
func (d *plainDecoder) descriptorFields(desc *ociDescriptor, annotations *map[string]string) bool {
	fields := descriptorFields
	if annotations != nil {
		fields = layerFields
	}
	return d.object(fields, func(key string) bool {
		switch key {
		case "mediaType":
			return d.str(&desc.MediaType)
		case "digest":
			return d.str(&desc.Digest)
		case "size":
			return d.int(func(n int64) { desc.Size = n })
		case "platform":
			if d.literal("null") {
				desc.Platform = nil
				return true
			}
			desc.Platform = &ociPlatform{}
			pl := desc.Platform
			return d.object(platformFields, func(key string) bool {
				switch key {
				case "os":
					return d.str(&pl.OS)
				case "architecture":
					return d.str(&pl.Architecture)
				}
				return d.str(&pl.Variant)
			})
		}
		return d.stringMap(annotations) // "annotations", only in layerFields
	})
}

// stringMap reads null (a nil map) or an object of plain strings.
func (d *plainDecoder) stringMap(m *map[string]string) bool {
	if d.literal("null") {
		*m = nil
		return true
	}
	if d.peek() != '{' {
		return false
	}
	mm := map[string]string{}
	*m = mm
	return d.object(nil, func(key string) bool {
		v, ok := d.plainString() // not null: encoding/json would store ""
		mm[key] = v
		return ok
	})
}

// skip consumes one value of any kind (the input is valid JSON).
func (d *plainDecoder) skip() bool {
	depth := 0
	for {
		switch c := d.peek(); c {
		case 0:
			return false
		case '"':
			i := d.pos + 1
			for i < len(d.s) && d.s[i] != '"' {
				if d.s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(d.s) {
				return false
			}
			d.pos = i + 1
		case '{', '[':
			depth++
			d.pos++
			continue
		case '}', ']':
			depth--
			d.pos++
			if depth < 0 {
				return false
			}
		case ',', ':':
			if depth == 0 {
				return false
			}
			d.pos++
			continue
		default: // a number, true, false or null
			for d.pos < len(d.s) && !strings.ContainsRune(" \t\n\r,:]}", rune(d.s[d.pos])) {
				d.pos++
			}
		}
		if depth == 0 {
			return true
		}
	}
}
