package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	godigest "github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/meter"
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

// bodyConcurrency is fixed so that output does not depend on the machine.
const bodyConcurrency = 2

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

func (e *encoders) body(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(e.level.zstd()),
		zstd.WithEncoderConcurrency(bodyConcurrency),
		zstd.WithConcurrentBlocks(true),
		zstd.WithWindowSize(WriterWindow),
		zstd.WithEncoderCRC(true))
}

type readCloser = io.ReadCloser

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

func sourceOpener(src ImageSource, d Descriptor) func(context.Context) (readCloser, error) {
	return func(ctx context.Context) (readCloser, error) { return src.Blob(ctx, d) }
}

func fileOpener(p string) func(context.Context) (readCloser, error) {
	return func(context.Context) (readCloser, error) { return os.Open(p) }
}

// stageBlob copies one blob to dst, checking size and digest.
func stageBlob(ctx context.Context, b *bodyBlob, dst string, prog Progress) error {
	rc, err := b.open(ctx)
	if err != nil {
		return &SourceError{Artifact: b.ref, Err: fmt.Errorf("blob %s: %w", b.Digest, err)}
	}
	defer rc.Close()
	cr, err := checked.NewReader(readerCtx(ctx, rc), b.Digest, b.Size)
	if err != nil {
		return &SourceError{Artifact: b.ref, Err: err}
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if prog != nil {
		prog.Start(b.Digest, "pull "+b.ref+" "+short(b.Digest), b.Size)
		defer prog.Done(b.Digest)
	}
	if _, err := io.Copy(f, WithProgress(cr, prog, b.Digest)); err != nil {
		return &SourceError{Artifact: b.ref, Err: fmt.Errorf("layer %s: %w", b.Digest, wrapIntegrity(err))}
	}
	if err := cr.Verify(); err != nil {
		return &SourceError{Artifact: b.ref, Err: fmt.Errorf("layer %s: %w", b.Digest, wrapIntegrity(err))}
	}
	return f.Close()
}

func wrapIntegrity(err error) error {
	var me *checked.MismatchError
	if errors.As(err, &me) {
		return fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return err
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
func headBytes(p *plan) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := p.manifest.Created
	marker, err := json.Marshal(FormatMarker{Format: FormatName, Version: FormatVersion})
	if err != nil {
		return nil, err
	}
	entries := []struct {
		name string
		data []byte
	}{
		{EntryFormat, marker},
		{EntrySignatures, p.signatures},
		{EntryManifest, p.manifestRaw},
		{EntryOCILayout, []byte(ociLayoutContent)},
		{EntryIndex, p.indexRaw},
	}
	for _, rb := range p.head {
		entries = append(entries, struct {
			name string
			data []byte
		}{blobName(rb.Digest), rb.data})
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

// writeBundle writes the head frame and the body frame to a temporary file
// and renames it to out when everything was written and verified.
func writeBundle(ctx context.Context, out string, p *plan, enc *encoders, prog Progress) (int64, error) {
	head, err := headBytes(p)
	if err != nil {
		return 0, err
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", out, err)
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(atomicfile.NewWriteback(f.File), 1<<20)
	cw := &meter.Writer{W: bw}
	if _, err := cw.Write(enc.head.EncodeAll(head, nil)); err != nil {
		return 0, err
	}
	if _, err := cw.Write(paddingFrame(HeadPadding)); err != nil {
		return 0, err
	}
	zw, err := enc.body(cw)
	if err != nil {
		return 0, err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	const writeID = "write"
	if prog != nil {
		prog.Start(writeID, "write "+out, p.manifest.Totals.BodyBytes)
		defer prog.Done(writeID)
	}
	for _, b := range p.body {
		if err := writeBlob(ctx, tw, b, p.manifest.Created, prog, writeID); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	// Re-read what was produced before it replaces anything.
	again, err := ReadHeadFile(f.TempName())
	if err != nil {
		return 0, fmt.Errorf("re-reading the new bundle: %w", err)
	}
	if again.ManifestDigest != p.manifestDigest {
		return 0, fmt.Errorf("re-reading the new bundle: manifest %s, expected %s", again.ManifestDigest, p.manifestDigest)
	}
	if err := f.Commit(); err != nil {
		return 0, err
	}
	return cw.N, nil
}

func writeBlob(ctx context.Context, tw *tar.Writer, b bodyBlob, mtime time.Time, prog Progress, id string) error {
	rc, err := b.open(ctx)
	if err != nil {
		return &SourceError{Artifact: b.ref, Err: fmt.Errorf("blob %s: %w", b.Digest, err)}
	}
	defer rc.Close()
	var src io.Reader
	var cr *checked.Reader
	switch {
	case b.stamp != nil || b.staged:
		// Already hashed in this run: copy exactly Size bytes, and make sure
		// a local file is the one that was hashed.
		if b.stamp != nil {
			f, ok := rc.(*os.File)
			if !ok {
				return fmt.Errorf("internal error: local blob %s is not a file", b.Digest)
			}
			now, err := stampOf(f)
			if err != nil || now != *b.stamp {
				return &SourceError{Artifact: b.ref, Err: fmt.Errorf("%s changed after it was hashed; pack again when it is stable", f.Name())}
			}
		}
		src = io.LimitReader(readerCtx(ctx, rc), b.Size)
	default:
		if cr, err = checked.NewReader(readerCtx(ctx, rc), b.Digest, b.Size); err != nil {
			return &SourceError{Artifact: b.ref, Err: err}
		}
		src = cr
	}
	if err := tw.WriteHeader(tarHeader(blobName(b.Digest), b.Size, mtime)); err != nil {
		return err
	}
	n, err := io.CopyBuffer(tw, WithProgress(src, prog, id), make([]byte, 1<<20))
	if err == nil && n != b.Size {
		err = fmt.Errorf("%w: %d of %d bytes", checked.ErrSizeMismatch, n, b.Size)
	}
	if err == nil && cr != nil {
		err = cr.Verify()
	}
	if err != nil {
		return &SourceError{Artifact: b.ref, Err: fmt.Errorf("blob %s: %w (did the source change while packing?)", b.Digest, wrapIntegrity(err))}
	}
	return nil
}
