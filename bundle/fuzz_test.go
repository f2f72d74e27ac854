package bundle

import (
	"bytes"
	"testing"
)

// FuzzReader: no input panics the bundle reader or makes it accept a bundle
// whose head it cannot read on its own.
func FuzzReader(f *testing.F) {
	b := packTiny(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := readAll(data); err != nil {
			return
		}
		if _, err := ReadHead(bytes.NewReader(data)); err != nil {
			t.Fatalf("reader accepted a bundle whose head fails alone: %v", err)
		}
	})
}

// packTiny writes a one-file release: a small seed keeps the fuzzer fast.
func packTiny(t testing.TB) []byte {
	t.Helper()
	files := memFiles{}
	it, err := NewFileItem("app.yaml", "etc/app.yaml", "0644", files.layer("app.yaml", []byte("port: 8080\n"), ""))
	if err != nil {
		t.Fatal(err)
	}
	it.Open = files.open
	return writeTest(t, "tiny", "0.1.0", []Item{*it})
}
