package strictjson

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var docType = reflect.TypeFor[doc]()

// sameVerdict fails t when the fast walk and the Decoder's walk disagree on
// whether data is accepted, untyped (Check) and into doc (Unmarshal). The
// fast walk accepting what the Decoder's walk refuses would let a document
// through; the reverse only costs time, but is a bug too.
func sameVerdict(t *testing.T, data []byte) {
	t.Helper()
	if !utf8.Valid(data) {
		return // walk refuses it before either walk runs
	}
	for _, typ := range []reflect.Type{nil, docType} {
		fast := fastWalk(data, typ)
		slowErr := decoderWalk(data, typ)
		if fast != (slowErr == nil) {
			t.Fatalf("%q into %v: fast walk accepts: %v; Decoder's walk: %v", data, typ, fast, slowErr)
		}
	}
}

// TestFastWalkAgrees compares the two walks on every test input, on
// syntax edge cases, and on every prefix of some of them.
func TestFastWalkAgrees(t *testing.T) {
	t.Parallel()
	inputs := []string{
		``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `-`, `01`, `1.`, `.5`, `1e`, `1e+`, `1E-7`, `-1.5e+10`, `1.5E308`, `2 3`, `{} {}`, `{}x`, "{}\n\t\r ",
		`true`, `tru`, `truex`, `nul`, `null `, `false`, `[true,false,null]`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
		`{"a":1 "b":2}`, `[}`, `{]`, `[[]]]`, `[[[`, `"\u00e9"`, `"\uD800"`, `"\uDC00\uD800"`, `"\u12"`, `"\u12G4"`, `"\x"`, `"\/"`, `"a` + "\x01" + `"`,
		"\"a\x7f\"", `"unterminated`, `"\`, `{"\u0061":1,"a":2}`, `{"\u212a":1,"K":2}`, `{"k":1,"\u212A":2}`, `{"\uD800":1,"\uFFFD":2}`, `{"ß":1,"SS":2}`,
		`{"ſ":1,"s":2}`, `{"name":"a","\u006eame":"b"}`, `{"counts":{"7":"a","07":"b"}}`, `{"counts":{"-0":"a","0":"b"}}`, `{"counts":{"x":"a","X":"b"}}`,
		`{"pair":[1,2]}`, `{"pair":[1,2,3]}`, `{"pair":[]}`, `{"pair":{"a":1}}`, `{"artifacts":{"digest":1}}`, `{"name":{"x":1,"x":2}}`,
		`{"level":"low","labels":{"a":"high"}}`, `{"Untagged":"u"}`, `{"untagged":"u"}`, `{"ptr":null}`, `{"any":{"a":[{"b":{}}]}}`,
		"\ufeff{}", `{"a":"b"}`, `[` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `]`, nest(MaxDepth), nest(MaxDepth + 1),
	}
	var many strings.Builder
	many.WriteString(`{"any":{`)
	for i := range 40 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	many.WriteString(`"K7":0}}`) // a repeat found in the map, past manyKeys
	inputs = append(inputs, many.String(), strings.Replace(many.String(), `"K7"`, `"K77"`, 1))
	for _, c := range rejectCases {
		inputs = append(inputs, c.in)
	}
	for _, in := range inputs {
		sameVerdict(t, []byte(in))
	}
	for _, in := range []string{`{"name":"a","artifacts":[{"digest":"d","size":1,"annotations":{"k":"v"}}],"any":{"b":[1.5,"\u00e9",null]}}`, many.String()} {
		for i := range len(in) {
			sameVerdict(t, []byte(in[:i]))
		}
	}
}

// TestFastWalkRandom compares the two walks on random documents made of
// JSON tokens and of bytes that break them, with keys that collide under
// case folding or as numbers.
func TestFastWalkRandom(t *testing.T) {
	t.Parallel()
	pieces := []string{`{`, `}`, `[`, `]`, `:`, `,`, ` `, `"name"`, `"NAME"`, `"k"`, `"\u212a"`, `"counts"`, `"1"`, `"01"`, `"pair"`, `"any"`,
		`"artifacts"`, `"digest"`, `"x"`, `"\u0078"`, `1`, `-0.5e3`, `true`, `null`, `"v"`, `"\ud800"`, `"\q"`, `0x1`, `tru`, `"`, `\`}
	r := rand.New(rand.NewPCG(11, 4))
	for range 200000 {
		var b strings.Builder
		for range 1 + r.IntN(14) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		sameVerdict(t, []byte(b.String()))
	}
}

// FuzzFastWalk compares the fast walk with the Decoder's walk.
func FuzzFastWalk(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sameVerdict(t, data)
	})
}

// BenchmarkCheckManifest checks a typical OCI manifest of a file artifact.
func BenchmarkCheckManifest(b *testing.B) {
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.airlock.file.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:4bd6c22976f2d19c66bf76fc28b24799786238787226fd32ca091f869088557c","size":54,"annotations":{"org.opencontainers.image.title":"app0001.yaml"}}],"annotations":{"dev.airlock.kind":"file","dev.airlock.mode":"0644","dev.airlock.target":"etc/svc01/app0001.yaml"}}`)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			if err := Check(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder", func(b *testing.B) {
		for range b.N {
			if err := decoderWalk(m, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
