package bundle

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/strictjson"
)

// FuzzReader: no input panics the bundle reader or makes it accept a bundle
// whose head it cannot read on its own.
func FuzzReader(f *testing.F) {
	// Without its 64 KiB zero padding frame the seed is 1.7 KiB: small
	// inputs keep the engine at thousands of executions a second.
	b := unpad(packTiny(f))
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

// unpad empties the padding frame after the head (its size field set to 0).
func unpad(b []byte) []byte {
	magic := []byte{0x50, 0x2A, 0x4D, 0x18}
	i := bytes.Index(b, magic)
	if i < 0 || i+8 > len(b) {
		return b
	}
	n := int(binary.LittleEndian.Uint32(b[i+4:]))
	if i+8+n > len(b) {
		return b
	}
	out := append(append([]byte(nil), b[:i+4]...), 0, 0, 0, 0)
	return append(out, b[i+8+n:]...)
}

// FuzzFrameIndex: any frames.json is refused or accepted without a panic,
// and an accepted one describes the layout the head implies.
func FuzzFrameIndex(f *testing.F) {
	w, err := NewWriter("test", "1.0.0", time.Unix(1767225600, 0), testItems(f))
	if err != nil {
		f.Fatal(err)
	}
	body := w.bodyDescriptors()
	l, err := planBody(body, w.manifest.Created, MinFrameSize)
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := marshalIndent(w.frameIndex(l, placeholderFrames(l), nil))
	f.Add(seed)
	f.Add([]byte(`{"mediaType":"application/vnd.airlock.bundle.frames.v1+json","frameSize":65536,"frames":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fi FrameIndex
		if err := strictjson.Unmarshal(raw, &fi); err != nil {
			return
		}
		got, err := checkFrameIndex(&fi, body, w.manifest.Created)
		if err != nil {
			return
		}
		if len(got.Frames) != len(fi.Frames) || got.Total != fi.UncompressedSize {
			t.Fatalf("accepted an index that does not match its layout")
		}
	})
}

// FuzzSignHead: whatever head tar a bundle carries, Sign with a key held
// in the process (which signs while the head is checked) neither panics
// nor writes a head that does not read; see signHeadChecked.
func FuzzSignHead(f *testing.F) {
	h, body := tinyHeadAndBody(f)
	f.Add(h.rawHead)
	f.Add(h.rawHead[:h.raw[1].end])
	f.Add(append(append([]byte(nil), h.rawHead...), make([]byte, 1024)...))
	signer := newEdSigner(f, 11)
	f.Fuzz(func(t *testing.T, head []byte) { signHeadChecked(t, head, body, signer) })
}

// TestSignMutatedHeads runs FuzzSignHead's check on 300 heads with one to
// four random bytes changed (the fuzzing engine manages only a few inputs
// a second on this package).
func TestSignMutatedHeads(t *testing.T) {
	t.Parallel()
	h, body := tinyHeadAndBody(t)
	signer := newEdSigner(t, 12)
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		head := append([]byte(nil), h.rawHead...)
		for range 1 + r.IntN(4) {
			head[r.IntN(len(head))] = byte(r.IntN(256))
		}
		signHeadChecked(t, head, body, signer)
	}
}

// tinyHeadAndBody packs the one-file release and returns its head and body.
func tinyHeadAndBody(t testing.TB) (*Head, []byte) {
	t.Helper()
	b := unpad(packTiny(t))
	h, err := ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return h, b[h.HeadSize+h.PaddingSize:]
}

// signHeadChecked signs a bundle of head (a tar, compressed here) and body:
// a refused bundle must be left as it was; a signed one must have had a
// head that reads, and keep its statement in a head that reads.
func signHeadChecked(t *testing.T, head, body []byte, signer Signer) {
	t.Helper()
	in := append(append(frame(t, head), paddingFrame(HeadPadding)...), body...)
	p := writeTemp(t, in)
	if _, err := Sign(context.Background(), p, []Signer{signer}); err != nil {
		if !bytes.Equal(mustRead(t, p), in) {
			t.Fatalf("a refused sign changed the file: %v", err)
		}
		return
	}
	before, err := ReadHead(bytes.NewReader(in))
	if err != nil {
		t.Fatalf("signed a bundle whose head does not read: %v", err)
	}
	after, err := ReadHeadFile(p)
	if err != nil {
		t.Fatalf("the signed head does not read: %v", err)
	}
	if after.Envelope.Payload != before.Envelope.Payload {
		t.Fatal("signing changed the statement")
	}
}
