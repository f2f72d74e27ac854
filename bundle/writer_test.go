package bundle

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestWriteStreamEqualsWriteFile: a bundle streamed to a pipe is byte for
// byte the bundle written to a file, and reads back.
func TestWriteStreamEqualsWriteFile(t *testing.T) {
	t.Parallel()
	file := packTest(t)
	w, err := NewWriter("test", "1.0.0", time.Unix(1767225600, 0), testItems(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(context.Background(), StatementOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := w.WriteStream(context.Background(), &buf, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || !bytes.Equal(buf.Bytes(), file) {
		t.Fatalf("streamed %d bytes (counted %d), file has %d; equal: %v", buf.Len(), n, len(file), bytes.Equal(buf.Bytes(), file))
	}
	if err := readAll(buf.Bytes()); err != nil {
		t.Fatalf("reading the streamed bundle: %v", err)
	}
}

// TestWriterRefusesUnsigned: a bundle without its statement is never written.
func TestWriterRefusesUnsigned(t *testing.T) {
	t.Parallel()
	w, err := NewWriter("test", "1.0.0", time.Unix(1767225600, 0), testItems(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteStream(context.Background(), &buf, WriteOptions{}); err == nil || buf.Len() != 0 {
		t.Fatalf("wrote %d bytes without Sign: %v", buf.Len(), err)
	}
}
