package main

import (
	"fmt"
	"io"
	"os"

	"github.com/airlock-dev/airlock/bundle"
)

// stdinPath is the bundle argument that means standard input.
const stdinPath = "-"

// openBundle opens the bundle a command reads: the file at path, or
// standard input when path is "-". size is the file's size, -1 for a pipe.
func openBundle(e *env, path string) (r io.ReadCloser, size int64, err error) {
	if path == stdinPath {
		return io.NopCloser(e.stdin), -1, nil
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
