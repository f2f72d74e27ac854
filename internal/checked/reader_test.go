package checked

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	t.Parallel()
	data := []byte("hello, airlock")
	d := Digest(data)
	tests := []struct {
		name    string
		input   []byte
		digest  string
		size    int64
		wantErr error
	}{
		{"exact", data, d, int64(len(data)), nil},
		{"empty", nil, Digest(nil), 0, nil},
		{"flipped byte", append([]byte("jello"), data[5:]...), d, int64(len(data)), ErrDigestMismatch},
		{"short", data[:5], d, int64(len(data)), ErrSizeMismatch},
		{"long input is cut at size and fails digest", append(data, 'x'), Digest(append(data, 'x')), int64(len(data)), ErrDigestMismatch},
		{"long input with matching prefix", append(data, 'x'), d, int64(len(data)), ErrSizeMismatch},
		{"negative size", data, d, -1, ErrSizeMismatch},
		{"bad digest", data, "sha256:XYZ", int64(len(data)), ErrUnsupportedDigest},
		{"sha512 refused", data, "sha512:" + strings.Repeat("a", 128), int64(len(data)), ErrUnsupportedDigest},
		{"uppercase hex refused", data, strings.ToUpper(d), int64(len(data)), ErrUnsupportedDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadAll(iotest.OneByteReader(bytes.NewReader(tt.input)), tt.digest, tt.size)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, tt.input) {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestReaderStickyAndVerify(t *testing.T) {
	t.Parallel()
	data := []byte("abc")
	r, err := NewReader(bytes.NewReader([]byte("abd")), Digest(data), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("ReadAll err = %v", err)
	}
	if err := r.Verify(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify err = %v", err)
	}
	var me *MismatchError
	if err := r.Verify(); !errors.As(err, &me) || me.Actual != Digest([]byte("abd")) {
		t.Fatalf("MismatchError = %+v", me)
	}
	// Verify drains unread bytes before judging.
	r2, _ := NewReader(bytes.NewReader(data), Digest(data), 3)
	if err := r2.Verify(); err != nil {
		t.Fatalf("Verify unread = %v", err)
	}
}
