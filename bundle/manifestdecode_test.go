package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// sameAsUnmarshal fails t when fastDecodeUnion decodes raw (strict JSON)
// to anything but what json.Unmarshal decodes, and reports whether it
// decoded it.
func sameAsUnmarshal(t *testing.T, raw []byte) bool {
	t.Helper()
	got, ok := fastDecodeUnion(raw, false)
	if !ok {
		return false
	}
	var want nodeUnion
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: fastDecodeUnion decodes it, json.Unmarshal fails: %v", raw, err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("%s:\nfastDecodeUnion %#v\njson.Unmarshal  %#v", raw, *got, want)
	}
	return true
}

var plainManifests = append([]string{
	`{}`,
	`{"schemaVersion":-0,"mediaType":null,"config":{},"layers":[{}],"manifests":[{"platform":{}}],"annotations":{}}`,
	`{"layers":[{"annotations":{"a":"b","c":""},"platform":{"os":"linux","variant":"v8"},"extra":[1,{"x":"\"}"}]}],"x":{"y":[true,false,null,-1.5e3]}}`,
	` { "schemaVersion" : 2 , "layers" : [ ] , "manifests" : null , "subject" : null } `,
	`{"manifests":[{"mediaType":"m","digest":"sha256:aa","size":9223372036854775807,"annotations":{"k":"v"}}]}`,
	`{"mediaType":"café ☕"}`,
}, rootManifestSeeds...)

// notPlain are strict JSON that fastDecodeUnion leaves to json.Unmarshal:
// escapes, keys in another case, fractions, exponents, null elements and
// map values, wrong types, numbers out of range.
var notPlain = []string{
	`{"mediaType":"a\/b"}`, `{"MediaType":"x"}`, `{"layers":[{"Digest":"x"}]}`, `{"config":{"PLATFORM":null}}`, `{"schemaVersion":2.0}`,
	`{"schemaVersion":2e0}`, `{"layers":[null]}`, `{"annotations":{"a":null}}`, `{"annotations":{"a\u0062":"c"}}`, `{"size":1}`,
	`{"layers":[{"size":9223372036854775808}]}`, `{"config":[]}`, `{"layers":{}}`, `{"annotations":[]}`, `{"mediaType":1}`, `[]`, `"s"`,
	`{"manifests":[{"platform":"linux"}]}`, `{"schemaVersion":"2"}`, `{"\u006dediaType":"x"}`,
}

func TestFastDecodeUnion(t *testing.T) {
	t.Parallel()
	for _, s := range plainManifests[:6] {
		if strictjson.Check([]byte(s)) != nil {
			t.Fatalf("%s is not strict JSON", s)
		}
		if !sameAsUnmarshal(t, []byte(s)) {
			t.Errorf("%s: fastDecodeUnion left a plain manifest to json.Unmarshal", s)
		}
	}
	for _, s := range []string{rootManifestSeeds[0], rootManifestSeeds[1], rootManifestSeeds[2], rootManifestSeeds[4]} {
		if !sameAsUnmarshal(t, []byte(s)) {
			t.Errorf("%s: fastDecodeUnion left a plain manifest to json.Unmarshal", s)
		}
	}
	for _, s := range notPlain {
		if strictjson.Check([]byte(s)) != nil {
			t.Fatalf("%s is not strict JSON", s)
		}
		if sameAsUnmarshal(t, []byte(s)) && !strings.Contains(s, `"size"`) {
			t.Errorf("%s: fastDecodeUnion decoded it (the same as json.Unmarshal, but it should not take it on)", s)
		}
	}
}

// TestFastDecodeUnionRandom compares with json.Unmarshal on random
// manifests built from the members it reads, in plain and unusual forms.
func TestFastDecodeUnionRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 5))
	str := []string{`"a"`, `""`, `null`, `"é"`, `"a\"b"`, `1`}
	num := []string{`0`, `-7`, `2`, `null`, `1.5`, `"2"`, `99999999999999999999`}
	var value func(depth int) string
	obj := func(depth int, keys []string) string {
		var b strings.Builder
		b.WriteString("{")
		seen := map[string]bool{}
		for i := range r.IntN(5) {
			k := keys[r.IntN(len(keys))]
			if r.IntN(8) == 0 {
				k = strings.ToUpper(k[:1]) + k[1:]
			}
			if seen[strings.ToLower(k)] {
				continue
			}
			seen[strings.ToLower(k)] = true
			if i > 0 && b.Len() > 1 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%s", k, value(depth+1))
		}
		b.WriteString("}")
		return b.String()
	}
	allKeys := append(append(append([]string{"x", "data", "urls"}, unionFields...), layerFields...), platformFields...)
	value = func(depth int) string {
		if depth > 3 {
			return str[r.IntN(len(str))]
		}
		switch r.IntN(6) {
		case 0:
			return str[r.IntN(len(str))]
		case 1:
			return num[r.IntN(len(num))]
		case 2:
			n := r.IntN(3)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = value(depth + 1)
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		return obj(depth, allKeys)
	}
	plain := 0
	for range 50000 {
		raw := []byte(obj(0, allKeys))
		if strictjson.Check(raw) != nil {
			continue
		}
		if sameAsUnmarshal(t, raw) {
			plain++
		}
	}
	t.Logf("%d random manifests decoded by fastDecodeUnion", plain)
	if plain < 1000 {
		t.Fatalf("only %d random manifests were plain enough", plain)
	}
}

func FuzzFastDecodeUnion(f *testing.F) {
	for _, s := range append(plainManifests, notPlain...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if strictjson.Check(raw) != nil {
			return
		}
		sameAsUnmarshal(t, raw)
	})
}

// strictRefused are plain-looking manifests the strict decoder must leave
// to strictjson: each is refused by Check or has something Check must see.
var strictRefused = []string{
	`{"mediaType":"a","mediaType":"b"}`,                // repeated key
	`{"annotations":{"a":"1","A":"2"}}`,                // keys equal under case folding
	`{"annotations":{"k":"1","k":"2"}}`,                // repeated map key
	`{"layers":[{"digest":"x","digest":"y"}]}`,         // repeated key in a layer
	"{\"mediaType\":\"a\x01b\"}",                       // a raw control character
	"{\"mediaType\":\"\xff\"}",                         // not UTF-8
	`{"schemaVersion":02}`,                             // a leading zero
	`{"layers":[{"size":-01}]}`,                        // a leading zero
	`{"x":1}`,                                          // a member it does not read
	`{"config":{"platform":{"os":"l","features":[]}}}`, // the same, nested
}

// TestFastDecodeUnionStrict: the strict decoder takes plain manifests and
// leaves to strictjson whatever strictjson must judge.
func TestFastDecodeUnionStrict(t *testing.T) {
	t.Parallel()
	for _, s := range plainManifests[:2] {
		if _, ok := fastDecodeUnion([]byte(s), true); !ok {
			t.Errorf("%s: the strict decoder refused a plain manifest", s)
		}
	}
	for _, s := range strictRefused {
		if _, ok := fastDecodeUnion([]byte(s), true); ok {
			t.Errorf("%q: the strict decoder took it", s)
		}
	}
	var keys []string
	for i := range maxPlainMapKeys + 1 {
		keys = append(keys, fmt.Sprintf(`"k%d":"v"`, i))
	}
	if _, ok := fastDecodeUnion([]byte(`{"annotations":{`+strings.Join(keys, ",")+`}}`), true); ok {
		t.Errorf("the strict decoder took a map of %d keys", len(keys))
	}
}

// FuzzFastDecodeUnionStrict: on any input, what the strict decoder decodes
// strictjson.Check accepts, and it equals json.Unmarshal's result.
func FuzzFastDecodeUnionStrict(f *testing.F) {
	for _, s := range append(append(plainManifests, notPlain...), strictRefused...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := fastDecodeUnion(raw, true)
		if !ok {
			return
		}
		if err := strictjson.Check(raw); err != nil {
			t.Fatalf("%q: the strict decoder took what Check refuses: %v", raw, err)
		}
		var want nodeUnion
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("%q: the strict decoder took what json.Unmarshal refuses: %v", raw, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%q:\nstrict decoder %#v\njson.Unmarshal %#v", raw, *got, want)
		}
	})
}

// TestFastDecodeUnionBudget: the plain decoder refuses what strictjson
// refuses as decoding to too much for its size (a manifest of 200,000
// "{}" layers), and parseNode refuses it too; a manifest of MaxFanOut
// real layers is within the budget of both.
func TestFastDecodeUnionBudget(t *testing.T) {
	layer := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("ef", 32) + `","size":1234}`
	manifest := func(layers string, n int) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[` + strings.Repeat(layers+",", n-1) + layers + `]}`)
	}
	tinyLayers := manifest("{}", 200_000)
	if _, ok := fastDecodeUnion(tinyLayers, true); ok {
		t.Error("the strict plain decoder decoded 200,000 empty layers")
	}
	if err := strictjson.Check(tinyLayers); !errors.Is(err, strictjson.ErrTooLarge) {
		t.Errorf("Check: %v, want ErrTooLarge", err)
	}
	d := Descriptor{MediaType: MediaTypeOCIManifest, Digest: checked.Digest(tinyLayers), Size: int64(len(tinyLayers))}
	if _, _, err := parseNode(d, tinyLayers); !errors.Is(err, strictjson.ErrTooLarge) {
		t.Errorf("parseNode: %v, want ErrTooLarge", err)
	}
	real := manifest(layer, MaxFanOut)
	if u, ok := fastDecodeUnion(real, true); !ok || len(u.Layers) != MaxFanOut {
		t.Error("the strict plain decoder refused a manifest of MaxFanOut layers")
	}
	if err := strictjson.Check(real); err != nil {
		t.Error(err)
	}
}
