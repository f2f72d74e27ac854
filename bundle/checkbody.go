package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
)

// checkUnit is a run of frames that can be checked on its own: one frame
// of whole small entries, or the frames one large entry was sliced into.
// No entry crosses a unit's edge.
type checkUnit struct {
	first, last int   // frames
	bytes       int64 // uncompressed
}

// checkUnits splits the body into units, largest first.
func (a *Archive) checkUnits() []checkUnit {
	fs := a.head.Frames.Frames
	l := a.head.layout
	var units []checkUnit
	k := 0 // first entry that may end in the current frame
	for i := 0; i < len(fs); {
		u := checkUnit{first: i, last: i}
		end := fs[i].UncompressedOffset + fs[i].UncompressedSize
		for {
			for k < len(l.Entries) && l.Entries[k].End <= end {
				k++
			}
			// Entry k (if any) starts at or after end, or crosses it.
			if k < len(l.Entries) && l.Entries[k].Start < end && u.last+1 < len(fs) {
				u.last++
				end = fs[u.last].UncompressedOffset + fs[u.last].UncompressedSize
				continue
			}
			break
		}
		u.bytes = end - fs[u.first].UncompressedOffset
		units = append(units, u)
		i = u.last + 1
	}
	sort.SliceStable(units, func(i, j int) bool { return units[i].bytes > units[j].bytes })
	return units
}

// CheckBody checks the whole body on workers goroutines: every frame is
// read and decoded once, every tar header, padding and end-of-archive byte
// is compared with the layout, and every blob is hashed against its digest.
// Units of frames go to the workers largest first, so one big blob hashes
// on one core while the others take the rest. Memory is one frame per
// worker. done, when set, is called with the uncompressed bytes of each
// blob checked (from several goroutines). A blob that does not match is a
// finding; the others are still checked. The error is an *IntegrityError
// when findings are the only problem.
func (a *Archive) CheckBody(ctx context.Context, workers int, done func(d Descriptor, n int64)) error {
	units := a.checkUnits()
	work := make(chan checkUnit)
	var mu sync.Mutex
	var findings []Finding
	g, gctx := errgroup.WithContext(ctx)
	dec, err := newFrameDecoder(max(workers, 1))
	if err != nil {
		return err
	}
	defer dec.Close()
	for range max(workers, 1) {
		g.Go(func() error {
			for u := range work {
				fs, damaged, err := a.checkUnit(gctx, dec, u, done)
				if err != nil {
					return err
				}
				if damaged != nil && len(fs) == 0 {
					// Changed compressed bytes that still decode to
					// the signed content: the file is not the one
					// signed all the same.
					return damaged
				}
				if len(fs) > 0 {
					// Name the damaged frame whose compressed bytes
					// are not the signed ones.
					if damaged != nil {
						for k := range fs {
							fs[k].Damaged = damaged.Error()
						}
					}
					mu.Lock()
					findings = append(findings, fs...)
					mu.Unlock()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, u := range units {
			select {
			case work <- u:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if len(findings) > 0 {
		sort.Slice(findings, func(i, j int) bool { return findings[i].Entry < findings[j].Entry })
		return &IntegrityError{Findings: findings}
	}
	return nil
}

// checkUnit checks the frames of one unit. damaged is the first frame
// whose compressed bytes are not the signed ones; its blobs are still
// decoded (the decoder stops at the frame's indexed size) and checked, so
// that the findings name what changed.
func (a *Archive) checkUnit(ctx context.Context, dec zstdDecoder, u checkUnit, done func(Descriptor, int64)) (findings []Finding, damaged, err error) {
	fs := a.head.Frames.Frames
	l := a.head.layout
	start := fs[u.first].UncompressedOffset
	// The entries of this unit.
	k := sort.Search(len(l.Entries), func(i int) bool { return l.Entries[i].End > start })
	defer func() {
		if err != nil && damaged != nil {
			// A frame that is not the signed one explains what
			// follows from it (a broken header, a zstd error).
			findings, err = nil, damaged
		}
	}()
	var h hash.Hash
	var raw, data []byte
	pos := start // uncompressed offset of data[0]
	for i := u.first; i <= u.last; i++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		fr := fs[i]
		raw = grow(raw, fr.Size)
		if err := a.readBody(fr.Offset, raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = malformed("the file ends inside this frame (truncated copy?)")
			}
			return nil, nil, a.frameError(i, err)
		}
		if herr := frameHashError(fr, raw); herr != nil && damaged == nil {
			damaged = a.frameError(i, herr)
		}
		data, err = decodeFrame(dec, raw, fr.UncompressedSize, data)
		if err != nil {
			return nil, nil, a.frameError(i, err)
		}
		pos = fr.UncompressedOffset
		end := pos + int64(len(data))
		for pos < end {
			var e *entrySpan
			if k < len(l.Entries) {
				e = &l.Entries[k]
			}
			switch {
			case e == nil: // the end-of-archive marker
				if !allZero(data[pos-fr.UncompressedOffset:]) {
					return nil, nil, a.frameError(i, malformed("the end-of-archive marker holds data; it must be zeros"))
				}
				pos = end
			case pos < e.Data:
				n := min(end, e.Data) - pos
				off := pos - e.Start
				want, err := l.header(e)
				if err != nil {
					return nil, nil, &EntryError{Entry: blobName(e.Desc.Digest), Err: err}
				}
				if int64(len(want)) != e.Data-e.Start || !bytes.Equal(data[pos-fr.UncompressedOffset:pos-fr.UncompressedOffset+n], want[off:off+n]) {
					return nil, nil, &EntryError{Entry: blobName(e.Desc.Digest), Err: a.frameError(i, malformed("tar header at body byte %d is not the one the layout gives", e.Start))}
				}
				pos += n
				if pos == e.Data {
					h = sha256.New()
				}
			case pos < e.Data+e.Desc.Size:
				n := min(end, e.Data+e.Desc.Size) - pos
				h.Write(data[pos-fr.UncompressedOffset : pos-fr.UncompressedOffset+n])
				pos += n
				if done != nil {
					done(e.Desc, n)
				}
			default: // padding up to e.End
				n := min(end, e.End) - pos
				if !allZero(data[pos-fr.UncompressedOffset : pos-fr.UncompressedOffset+n]) {
					return nil, nil, &EntryError{Entry: blobName(e.Desc.Digest), Err: a.frameError(i, malformed("tar padding holds data; it must be zeros"))}
				}
				pos += n
			}
			if e != nil && pos == e.Data+e.Desc.Size && (h != nil || e.Desc.Size == 0) {
				if h == nil {
					h = sha256.New()
				}
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != e.Desc.Digest {
					findings = append(findings, Finding{Entry: blobName(e.Desc.Digest), Digest: e.Desc.Digest, Expected: e.Desc.Digest, Actual: got})
				}
				h = nil
			}
			if e != nil && pos == e.End {
				k++
			}
		}
	}
	return findings, damaged, nil
}

type zstdDecoder = interface {
	DecodeAll(input, dst []byte) ([]byte, error)
}

func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
