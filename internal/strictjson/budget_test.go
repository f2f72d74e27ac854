package strictjson

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// tiny repeats elem n times as the elements of an array (or members of an
// object when elem has a %d for the key).
func tiny(open, elem, close string, n int) []byte {
	var b strings.Builder
	b.WriteString(open)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.Contains(elem, "%d") {
			fmt.Fprintf(&b, elem, i)
		} else {
			b.WriteString(elem)
		}
	}
	b.WriteString(close)
	return []byte(b.String())
}

type bigElem struct {
	A, B, C, D, E, F string
	N                [8]int64
	P                *bigElem `json:"p"`
}

// TestBudgetRefusesTinyValues: documents made of values a few bytes long
// that each decode into a whole Go value are refused with ErrTooLarge, by
// Unmarshal (typed) and by Check (untyped), whatever the container.
func TestBudgetRefusesTinyValues(t *testing.T) {
	type doc struct {
		Items []bigElem          `json:"items"`
		Map   map[string]bigElem `json:"map"`
		Any   any                `json:"any"`
		Ptrs  []*bigElem         `json:"ptrs"`
	}
	for _, c := range []struct {
		name string
		data []byte
		path string
	}{
		{"structs in an array", tiny(`{"items":[`, `{}`, `]}`, 200_000), "/items/"},
		{"pointers in an array", tiny(`{"ptrs":[`, `{}`, `]}`, 200_000), "/ptrs/"},
		{"null pointers in an array", tiny(`{"ptrs":[`, `null`, `]}`, 200_000), "/ptrs/"},
		{"structs in a map", tiny(`{"map":{`, `"%d":{}`, `}}`, 200_000), "/map/"},
		{"numbers decoded into any", tiny(`{"any":[`, `0`, `]}`, 200_000), "/any/"},
		{"members decoded into any", tiny(`{"any":{`, `"%d":0`, `}}`, 400_000), "/any/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v doc
			err := Unmarshal(c.data, &v)
			var e *Error
			if !errors.Is(err, ErrTooLarge) || !errors.As(err, &e) || !strings.HasPrefix(e.Path, c.path) {
				t.Fatalf("Unmarshal of %d bytes: %v, want ErrTooLarge at %s...", len(c.data), err, c.path)
			}
			if v.Items != nil || v.Map != nil || v.Any != nil || v.Ptrs != nil {
				t.Fatal("Unmarshal decoded a document it refused")
			}
		})
	}
	for _, data := range [][]byte{tiny(`[`, `{}`, `]`, 100_000), tiny(`[`, `0`, `]`, 100_000), tiny(`[`, `[]`, `]`, 100_000), tiny(`{`, `"%d":[]`, `}`, 400_000)} {
		if err := Check(data); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Check of %.20s... (%d bytes): %v, want ErrTooLarge", data, len(data), err)
		}
	}
}

// TestBudgetAcceptsWrittenDocuments: documents shaped like the ones
// producers write (descriptors with digests and annotations; structs with
// their fields set) stay under half the budget, however long.
func TestBudgetAcceptsWrittenDocuments(t *testing.T) {
	desc := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("ab", 32) + `","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}`
	index := tiny(`{"schemaVersion":2,"manifests":[`, desc, `]}`, 20_000)
	type elem struct {
		Kind, Target, Digest string
		Size                 int64
		Platforms            []string
	}
	typed := tiny(`{"items":[`, `{"Kind":"file","Target":"etc/app/%d.yaml","Digest":"sha256:`+strings.Repeat("cd", 32)+`","Size":120,"Platforms":["linux/amd64"]}`, `]}`, 20_000)
	for _, c := range []struct {
		data []byte
		t    reflect.Type
	}{
		{index, nil},
		{typed, reflect.TypeFor[struct {
			Items []elem `json:"items"`
		}]()},
		{[]byte(`{"a":[1,2,3],"b":{"c":"d"}}`), nil},
	} {
		w := &walker{fast: &scanner{s: string(c.data)}, budget: Budget(len(c.data))}
		if err := w.value(c.t); err != nil {
			t.Fatalf("%.30s...: %v", c.data, err)
		}
		if w.cost > Budget(len(c.data))/2 {
			t.Errorf("%.30s... (%d bytes) costs %d, more than half its budget %d", c.data, len(c.data), w.cost, Budget(len(c.data)))
		}
	}
	if err := Check(index); err != nil {
		t.Fatal(err)
	}
}
