package bundle

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// headSink is where the writer puts a bundle: the body frames first, then
// the head region (head frame and padding frame) at the start.
type headSink interface {
	frameSink
	// volumes finishes the body and returns the volume records (none for
	// a single file).
	volumes() ([]VolumeRecord, error)
	// head writes the head region. It is room bytes unless the signatures
	// outgrew the room reserved, in which case the body moves behind it.
	head(region []byte, room int64) error
}

// fileSink writes a bundle to temporary files next to out: one file, or
// volumes OUT.001, OUT.002, ... of at most volumeSize bytes, cut between
// frames. The first file starts with room bytes left for the head.
type fileSink struct {
	out        string
	volumeSize int64
	room       int64

	vols     []*atomicfile.File
	bw       *bufio.Writer
	fileSize int64 // bytes in the current file, room included for the first
	recs     []VolumeRecord
	sum      hash.Hash
	bodyOff  int64
}

func (s *fileSink) name(n int) string {
	if s.volumeSize <= 0 {
		return s.out
	}
	return VolumeName(s.out, n)
}

func (s *fileSink) open() error {
	return s.next(s.room)
}

// next starts the next file, whose body bytes begin at offset at.
func (s *fileSink) next(at int64) error {
	f, err := atomicfile.Create(s.name(len(s.vols)+1), 0o644)
	if err != nil {
		return err
	}
	s.vols = append(s.vols, f)
	if _, err := f.File.Seek(at, io.SeekStart); err != nil {
		return err
	}
	s.bw = bufio.NewWriterSize(atomicfile.NewWriteback(f.File), 1<<20)
	s.fileSize = at
	s.sum = sha256.New()
	s.recs = append(s.recs, VolumeRecord{Number: len(s.vols), Offset: s.bodyOff})
	return nil
}

// closeVolume flushes the current file and completes its record.
func (s *fileSink) closeVolume() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	r := &s.recs[len(s.recs)-1]
	r.SHA256 = "sha256:" + hex.EncodeToString(s.sum.Sum(nil))
	return nil
}

func (s *fileSink) frame(b []byte) error {
	if s.volumeSize > 0 && s.fileSize+int64(len(b)) > s.volumeSize {
		if s.fileSize == 0 || (len(s.vols) == 1 && s.fileSize == s.room) {
			return fmt.Errorf("a frame of %d bytes does not fit in a volume of %d bytes", len(b), s.volumeSize)
		}
		if err := s.closeVolume(); err != nil {
			return err
		}
		if err := s.next(0); err != nil {
			return err
		}
	}
	if _, err := s.bw.Write(b); err != nil {
		return err
	}
	s.sum.Write(b)
	s.fileSize += int64(len(b))
	s.bodyOff += int64(len(b))
	s.recs[len(s.recs)-1].Size += int64(len(b))
	return nil
}

func (s *fileSink) volumes() ([]VolumeRecord, error) {
	if err := s.closeVolume(); err != nil {
		return nil, err
	}
	if s.volumeSize <= 0 {
		return nil, nil
	}
	return s.recs, nil
}

func (s *fileSink) head(region []byte, room int64) error {
	first := s.vols[0]
	if int64(len(region)) == room {
		_, err := first.File.WriteAt(region, 0)
		return err
	}
	if s.volumeSize > 0 && int64(len(region))+s.recs[0].Size > s.volumeSize {
		return fmt.Errorf("the signatures need %d bytes of head room, more than reserved, and volume 1 would outgrow %d bytes; sign with fewer keys at pack time and add the others with airlock sign", len(region), s.volumeSize)
	}
	// Move the body behind a larger head region: a new temporary file.
	moved, err := atomicfile.Create(s.name(1), 0o644)
	if err != nil {
		return err
	}
	if _, err := moved.File.Write(region); err != nil {
		moved.Abort()
		return err
	}
	if _, err := first.File.Seek(room, io.SeekStart); err != nil {
		moved.Abort()
		return err
	}
	if _, err := io.Copy(moved.File, first.File); err != nil {
		moved.Abort()
		return err
	}
	first.Abort()
	s.vols[0] = moved
	return nil
}

// commit renames every file into place, the first (which holds the head)
// last, after removing the volume 1 it replaces; if one fails, the ones
// already renamed are removed. Stale volumes
// of an earlier pack to the same name, numbered beyond this set, are
// removed so that the directory holds one set, and so is a sign journal
// left beside the file the head goes to.
func (s *fileSink) commit() error {
	if s.volumeSize > 0 {
		// Volume 1 of a set this one replaces goes first: should the
		// renames below be cut short, no volume 1 is left beside a mix
		// of old and new volumes, and readers say volume 1 is missing
		// instead of finding a set of two packs.
		if err := os.Remove(s.name(1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	order := append(append([]*atomicfile.File{}, s.vols[1:]...), s.vols[0])
	names := append(func() []string {
		var n []string
		for i := 2; i <= len(s.vols); i++ {
			n = append(n, s.name(i))
		}
		return n
	}(), s.name(1))
	for i, f := range order {
		if err := f.Commit(); err != nil {
			for _, done := range names[:i] {
				os.Remove(done)
			}
			return err
		}
	}
	s.vols = nil
	// A sign journal of the bundle this one replaces is not of this one.
	if err := os.Remove(s.name(1) + JournalSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if s.volumeSize > 0 {
		for n := len(names) + 1; n <= MaxVolumes; n++ {
			if err := os.Remove(VolumeName(s.out, n)); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				return err
			}
		}
	}
	return nil
}

func (s *fileSink) abort() {
	for _, f := range s.vols {
		f.Abort()
	}
}

// streamSink keeps the compressed body in a temporary file until the head
// region is known.
type streamSink struct {
	spool  *os.File
	bw     *bufio.Writer
	region []byte
}

func (s *streamSink) frame(b []byte) error {
	_, err := s.bw.Write(b)
	return err
}

func (s *streamSink) volumes() ([]VolumeRecord, error) { return nil, s.bw.Flush() }

func (s *streamSink) head(region []byte, _ int64) error {
	s.region = region
	return nil
}
