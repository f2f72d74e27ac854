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
// journal next to the bundle, how to finish that sign.
func withJournalHint(path string, err error) error {
	if path == stdinPath {
		return err
	}
	if _, serr := os.Stat(path + bundle.JournalSuffix); serr == nil {
		return fmt.Errorf("%w (an interrupted airlock sign left %s; run airlock sign %s --recover)", err, path+bundle.JournalSuffix, path)
	}
	return err
}

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
// named by number before anything is pushed or installed. A single file
// needs no such pass: nothing is used before it is checked.
func checkVolumes(ctx context.Context, e *env, path string) error {
	if path == stdinPath || !bundle.IsVolumeSet(path) {
		return nil
	}
	set, err := bundle.OpenSet(path)
	if err != nil {
		return err
	}
	if !set.Volumes {
		return nil
	}
	return set.Check(ctx)
}
