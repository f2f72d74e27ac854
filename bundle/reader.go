package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/meter"
)

// IntegrityError lists every body blob whose bytes did not match.
type IntegrityError struct {
	Findings []Finding
}

// Finding is one integrity problem: which entry, what was expected, what arrived.
type Finding struct {
	Entry    string `json:"entry"`
	Digest   string `json:"digest"`
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
	// Damaged says where the bytes changed, when a reader can tell: the
	// frame (and volume) whose compressed bytes are not the signed ones.
	Damaged string `json:"damaged,omitempty"`
}

func (e *IntegrityError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d blob(s) failed integrity checks", len(e.Findings))
	for i, f := range e.Findings {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Findings)-5)
			break
		}
		fmt.Fprintf(&b, "; %s: expected %s, got %s", f.Entry, f.Expected, f.Actual)
		if f.Damaged != "" {
			fmt.Fprintf(&b, " (damaged: %s)", f.Damaged)
		}
	}
	return b.String()
}

func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// Reader streams a bundle in one pass: the head first, then every body blob,
// each checked against the digest and size the head declares.
type Reader struct {
	head     *Head
	scan     *frameScanner
	dec      *zstd.Decoder
	tr       *tar.Reader
	count    *meter.Reader // decompressed bytes the tar reader consumed
	want     map[string]Descriptor
	seen     map[string]bool
	cur      *BodyEntry
	last     string // the name of the last body entry started
	findings []Finding
	err      error
	body2    *v2Body // the body of a v2 bundle; nil for v1
}

// BodyEntry is one blob of the body. Read it to the end (or call Verify);
// Read returns an error wrapping ErrIntegrity when the bytes do not match.
type BodyEntry struct {
	Descriptor
	r        *checked.Reader
	recorded bool
	owner    *Reader
	onRead   func(n int)
}

// OnRead has f called with the size of every read of the entry, whoever
// reads it (progress of a consumer that only gets the entry).
func (e *BodyEntry) OnRead(f func(n int)) { e.onRead = f }

// Read implements io.Reader over the checked blob bytes.
func (e *BodyEntry) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if n > 0 && e.onRead != nil {
		e.onRead(n)
	}
	if err != nil && err != io.EOF {
		err = e.owner.record(e, err)
	}
	return n, err
}

// Verify reads what is left of the entry and reports whether it matched.
func (e *BodyEntry) Verify() error {
	if err := e.r.Verify(); err != nil {
		return e.owner.record(e, err)
	}
	return nil
}

// NewReader reads and checks the head from r and returns a Reader positioned
// at the first body blob. Nothing of the body is decompressed yet.
func NewReader(r io.Reader) (*Reader, error) {
	head, scan, err := readHead(r)
	if err != nil {
		return nil, err
	}
	if head.layout != nil {
		fs, err := newFrameStream(scan.r, head.Frames)
		if err != nil {
			return nil, err
		}
		return &Reader{head: head, scan: scan, body2: &v2Body{l: head.layout, stream: fs}}, nil
	}
	dec, err := zstd.NewReader(scan, zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(2))
	if err != nil {
		return nil, err
	}
	want := make(map[string]Descriptor, len(head.Body))
	for _, d := range head.Body {
		want[d.Digest] = d
	}
	count := &meter.Reader{R: dec}
	return &Reader{head: head, scan: scan, dec: dec, tr: tar.NewReader(count), count: count, want: want, seen: map[string]bool{}}, nil
}

// Head returns the bundle's head.
func (r *Reader) Head() *Head { return r.head }

// Close releases the decoder.
func (r *Reader) Close() error {
	if r.dec != nil {
		r.dec.Close()
	}
	if r.body2 != nil {
		r.body2.stream.Close()
	}
	return nil
}

// record notes an integrity failure once per entry and returns the error to report.
func (r *Reader) record(e *BodyEntry, err error) error {
	var me *checked.MismatchError
	if !errors.As(err, &me) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: the entry ends before its %d bytes (truncated copy?)", ErrMalformed, e.Size)
		}
		return withStage(withArtifact(classify(err), "", blobName(e.Digest)), "body")
	}
	if !e.recorded {
		e.recorded = true
		r.findings = append(r.findings, Finding{Entry: blobName(e.Digest), Digest: e.Digest, Expected: me.Expected, Actual: me.Actual})
	}
	return &EntryError{Stage: "body", Entry: blobName(e.Digest), Err: fmt.Errorf("%w: %w", ErrIntegrity, err)}
}

// Findings returns the integrity problems found so far.
func (r *Reader) Findings() []Finding { return r.findings }

// Next finishes the current entry and advances to the next body blob. A blob
// whose content does not match is recorded and reading goes on, so that one
// pass reports every mismatch. Next returns io.EOF only when every expected
// blob arrived intact, the tar stream ended, and nothing follows it; with
// integrity findings it returns an *IntegrityError instead. Structural
// problems (unknown, duplicate or missing entries, trailing data) stop reading
// at once.
func (r *Reader) Next() (*BodyEntry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		if err != io.EOF {
			err = withStage(err, "body")
		}
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (*BodyEntry, error) {
	if r.body2 != nil {
		return r.nextV2()
	}
	if r.cur != nil {
		err := r.cur.Verify()
		r.cur = nil
		if err != nil && !errors.Is(err, ErrIntegrity) {
			return nil, classify(err)
		}
	}
	before := r.count.N
	hdr, err := r.tr.Next()
	if err != nil && err != io.EOF {
		// Name where the stream broke: after the last good entry.
		after := "the head"
		if r.last != "" {
			after = r.last
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: the body ends inside a tar header (truncated copy?)", ErrMalformed)
		}
		return nil, withStage(&EntryError{Entry: "after " + after, Err: classify(err)}, "body")
	}
	if err == io.EOF {
		// archive/tar also reports a clean EOF when the stream is cut at an
		// entry boundary; only a real end-of-archive marker (two zero blocks
		// after the last entry's padding) makes it consume 1024 bytes or more.
		if r.count.N-before < 1024 {
			return nil, malformed("body ends without the tar end-of-archive marker (truncated copy?)")
		}
		return nil, r.finish()
	}
	if err != nil {
		return nil, classify(err)
	}
	if err := checkHeader(hdr); err != nil {
		return nil, withStage(err, "body")
	}
	r.last = hdr.Name
	d, ok := r.want[strings.Replace(hdr.Name, "blobs/sha256/", "sha256:", 1)]
	if !ok || !strings.HasPrefix(hdr.Name, "blobs/") {
		return nil, &EntryError{Entry: hdr.Name, Err: malformed("not listed in the signed metadata")}
	}
	if r.seen[d.Digest] {
		return nil, &EntryError{Entry: hdr.Name, Err: malformed("duplicate entry")}
	}
	r.seen[d.Digest] = true
	if hdr.Size != d.Size {
		return nil, &EntryError{Entry: hdr.Name, Err: fmt.Errorf("%w: tar header says %d bytes, the manifest says %d", ErrMalformed, hdr.Size, d.Size)}
	}
	cr, err := checked.NewReader(r.tr, d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	r.cur = &BodyEntry{Descriptor: d, r: cr, owner: r}
	return r.cur, nil
}

// nextV2 advances through a v2 body, whose entries come in the layout's
// order with the exact headers the layout gives.
func (r *Reader) nextV2() (*BodyEntry, error) {
	if r.cur != nil {
		err := r.cur.Verify()
		r.cur = nil
		if err != nil && !errors.Is(err, ErrIntegrity) {
			return nil, classify(err)
		}
	}
	d, data, err := r.body2.next()
	if err == io.EOF {
		if len(r.findings) > 0 {
			return nil, &IntegrityError{Findings: r.findings}
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, classify(err)
	}
	cr, err := checked.NewReader(data, d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	r.cur = &BodyEntry{Descriptor: *d, r: cr, owner: r}
	return r.cur, nil
}

// finish checks that nothing is missing and nothing follows the archive.
func (r *Reader) finish() error {
	if len(r.seen) != len(r.want) {
		var missing []string
		for d := range r.want {
			if !r.seen[d] {
				missing = append(missing, d)
			}
		}
		sort.Strings(missing)
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		return malformed("bundle ends without %s%s (truncated copy?)", strings.Join(missing, ", "), more)
	}
	var one [1]byte
	if n, err := io.ReadFull(r.dec, one[:]); n > 0 {
		return malformed("%v: data after the end of the tar archive", errTrailing)
	} else if err != io.EOF {
		return classify(err)
	}
	if !r.scan.atFrameBoundary() || r.scan.frames != 2 {
		return malformed("zstd stream does not end cleanly after the body frame")
	}
	if len(r.findings) > 0 {
		return &IntegrityError{Findings: r.findings}
	}
	return io.EOF
}

// classify keeps errors that already have a class and I/O errors of the
// underlying file as they are, and calls everything else (a corrupt zstd
// block, a broken tar header) malformed.
func classify(err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, ErrLimit), errors.Is(err, ErrMalformed), errors.Is(err, ErrIntegrity),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &pe):
		return err
	}
	return fmt.Errorf("%w: body: %w", ErrMalformed, err)
}
