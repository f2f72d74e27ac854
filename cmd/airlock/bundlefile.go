package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/airlock-dev/airlock/bundle"
)

// stdinPath is the bundle argument that means standard input.
const stdinPath = "-"

// openBundle opens the bundle a command reads: the file at path, or
// standard input when path is "-". size is the file's size, -1 for a pipe.
//
// A directory, or a file named like a volume (NAME.001), is a volume set:
// its volumes are found and counted against the head, and read in order,
// each checked against its signed sha256 as it ends.
func openBundle(e *env, path string) (r io.ReadCloser, size int64, err error) {
	if path == stdinPath {
		return io.NopCloser(e.stdin), -1, nil
	}
	if bundle.IsVolumeSet(path) {
		set, err := bundle.OpenSet(path)
		if err != nil {
			return nil, 0, err
		}
		for _, p := range set.Paths {
			if st, err := os.Stat(p); err == nil {
				size += st.Size()
			}
		}
		r, err := set.Open()
		return r, size, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	size = -1
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, nil
}

// withJournalHint adds, when an interrupted `airlock sign` left its
// journal next to the bundle (for a volume set, next to volume 1), how to
// finish that sign.
func withJournalHint(path string, err error) error {
	if path == stdinPath || err == nil {
		return err
	}
	head := path
	if bundle.IsVolumeSet(path) {
		if first, ferr := firstVolume(path); ferr == nil {
			head = first
		}
	}
	if _, serr := os.Stat(head + bundle.JournalSuffix); serr == nil {
		return fmt.Errorf("%w (an interrupted airlock sign left %s; run airlock sign %s --recover)", err, head+bundle.JournalSuffix, path)
	}
	return err
}

// openChecked opens the bundle a command that changes something (mirror,
// install) reads, after checkVolumes. When the bundle is refused there (a
// volume missing, damaged, or not a file), the reader it returns fails
// with that error at its first read, so that the command reports the
// refusal as it reports any other bundle it refuses: its report and
// --json output, its exit code, nothing pushed or installed.
func openChecked(ctx context.Context, e *env, path string) (io.ReadCloser, error) {
	if err := checkVolumes(ctx, e, path); err != nil {
		return io.NopCloser(failingReader{err}), nil
	}
	r, _, err := openBundle(e, path)
	return r, err
}

// failingReader fails every read with err.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// reportPath names the bundle in reports and install state.
func reportPath(path string) string {
	if path == stdinPath {
		return "(standard input)"
	}
	return path
}

// checkVolumes checks every volume of a volume set against the signed head
// before a command that changes something (mirror, install) reads the
// bundle, so that a missing, duplicated, truncated or corrupt volume is
// named by number before anything is pushed or installed. Of a single
// file of format 2 it checks the size the signed frame index gives, so
// that a truncated or extended copy is refused before a blob is pushed
// (its bytes are checked as they are read).
func checkVolumes(ctx context.Context, e *env, path string) error {
	if path == stdinPath {
		return nil
	}
	set, err := bundle.OpenSet(path)
	if err != nil {
		if !bundle.IsVolumeSet(path) {
			return nil // the command's own reader reports it
		}
		return err
	}
	if !set.Volumes {
		return checkFileSize(set)
	}
	return set.Check(ctx)
}

// checkFileSize checks a single v2 file against the size its head gives.
func checkFileSize(set *bundle.Set) error {
	fi := set.Head.Frames
	if fi == nil {
		return nil // version 1: no size in the head
	}
	st, err := os.Stat(set.Paths[0])
	if err != nil {
		return err
	}
	if want := set.BodyStart + fi.CompressedSize; st.Size() != want {
		return fmt.Errorf("%s: %w: the file is %d bytes, its signed head says %d (a truncated copy, or bytes appended?)", set.Paths[0], bundle.ErrMalformed, st.Size(), want)
	}
	return nil
}
