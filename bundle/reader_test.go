package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
)

var (
	validOnce   sync.Once
	validBundle []byte
)

// valid returns a copy of a packed test bundle (packed once per process).
func valid(t *testing.T) []byte {
	t.Helper()
	validOnce.Do(func() { validBundle = writeV1(t, "test", "1.0.0", testItems(t)) })
	if validBundle == nil {
		t.Fatal("packing the test bundle failed")
	}
	return bytes.Clone(validBundle)
}

func TestReaderAcceptsPackedBundle(t *testing.T) {
	t.Parallel()
	b := valid(t)
	if err := readAll(b); err != nil {
		t.Fatalf("valid bundle rejected: %v", err)
	}
	head, body := splitBundle(t, b)
	if head[0].hdr.Name != EntryFormat || head[1].hdr.Name != EntrySignatures || head[2].hdr.Name != EntryManifest || head[4].hdr.Name != EntryIndex {
		t.Fatalf("head order: %v %v %v %v", head[0].hdr.Name, head[1].hdr.Name, head[2].hdr.Name, head[4].hdr.Name)
	}
	// The version this build writes reads too.
	if err := readAll(packTest(t)); err != nil {
		t.Fatalf("a version %d bundle rejected: %v", FormatVersion, err)
	}
	if len(body) == 0 {
		t.Fatal("no body blobs")
	}
	// Re-assembling the same entries (a different but valid compression) is accepted.
	if err := readAll(assemble(t, head, body)); err != nil {
		t.Fatalf("re-assembled bundle rejected: %v", err)
	}
}

// mutateEntries builds a bundle after changing its entries.
func mutateEntries(t *testing.T, f func(head, body []tarEntry) ([]tarEntry, []tarEntry)) []byte {
	t.Helper()
	head, body := splitBundle(t, valid(t))
	before := assemble(t, head, body)
	head, body = f(head, body)
	after := assemble(t, head, body)
	if bytes.Equal(before, after) {
		t.Fatal("the mutation changed nothing; fix the test")
	}
	return after
}

func TestReaderRejects(t *testing.T) {
	t.Parallel()
	bodyBlob := func(body []tarEntry) int { // index of the largest body entry
		best := 0
		for i, e := range body {
			if len(e.data) > len(body[best].data) {
				best = i
			}
		}
		return best
	}
	headBlob := func(head []tarEntry) int {
		for i, e := range head {
			if strings.HasPrefix(e.hdr.Name, "blobs/") {
				return i
			}
		}
		t.Fatal("no head blob")
		return 0
	}
	cases := []struct {
		name string
		make func(t *testing.T) []byte
		want error
	}{
		{"flipped byte in body blob", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				i := bodyBlob(b)
				b[i].data = bytes.Clone(b[i].data)
				b[i].data[len(b[i].data)/2] ^= 1
				return h, b
			})
		}, ErrIntegrity},
		{"flipped byte in head manifest", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				i := headBlob(h)
				h[i].data = bytes.Clone(h[i].data)
				h[i].data[10] ^= 1
				return h, b
			})
		}, ErrIntegrity},
		{"flipped byte in index.json", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[4].data = bytes.Replace(h[4].data, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
				return h, b
			})
		}, ErrIntegrity},
		{"extra body entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				data := []byte("unlisted")
				e := tarEntry{hdr: *tarHeader(blobName(digestOfBytes(data)), int64(len(data)), b[0].hdr.ModTime), data: data}
				return h, append(b, e)
			})
		}, ErrMalformed},
		{"duplicate body entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) { return h, append(b, b[0]) })
		}, ErrMalformed},
		{"missing body entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) { return h, b[1:] })
		}, ErrMalformed},
		{"unknown head entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				e := h[len(h)-1]
				e.hdr.Name = "airlock/extra.json"
				return append(h, e), b
			})
		}, ErrMalformed},
		{"duplicate head blob", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) { return append(h, h[len(h)-1]), b })
		}, ErrMalformed},
		{"unreferenced head blob", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				data := []byte(`{"schemaVersion":2}`)
				return append(h, tarEntry{hdr: *tarHeader(blobName(digestOfBytes(data)), int64(len(data)), h[0].hdr.ModTime), data: data}), b
			})
		}, ErrMalformed},
		{"body blob moved into head", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) { return append(h, b[0]), b[1:] })
		}, ErrMalformed},
		{"first entry not the marker", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) { return h[1:], b })
		}, ErrNotBundle},
		{"future format version", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[0].data = []byte(`{"format":"airlock-bundle","version":3}`)
				h[0].hdr.Size = int64(len(h[0].data))
				return h, b
			})
		}, ErrUnsupportedVersion},
		{"entries out of order", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[3], h[4] = h[4], h[3]
				return h, b
			})
		}, ErrMalformed},
		{"duplicate key in bundle.json", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[2].data = bytes.Replace(h[2].data, []byte(`"name": "test",`), []byte(`"name": "test", "name": "other",`), 1)
				h[2].hdr.Size = int64(len(h[2].data))
				return h, b
			})
		}, ErrMalformed},
		{"unknown field in bundle.json", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[2].data = bytes.Replace(h[2].data, []byte(`"name": "test",`), []byte(`"name": "test", "extra": 1,`), 1)
				h[2].hdr.Size = int64(len(h[2].data))
				return h, b
			})
		}, ErrMalformed},
		{"case-folded key in bundle.json", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[2].data = bytes.Replace(h[2].data, []byte(`"name": "test",`), []byte(`"NAME": "test",`), 1)
				h[2].hdr.Size = int64(len(h[2].data))
				return h, b
			})
		}, ErrMalformed},
		{"trailing data after bundle.json", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[2].data = append(bytes.Clone(h[2].data), []byte(" {}")...)
				h[2].hdr.Size = int64(len(h[2].data))
				return h, b
			})
		}, ErrMalformed},
		{"target escapes root", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[2].data = bytes.Replace(h[2].data, []byte(`"target": "etc/app.yaml"`), []byte(`"target": "../app.yaml"`), 1)
				h[2].hdr.Size = int64(len(h[2].data))
				return h, b
			})
		}, ErrMalformed},
		{"tar header size differs from descriptor", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				i := bodyBlob(b)
				b[i].data = b[i].data[:len(b[i].data)-1]
				b[i].hdr.Size--
				return h, b
			})
		}, ErrMalformed},
		{"symlink entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Typeflag, b[0].hdr.Linkname, b[0].hdr.Size, b[0].data = tar.TypeSymlink, "/etc/passwd", 0, nil
				return h, b
			})
		}, ErrMalformed},
		{"hardlink entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Typeflag, b[0].hdr.Linkname, b[0].hdr.Size, b[0].data = tar.TypeLink, "oci-layout", 0, nil
				return h, b
			})
		}, ErrMalformed},
		{"device entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Typeflag, b[0].hdr.Size, b[0].data = tar.TypeChar, 0, nil
				return h, b
			})
		}, ErrMalformed},
		{"directory entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				return h, append([]tarEntry{{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755}}}, b...)
			})
		}, ErrMalformed},
		{"non-local name", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Name = "../" + b[0].hdr.Name
				return h, b
			})
		}, ErrMalformed},
		{"absolute name", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Name = "/" + b[0].hdr.Name
				return h, b
			})
		}, ErrMalformed},
		{"setuid mode", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.Mode = 0o4755
				return h, b
			})
		}, ErrMalformed},
		{"xattr record", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				b[0].hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "x"}
				b[0].hdr.Format = tar.FormatPAX
				return h, b
			})
		}, ErrMalformed},
		{"no end-of-archive marker", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			return append(frame(t, tarBytes(t, head, false)), frame(t, tarBytes(t, body, false))...)
		}, ErrMalformed},
		{"data after end-of-archive", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			tail := append(tarBytes(t, body, true), []byte("trailing")...)
			return append(frame(t, tarBytes(t, head, false)), frame(t, tail)...)
		}, ErrMalformed},
		{"second tar after end-of-archive", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			tail := append(tarBytes(t, body, true), tarBytes(t, body[:1], true)...)
			return append(frame(t, tarBytes(t, head, false)), frame(t, tail)...)
		}, ErrMalformed},
		{"third zstd frame appended", func(t *testing.T) []byte {
			return append(valid(t), frame(t, []byte("more"))...)
		}, ErrMalformed},
		{"empty zstd frame appended", func(t *testing.T) []byte {
			return append(valid(t), frame(t, nil)...)
		}, ErrMalformed},
		{"skippable frame appended", func(t *testing.T) []byte {
			sk := binary.LittleEndian.AppendUint32(nil, 0x184D2A50)
			sk = binary.LittleEndian.AppendUint32(sk, 4)
			return append(append(valid(t), sk...), 1, 2, 3, 4)
		}, ErrMalformed},
		{"padding frame holding data", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			pad := paddingFrame(64)
			pad[40] = 'x'
			return append(append(frame(t, tarBytes(t, head, false)), pad...), frame(t, tarBytes(t, body, true))...)
		}, ErrMalformed},
		{"two padding frames", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			out := append(append(frame(t, tarBytes(t, head, false)), paddingFrame(64)...), paddingFrame(64)...)
			return append(out, frame(t, tarBytes(t, body, true))...)
		}, ErrMalformed},
		{"oversized padding frame", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			out := append(frame(t, tarBytes(t, head, false)), paddingFrame(MaxPadding+9)...)
			return append(out, frame(t, tarBytes(t, body, true))...)
		}, ErrLimit},
		{"end-of-archive marker and junk inside the head", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			h := append(tarBytes(t, head, true), bytes.Repeat([]byte{'j'}, 4000)...)
			return append(append(frame(t, h), paddingFrame(64)...), frame(t, tarBytes(t, body, true))...)
		}, ErrMalformed},
		{"end-of-archive marker inside the head", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			return append(frame(t, tarBytes(t, head, true)), frame(t, tarBytes(t, body, true))...)
		}, ErrMalformed},
		{"oversized signatures entry", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[1].data = append(bytes.Clone(h[1].data), bytes.Repeat([]byte(" "), MaxSignaturesSize)...)
				h[1].hdr.Size = int64(len(h[1].data))
				return h, b
			})
		}, ErrLimit},
		{"unknown field in the envelope", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[1].data = bytes.Replace(h[1].data, []byte(`"payloadType"`), []byte(`"extra": 1, "payloadType"`), 1)
				h[1].hdr.Size = int64(len(h[1].data))
				return h, b
			})
		}, ErrMalformed},
		{"case-folded key in the envelope", func(t *testing.T) []byte {
			return mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
				h[1].data = bytes.Replace(h[1].data, []byte(`"payloadType"`), []byte(`"PayloadType"`), 1)
				h[1].hdr.Size = int64(len(h[1].data))
				return h, b
			})
		}, ErrMalformed},
		{"garbage appended", func(t *testing.T) []byte { return append(valid(t), 0, 0, 0) }, ErrMalformed},
		{"body split into two frames", func(t *testing.T) []byte {
			head, body := splitBundle(t, valid(t))
			out := frame(t, tarBytes(t, head, false))
			out = append(out, frame(t, tarBytes(t, body[:1], false))...)
			return append(out, frame(t, tarBytes(t, body[1:], true))...)
		}, ErrMalformed},
		{"not zstd", func(t *testing.T) []byte { return []byte("PK\x03\x04 this is a zip") }, ErrNotBundle},
		{"empty", func(t *testing.T) []byte { return nil }, ErrNotBundle},
		{"plain tar", func(t *testing.T) []byte {
			head, _ := splitBundle(t, valid(t))
			return tarBytes(t, head, true)
		}, ErrNotBundle},
		{"zstd frame declaring a 2 TiB window", func(t *testing.T) []byte {
			// magic, descriptor (no single segment, no checksum), window
			// descriptor exponent 31 -> 2^41 bytes, then an empty last raw block.
			f := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 31 << 3, 0x01, 0x00, 0x00}
			return append(frame(t, tarBytes(t, mustHead(t), false)), f...)
		}, ErrLimit},
		{"huge window in head frame", func(t *testing.T) []byte {
			return []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 31 << 3, 0x01, 0x00, 0x00}
		}, ErrLimit},
		{"dictionary frame", func(t *testing.T) []byte {
			return []byte{0x28, 0xB5, 0x2F, 0xFD, 0x01, 0x58, 0x07, 0x01, 0x00, 0x00}
		}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := readAll(tc.make(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustHead(t *testing.T) []tarEntry {
	head, _ := splitBundle(t, valid(t))
	return head
}

func digestOfBytes(b []byte) string { return checkedDigest(b) }

// TestReaderCollectsAllIntegrityFindings flips a byte in every body blob and
// expects one finding per blob, each naming the entry.
func TestReaderCollectsAllIntegrityFindings(t *testing.T) {
	t.Parallel()
	b := mutateEntries(t, func(h, b []tarEntry) ([]tarEntry, []tarEntry) {
		for i := range b {
			b[i].data = bytes.Clone(b[i].data)
			if len(b[i].data) > 0 {
				b[i].data[0] ^= 0xff
			}
		}
		return h, b
	})
	err := readAll(b)
	var ie *IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *IntegrityError", err)
	}
	_, body := splitBundle(t, valid(t))
	nonEmpty := 0
	for _, e := range body {
		if len(e.data) > 0 {
			nonEmpty++
		}
	}
	if len(ie.Findings) != nonEmpty {
		t.Fatalf("%d findings for %d corrupted blobs: %v", len(ie.Findings), nonEmpty, ie.Findings)
	}
	for _, f := range ie.Findings {
		if !strings.HasPrefix(f.Entry, "blobs/sha256/") || f.Expected == f.Actual {
			t.Fatalf("finding %+v", f)
		}
	}
}

// TestReaderTruncated cuts the bundle at many offsets; every cut must fail.
func TestReaderTruncated(t *testing.T) {
	t.Parallel()
	b := valid(t)
	step := len(b)/300 + 1
	for cut := 0; cut < len(b); cut += step {
		if err := readAll(b[:cut]); !rejected(err) {
			t.Fatalf("bundle cut at %d of %d bytes: err = %v", cut, len(b), err)
		}
	}
	for cut := len(b) - 64; cut < len(b); cut++ {
		if err := readAll(b[:cut]); !rejected(err) {
			t.Fatalf("bundle cut at %d of %d bytes: err = %v", cut, len(b), err)
		}
	}
}

// TestReaderBitFlips flips single bits across the compressed bundle; every
// flip must be rejected.
func TestReaderBitFlips(t *testing.T) {
	t.Parallel()
	b := valid(t)
	step := len(b)/400 + 1
	for pos := 0; pos < len(b); pos += step {
		c := bytes.Clone(b)
		c[pos] ^= 0x10
		if err := readAll(c); !rejected(err) {
			t.Fatalf("bit flip at byte %d of %d: err = %v", pos, len(b), err)
		}
	}
}

// TestReadHeadDoesNotReadBody checks inspect's promise: the head is read
// without touching the body frame.
func TestReadHeadDoesNotReadBody(t *testing.T) {
	t.Parallel()
	b := valid(t)
	head, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// Replace the whole body with garbage of the same length: the head still reads.
	c := bytes.Clone(b)
	for i := int(head.HeadSize) + HeadPadding + 100; i < len(c); i++ {
		c[i] = 0xAA
	}
	if _, err := ReadHead(bytes.NewReader(c)); err != nil {
		t.Fatalf("ReadHead looked past the head: %v", err)
	}
}

// rejected reports whether err is one of the "bundle rejected" classes.
func rejected(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrIntegrity) || errors.Is(err, ErrNotBundle) || errors.Is(err, ErrLimit) || errors.Is(err, ErrUnsupportedVersion)
}

// TestReaderTruncatedSaysWhere (issue 10): every cut of the bundle is
// refused with the stage, and a cut inside the body names the entry (or the
// entry after which the stream broke) and says "(truncated copy?)".
func TestReaderTruncatedSaysWhere(t *testing.T) {
	t.Parallel()
	b := valid(t)
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bodyStart := int(h.HeadSize + h.PaddingSize)
	step := (len(b)-bodyStart)/97 + 1
	for cut := bodyStart + 1; cut < len(b); cut += step {
		err := readAll(b[:cut])
		if !rejected(err) {
			t.Fatalf("cut at %d: err = %v", cut, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "body") || !strings.Contains(msg, "(truncated copy?)") {
			t.Fatalf("cut at %d of %d: %q does not name the stage and give the hint", cut, len(b), msg)
		}
		if strings.Contains(msg, "unexpected EOF") && !strings.Contains(msg, "bundle entry") {
			t.Fatalf("cut at %d: %q does not name the entry", cut, msg)
		}
	}
}
