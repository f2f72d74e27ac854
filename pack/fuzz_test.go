package pack

import (
	"os"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
)

// FuzzParseSpec: no input panics the airlock.yaml parser, and whatever it
// accepts passes validation again.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(goodSpec))
	if b, err := os.ReadFile("../testdata/sample/airlock.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("name: a\nversion: 1.0.0\nfiles: [{source: a, target: b}]\n"))
	f.Add([]byte("name: a\nname: b\n"))
	f.Add([]byte("- [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec("airlock.yaml", data)
		if err != nil {
			return
		}
		if !bundle.ValidName(s.Name) || !bundle.ValidVersion(s.Version) {
			t.Fatalf("accepted invalid name/version %q %q", s.Name, s.Version)
		}
	})
}
