package bundle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The zstd frame layout (RFC 8878, section 3.1) that frameScanner checks as
// compressed bytes pass through it. It decodes nothing: it reads headers and
// block sizes so that a reader can find the end of the head frame without
// decompressing the body, refuse dictionaries, skippable frames and oversized
// windows before a decoder allocates anything, and see the exact end of the
// stream.
const (
	zstdMagic      = 0xFD2FB528
	skippableMask  = 0xFFFFFFF0
	skippableMagic = 0x184D2A50
	maxBlockSize   = 128 << 10
)

// errTrailing reports bytes after the last allowed frame.
var errTrailing = errors.New("data after the end of the zstd stream")

type scanState int

const (
	stFrameStart scanState = iota
	stBlockHeader
	stBlockContent
	stChecksum
)

// frameScanner passes a zstd stream through unchanged while checking its framing.
type frameScanner struct {
	r         scanSource
	maxFrames int    // frames allowed in the stream
	maxWindow uint64 // largest window (or single-segment content size) accepted

	state     scanState
	frames    int // frames started
	pending   []byte
	remaining int64 // bytes left in the current block content
	last      bool  // current block is the frame's last
	checksum  bool  // current frame has a content checksum
	err       error
	offset    int64  // compressed bytes delivered
	padding   int64  // bytes of the padding frame after the head, header included
	name      string // what the stream is, for messages; "" means head or body by frame count
}

// scanSource is what frameScanner reads from: a bufio.Reader over a stream,
// or a sliceSource over bytes already in memory.
type scanSource interface {
	io.Reader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

func newFrameScanner(r io.Reader, maxFrames int, maxWindow uint64) *frameScanner {
	return &frameScanner{r: bufio.NewReaderSize(r, 64<<10), maxFrames: maxFrames, maxWindow: maxWindow}
}

// sliceSource is a scanSource over a byte slice: Discard moves past block
// contents without copying them.
type sliceSource struct{ b []byte }

func (s *sliceSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func (s *sliceSource) Peek(n int) ([]byte, error) {
	if n > len(s.b) {
		return s.b, io.EOF
	}
	return s.b[:n], nil
}

func (s *sliceSource) Discard(n int) (int, error) {
	if n > len(s.b) {
		n = len(s.b)
		s.b = nil
		return n, io.EOF
	}
	s.b = s.b[n:]
	return n, nil
}

// scanFrames checks the framing of a whole stream held in memory without
// copying block contents, and returns the number of frames it holds.
func scanFrames(raw []byte, maxFrames int, maxWindow uint64, name string) (*frameScanner, error) {
	s := &frameScanner{r: &sliceSource{b: raw}, maxFrames: maxFrames, maxWindow: maxWindow, name: name}
	for {
		switch {
		case len(s.pending) > 0:
			s.offset += int64(len(s.pending))
			s.pending = s.pending[:0]
		case s.state == stBlockContent && s.remaining > 0:
			n, err := s.r.Discard(int(s.remaining))
			s.remaining -= int64(n)
			s.offset += int64(n)
			if err != nil {
				return s, s.fail("truncated block (truncated copy?)")
			}
			s.endBlock()
		default:
			if err := s.advance(); err == io.EOF {
				return s, nil
			} else if err != nil {
				return s, err
			}
		}
	}
}

// Read implements io.Reader. It returns io.EOF only at a frame boundary after
// at least one frame.
func (s *frameScanner) Read(p []byte) (int, error) {
	for s.err == nil {
		if len(s.pending) > 0 {
			n := copy(p, s.pending)
			s.pending = s.pending[n:]
			s.offset += int64(n)
			return n, nil
		}
		if s.state == stBlockContent && s.remaining > 0 {
			if int64(len(p)) > s.remaining {
				p = p[:s.remaining]
			}
			n, err := s.r.Read(p)
			s.remaining -= int64(n)
			s.offset += int64(n)
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				s.err = s.fail("truncated block (truncated copy?)")
			case err != nil:
				s.err = err // an I/O error of the underlying reader
			}
			if s.remaining == 0 {
				s.endBlock()
			}
			return n, nil
		}
		s.err = s.advance()
	}
	return 0, s.err
}

func (s *frameScanner) fail(format string, args ...any) error {
	frame := "head"
	if s.frames > 1 || s.frames == 1 && s.state == stFrameStart {
		frame = "body"
	}
	if s.name != "" {
		frame = s.name
	}
	return malformed("%s: zstd stream at byte %d: %s", frame, s.offset, fmt.Sprintf(format, args...))
}

// truncated reports a short read as malformed and other read errors as they are.
func (s *frameScanner) truncated(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return s.fail("truncated %s (truncated copy?)", what)
	}
	return err
}

func (s *frameScanner) endBlock() {
	switch {
	case !s.last:
		s.state = stBlockHeader
	case s.checksum:
		s.state = stChecksum
	default:
		s.state = stFrameStart
	}
}

// advance parses the next structural element into pending.
func (s *frameScanner) advance() error {
	switch s.state {
	case stFrameStart:
		return s.frameHeader()
	case stBlockHeader:
		var h [3]byte
		if _, err := io.ReadFull(s.r, h[:]); err != nil {
			return s.truncated("block header", err)
		}
		v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
		s.last = v&1 == 1
		typ := (v >> 1) & 3
		size := int64(v >> 3)
		switch typ {
		case 1: // RLE: one byte of content
			if size > maxBlockSize {
				return s.fail("block of %d bytes exceeds %d", size, maxBlockSize)
			}
			size = 1
		case 3:
			return s.fail("reserved block type")
		}
		if size > maxBlockSize {
			return s.fail("block of %d bytes exceeds %d", size, maxBlockSize)
		}
		s.pending = append(s.pending[:0], h[:]...)
		s.remaining = size
		s.state = stBlockContent
		if size == 0 {
			s.endBlock()
		}
		return nil
	case stChecksum:
		var c [4]byte
		if _, err := io.ReadFull(s.r, c[:]); err != nil {
			return s.truncated("checksum", err)
		}
		s.pending = append(s.pending[:0], c[:]...)
		s.state = stFrameStart
		return nil
	}
	return s.fail("block content expected")
}

func (s *frameScanner) frameHeader() error {
	magic, err := s.r.Peek(4)
	if len(magic) < 4 && err != nil && err != io.EOF {
		return err // a read error, not stray bytes
	}
	if len(magic) == 0 && err == io.EOF {
		if s.frames == 0 {
			return fmt.Errorf("%w: empty input", ErrNotBundle)
		}
		return io.EOF
	}
	if len(magic) < 4 {
		return s.fail("%v: %d stray bytes, a frame header cut short (truncated copy?)", errTrailing, len(magic))
	}
	m := binary.LittleEndian.Uint32(magic)
	if m&skippableMask == skippableMagic {
		return s.fail("skippable frame: %v", errTrailing)
	}
	if m != zstdMagic {
		if s.frames == 0 {
			return fmt.Errorf("%w: does not start with a zstd frame", ErrNotBundle)
		}
		return s.fail("%v", errTrailing)
	}
	if s.frames >= s.maxFrames {
		return s.fail("frame %d: %v (a bundle has exactly %d frames)", s.frames+1, errTrailing, s.maxFrames)
	}
	var hdr [18]byte
	if _, err := io.ReadFull(s.r, hdr[:5]); err != nil {
		return s.truncated("frame header", err)
	}
	fhd := hdr[4]
	fcsFlag := fhd >> 6
	single := fhd&0x20 != 0
	if fhd&0x08 != 0 {
		return s.fail("reserved bit set in frame header")
	}
	s.checksum = fhd&0x04 != 0
	if fhd&0x03 != 0 {
		return s.fail("frame needs a dictionary; bundles never use one")
	}
	fcsSize := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsSize = 1
	}
	n := 5
	var window uint64
	if !single {
		if _, err := io.ReadFull(s.r, hdr[n:n+1]); err != nil {
			return s.truncated("frame header", err)
		}
		wd := hdr[n]
		exp := uint64(wd>>3) + 10
		base := uint64(1) << exp
		window = base + (base/8)*uint64(wd&7)
		n++
	}
	if fcsSize > 0 {
		if _, err := io.ReadFull(s.r, hdr[n:n+fcsSize]); err != nil {
			return s.truncated("frame header", err)
		}
		var fcs uint64
		for i := fcsSize - 1; i >= 0; i-- {
			fcs = fcs<<8 | uint64(hdr[n+i])
		}
		if fcsSize == 2 {
			fcs += 256
		}
		if single {
			window = fcs
		}
		n += fcsSize
	}
	if window > s.maxWindow {
		return overLimit("zstd frame %d declares a window of %d bytes, more than the %d allowed", s.frames+1, window, s.maxWindow)
	}
	s.frames++
	s.pending = append(s.pending[:0], hdr[:n]...)
	s.state = stBlockHeader
	return nil
}

// skipPadding consumes the one skippable frame allowed right after the head
// frame: magic 0x184D2A50, at most MaxPadding bytes, all zero. It carries
// nothing; it is room for `airlock sign` to grow the head in place. The
// frame is not passed on to the decoder. A missing padding frame is fine.
func (s *frameScanner) skipPadding() error {
	magic, err := s.r.Peek(8)
	if len(magic) < 8 || binary.LittleEndian.Uint32(magic) != skippableMagic {
		if err != nil && err != io.EOF {
			return err
		}
		return nil
	}
	size := int64(binary.LittleEndian.Uint32(magic[4:]))
	if size > MaxPadding {
		return overLimit("padding frame of %d bytes exceeds %d", size, MaxPadding)
	}
	if _, err := s.r.Discard(8); err != nil {
		return err
	}
	buf := make([]byte, 32<<10)
	for left := size; left > 0; {
		n, err := io.ReadFull(s.r, buf[:min(int64(len(buf)), left)])
		for _, b := range buf[:n] {
			if b != 0 {
				return s.fail("padding frame holds data; it must be zeros")
			}
		}
		left -= int64(n)
		if err != nil {
			return s.truncated("padding frame", err)
		}
	}
	s.padding = 8 + size
	s.offset += 8 + size
	return nil
}

// paddingFrame returns a skippable frame of exactly total bytes (>= 8) of zeros.
func paddingFrame(total int) []byte {
	f := make([]byte, total)
	binary.LittleEndian.PutUint32(f, skippableMagic)
	binary.LittleEndian.PutUint32(f[4:], uint32(total-8))
	return f
}

// atFrameBoundary reports whether the scanner sits between frames.
func (s *frameScanner) atFrameBoundary() bool {
	return s.state == stFrameStart && len(s.pending) == 0
}

// nextFrame returns the raw bytes of the next whole frame, at most limit bytes.
func (s *frameScanner) nextFrame(limit int64) ([]byte, error) {
	var out []byte
	buf := make([]byte, 32<<10)
	started := s.frames
	for {
		n, err := s.Read(buf)
		out = append(out, buf[:n]...)
		if int64(len(out)) > limit {
			return nil, overLimit("head frame larger than %d bytes", limit)
		}
		if err != nil {
			if err == io.EOF {
				err = s.fail("stream ends before the body frame")
			}
			return nil, err
		}
		if s.frames > started && s.atFrameBoundary() {
			return out, nil
		}
	}
}
