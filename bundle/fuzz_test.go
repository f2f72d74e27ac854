package bundle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
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
		if !bundleNameRE.MatchString(s.Name) || !semverRE.MatchString(s.Version) {
			t.Fatalf("accepted invalid name/version %q %q", s.Name, s.Version)
		}
	})
}

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

// packTiny packs a one-file release: a small seed keeps the fuzzer fast.
func packTiny(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("port: 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := ParseSpec(filepath.Join(dir, "airlock.yaml"), []byte("name: tiny\nversion: 0.1.0\nfiles:\n  - {source: app.yaml, target: etc/app.yaml}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tiny.airlock")
	if _, err := Pack(context.Background(), spec, PackOptions{Output: out, Created: time.Unix(1767225600, 0)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
