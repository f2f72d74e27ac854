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
	"github.com/airlock-dev/airlock/internal/sbom"
)

// memFiles serves the bytes of local layers from memory, as pack serves
// files from disk.
type memFiles map[string][]byte

func (m memFiles) layer(p string, data []byte, mediaType string) LocalLayer {
	d := checked.Digest(data)
	m[d] = data
	return LocalLayer{Descriptor: Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, Path: p}
}

func (m memFiles) open(_ context.Context, d Descriptor) (io.ReadCloser, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, errors.New("no such blob " + d.Digest)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// testItems is a small release of local artifacts built with the Writer
// alone, no airlock.yaml: a model directory, two files and an SBOM.
func testItems(t testing.TB) []Item {
	t.Helper()
	files := memFiles{}
	big := bytes.Repeat([]byte("weights-0123456789abcdef"), 20000)
	model, err := NewModelItem("m", "models/m", "models/m", []LocalLayer{
		files.layer("README.md", []byte("# m\n"), ""),
		files.layer("config.json", []byte(`{"layers": 2}`), ""),
		files.layer("model.safetensors", big, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := NewFileItem("config/app.yaml", "etc/app.yaml", "0640", files.layer("app.yaml", []byte("port: 8080\n"), ""))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewFileItem("config/empty.json", "etc/empty.json", "0644", files.layer("empty.json", []byte("{}"), ""))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../internal/sbom/testdata/spdx-2.3-spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sbom.Summarize("x.spdx.json", bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := NewSBOMItem("sbom/x.spdx.json",
		&SBOMSummary{Format: string(sum.Format), SpecVersion: sum.SpecVersion, Name: sum.Name, Packages: sum.Packages},
		files.layer("x.spdx.json", doc, sum.Format.MediaType()), nil)
	if err != nil {
		t.Fatal(err)
	}
	items := []Item{*model, *app, *empty, *sb}
	for i := range items {
		items[i].Open = files.open
	}
	return items
}

// writeTest writes items as an unsigned bundle and returns its bytes.
func writeTest(t testing.TB, name, version string, items []Item) []byte {
	t.Helper()
	w, err := NewWriter(name, version, time.Unix(1767225600, 0), items)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name+".airlock")
	if _, err := w.WriteFile(context.Background(), out, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// packTest writes testItems and returns the bundle bytes.
func packTest(t testing.TB) []byte {
	t.Helper()
	return writeTest(t, "test", "1.0.0", testItems(t))
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

// writeV1 writes items as an unsigned version 1 bundle, as airlock wrote
// them before format v2: the head (no frame index), the padding frame, and
// the whole body as one zstd frame. Readers must keep reading these.
func writeV1(t testing.TB, name, version string, items []Item) []byte {
	t.Helper()
	w, err := NewWriter(name, version, time.Unix(1767225600, 0), items)
	if err != nil {
		t.Fatal(err)
	}
	w.version = 1
	st, err := newStatement(w.manifest, w.manifestDigest, int64(len(w.manifestRaw)), StatementOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := newEnvelope(st)
	if err != nil {
		t.Fatal(err)
	}
	if w.signatures, err = marshalIndent(env); err != nil {
		t.Fatal(err)
	}
	head, err := headBytes(w)
	if err != nil {
		t.Fatal(err)
	}
	var body []tarEntry
	for _, b := range w.body {
		rc, err := b.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, tarEntry{hdr: *tarHeader(blobName(b.Digest), b.Size, w.manifest.Created), data: data})
	}
	out := append(frame(t, head), paddingFrame(HeadPadding)...)
	return append(out, frame(t, tarBytes(t, body, true))...)
}

// rewriteHead returns bundle b with its head laid out again: each entry
// under the header airlock writes, with what edit returns as its content
// (edit may also change the header); a fresh padding frame and b's body
// follow. h is b's head as read.
func rewriteHead(t *testing.T, b []byte, edit func(h *Head, e headEntry, hdr *tar.Header) []byte) []byte {
	t.Helper()
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var entries []tarEntry
	for _, e := range h.raw {
		hdr := *tarHeader(e.name, int64(len(e.data)), h.Manifest.Created)
		data := edit(h, e, &hdr)
		hdr.Size = int64(len(data))
		entries = append(entries, tarEntry{hdr: hdr, data: data})
	}
	out := append(frame(t, tarBytes(t, entries, false)), paddingFrame(HeadPadding)...)
	return append(out, b[h.HeadSize+h.PaddingSize:]...)
}
