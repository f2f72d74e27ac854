package checked

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

var (
	// ErrDigestMismatch reports bytes that do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch reports a stream shorter or longer than the expected size.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrUnsupportedDigest reports a digest that is not "sha256:" and 64 lowercase hex digits.
	ErrUnsupportedDigest = errors.New("unsupported digest")
)

// MismatchError says what was expected and what arrived.
type MismatchError struct {
	Digest   string // the expected digest
	Expected string // expected value (digest or size)
	Actual   string // actual value (digest or size)
	Err      error  // ErrDigestMismatch or ErrSizeMismatch
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %v: expected %s, got %s", e.Digest, e.Err, e.Expected, e.Actual)
}

func (e *MismatchError) Unwrap() error { return e.Err }

// ValidDigest reports whether d is "sha256:" followed by 64 lowercase hex digits,
// the only digest form airlock writes or accepts.
func ValidDigest(d string) bool {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Digest returns the sha256 digest of b in "sha256:<hex>" form.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Reader reads exactly Size bytes from an underlying reader and checks them
// against a digest. Read returns io.EOF only after the digest matched; any
// failure is sticky.
type Reader struct {
	r      io.Reader
	h      hash.Hash
	digest string
	size   int64
	n      int64
	err    error
}

// NewReader returns a Reader that expects exactly size bytes hashing to digest.
// It returns an error wrapping ErrUnsupportedDigest when digest is not a valid
// sha256 digest, or when size is negative.
func NewReader(r io.Reader, digest string, size int64) (*Reader, error) {
	if !ValidDigest(digest) {
		return nil, fmt.Errorf("%q: %w (want sha256:<64 lowercase hex>)", digest, ErrUnsupportedDigest)
	}
	if size < 0 {
		return nil, &MismatchError{Digest: digest, Expected: "size >= 0", Actual: fmt.Sprint(size), Err: ErrSizeMismatch}
	}
	return &Reader{r: r, h: sha256.New(), digest: digest, size: size}, nil
}

// Read implements io.Reader.
func (c *Reader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if remaining := c.size - c.n; int64(len(p)) > remaining {
		p = p[:remaining]
	}
	var n int
	var err error
	if len(p) > 0 {
		n, err = c.r.Read(p)
		c.h.Write(p[:n])
		c.n += int64(n)
	}
	switch {
	case c.n == c.size:
		c.err = c.finish()
		if n > 0 && c.err == io.EOF {
			return n, nil
		}
		return n, c.err
	case err == io.EOF:
		c.err = &MismatchError{Digest: c.digest, Expected: fmt.Sprintf("%d bytes", c.size), Actual: fmt.Sprintf("%d bytes", c.n), Err: ErrSizeMismatch}
		return n, c.err
	case err != nil:
		c.err = err
	}
	return n, err
}

func (c *Reader) finish() error {
	got := "sha256:" + hex.EncodeToString(c.h.Sum(nil))
	if got != c.digest {
		return &MismatchError{Digest: c.digest, Expected: c.digest, Actual: got, Err: ErrDigestMismatch}
	}
	// The source must end here too: a stream longer than declared is refused.
	var one [1]byte
	for {
		n, err := c.r.Read(one[:])
		if n > 0 {
			return &MismatchError{Digest: c.digest, Expected: fmt.Sprintf("%d bytes", c.size), Actual: "more bytes", Err: ErrSizeMismatch}
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}

// Verify drains any unread bytes and returns nil only when exactly Size bytes
// were read and they matched the digest. Callers act on the bytes only after
// Verify returned nil.
func (c *Reader) Verify() error {
	if c.err == nil {
		if _, err := io.Copy(io.Discard, c); err != nil {
			return err
		}
	}
	if c.err == io.EOF {
		return nil
	}
	return c.err
}

// Size returns the number of bytes the reader expects.
func (c *Reader) Size() int64 { return c.size }

// ReadAll reads exactly size bytes from r, checks them against digest and
// returns them. The caller bounds size before calling; ReadAll allocates it.
func ReadAll(r io.Reader, digest string, size int64) ([]byte, error) {
	cr, err := NewReader(r, digest, size)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	w := &sliceWriter{b: buf}
	if _, err := io.Copy(w, cr); err != nil {
		return nil, err
	}
	if err := cr.Verify(); err != nil {
		return nil, err
	}
	return w.b, nil
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
