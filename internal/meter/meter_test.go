package meter

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReaderAndWriter(t *testing.T) {
	t.Parallel()
	calls := 0
	r := &Reader{R: strings.NewReader("hello world"), OnRead: func(int) { calls++ }}
	var buf bytes.Buffer
	w := &Writer{W: &buf}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if r.N != 11 || w.N != 11 || buf.String() != "hello world" || calls == 0 {
		t.Fatalf("r.N=%d w.N=%d calls=%d", r.N, w.N, calls)
	}
}
