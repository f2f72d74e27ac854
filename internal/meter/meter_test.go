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

func TestBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
