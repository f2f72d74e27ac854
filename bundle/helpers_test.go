package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/internal/checked"
)

// testSpec writes a small release of local artifacts (a model directory, two
// files and an SBOM) and returns its spec.
func testSpec(t testing.TB) *Spec {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("weights-0123456789abcdef"), 20000)
	write("models/m/model.safetensors", big)
	write("models/m/config.json", []byte(`{"layers": 2}`))
	write("models/m/README.md", []byte("# m\n"))
	write("config/app.yaml", []byte("port: 8080\n"))
	write("config/empty.json", []byte("{}"))
	sbom, err := os.ReadFile("../internal/sbom/testdata/spdx-2.3-spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	write("sbom/x.spdx.json", sbom)
	yml := `name: test
version: 1.0.0
models:
  - source: models/m
    name: m
    target: models/m
files:
  - source: config/app.yaml
    target: etc/app.yaml
    mode: "0640"
  - source: config/empty.json
    target: etc/empty.json
sboms:
  - source: sbom/x.spdx.json
`
	write("airlock.yaml", []byte(yml))
	s, err := LoadSpec(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// packTest packs testSpec and returns the bundle bytes.
func packTest(t testing.TB) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "t.airlock")
	if _, err := Pack(context.Background(), testSpec(t), PackOptions{Output: out, Created: time.Unix(1767225600, 0)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// splitBundle decodes a bundle into its head and body tar entries.
func splitBundle(t testing.TB, b []byte) (head, body []tarEntry) {
	t.Helper()
	s := newFrameScanner(bytes.NewReader(b), 2, MaxHeadSize)
	frame, err := s.nextFrame(MaxHeadCompressed)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.skipPadding(); err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	hb, err := dec.DecodeAll(frame, nil)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := dec.DecodeAll(rest, nil)
	if err != nil {
		t.Fatal(err)
	}
	return readEntries(t, hb), readEntries(t, bb)
}

func readEntries(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: *hdr, data: data})
	}
}

// tarBytes lays out entries; with end it appends the end-of-archive marker.
func tarBytes(t testing.TB, entries []tarEntry, end bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Size == 0 && len(e.data) > 0 && h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if end {
		tw.Close()
	} else {
		tw.Flush()
	}
	return buf.Bytes()
}

// frame compresses b as one zstd frame.
func frame(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// assemble builds a bundle from head and body entries.
func assemble(t testing.TB, head, body []tarEntry) []byte {
	t.Helper()
	return append(frame(t, tarBytes(t, head, false)), frame(t, tarBytes(t, body, true))...)
}

// readAll streams a bundle to the end and returns the first error other than
// io.EOF, or nil when the bundle verified.
func readAll(b []byte) error {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, e); err != nil && !errors.Is(err, ErrIntegrity) {
			return err
		}
	}
}

func checkedDigest(b []byte) string { return checked.Digest(b) }
