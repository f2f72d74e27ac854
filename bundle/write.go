package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"
	godigest "github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/internal/checked"
)

// Level is a compression level.
type Level int

// Compression levels; the zero value is LevelDefault.
const (
	LevelDefault Level = iota // zstd level 3
	LevelFastest              // zstd level 1
	LevelBetter               // zstd level 7
)

// ParseLevel maps "fastest", "default" and "better" to a Level.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "default", "":
		return LevelDefault, nil
	case "fastest":
		return LevelFastest, nil
	case "better":
		return LevelBetter, nil
	}
	return 0, fmt.Errorf("unknown compression level %q (use fastest, default or better)", s)
}

func (l Level) zstd() zstd.EncoderLevel {
	switch l {
	case LevelFastest:
		return zstd.SpeedFastest
	case LevelBetter:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedDefault
}

type encoders struct {
	head  *zstd.Encoder
	level Level
}

func newEncoders(l Level) (*encoders, error) {
	head, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l.zstd()), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	return &encoders{head: head, level: l}, nil
}

func (e *encoders) close() { e.head.Close() }

func digestOf(d string) godigest.Digest { return godigest.Digest(d) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// marshalIndent is indented JSON without HTML escaping and without a trailing newline.
func marshalIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// tarHeader is the fixed header of every entry: a regular file, mode 0644,
// owned by 0:0, with the bundle's creation time.
func tarHeader(name string, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mtime}
}

// headBytes lays out the head's tar entries (without an end-of-archive marker).
func headBytes(p *Writer) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := p.manifest.Created
	version := FormatVersion
	if p.version != 0 {
		version = p.version
	}
	marker, err := json.Marshal(FormatMarker{Format: FormatName, Version: version})
	if err != nil {
		return nil, err
	}
	type entry struct {
		name string
		data []byte
	}
	entries := []entry{{EntryFormat, marker}, {EntrySignatures, p.signatures}, {EntryManifest, p.manifestRaw}}
	if p.framesRaw != nil {
		entries = append(entries, entry{EntryFrames, p.framesRaw})
	}
	entries = append(entries, entry{EntryOCILayout, []byte(ociLayoutContent)}, entry{EntryIndex, p.indexRaw})
	for _, rb := range p.head {
		entries = append(entries, entry{blobName(rb.Digest), rb.Data})
	}
	for _, e := range entries {
		if err := tw.WriteHeader(tarHeader(e.name, int64(len(e.data)), mtime)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxHeadSize {
		return nil, overLimit("metadata of %d bytes exceeds %d", buf.Len(), MaxHeadSize)
	}
	return buf.Bytes(), nil
}

const ociLayoutContent = `{"imageLayoutVersion":"1.0.0"}`

// wrapIntegrity marks a digest or size mismatch as ErrIntegrity.
func wrapIntegrity(err error) error {
	var me *checked.MismatchError
	if errors.As(err, &me) {
		return fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return err
}
