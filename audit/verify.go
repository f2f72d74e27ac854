package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Report is what Verify found.
type Report struct {
	// File names the log.
	File string `json:"file"`
	// Entries are the log's entries in order, all verified.
	Entries []Entry `json:"entries"`
	// Head is the digest of the last complete line: note it elsewhere to
	// detect lines removed from the end later (VerifyOptions.Head).
	Head string `json:"head,omitempty"`
	// Partial describes a trailing line without a newline (an interrupted
	// append); the lines before it verified. The next Append removes it.
	Partial *Partial `json:"partial,omitempty"`
}

// Partial is a trailing partial line.
type Partial struct {
	Offset int64  `json:"offset"`
	Bytes  int    `json:"bytes"`
	Digest string `json:"digest"`
}

// VerifyOptions configures Verify; the zero value checks the chain alone.
type VerifyOptions struct {
	// Head, when set, is a head digest noted earlier: it must be the digest
	// of one of the log's lines, so lines up to it cannot have been removed.
	Head string
}

// VerifyFile opens and verifies the log at path.
func VerifyFile(path string, opts VerifyOptions) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Verify(f, path, opts)
}

// Verify reads a log from r and checks every line: each is one entry,
// parsed strictly (no unknown, duplicate or case-folded keys), numbered
// one more than the line before, and whose Prev is the digest of the line
// before (empty for the first). It returns the entries read so far and a
// *ChainError (ErrBroken) naming the first line that breaks the chain.
func Verify(r io.Reader, name string, opts VerifyOptions) (*Report, error) {
	rep := &Report{File: name, Entries: []Entry{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var prev []byte
	var offset int64
	headSeen := opts.Head == ""
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err == io.EOF && len(line) == 0 {
			break
		}
		if errors.Is(err, ErrTooLong) {
			return rep, &ChainError{File: name, Line: lineNo, Reason: fmt.Sprintf("longer than %d bytes", MaxLine)}
		}
		if err != nil && err != io.EOF {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		if err == io.EOF { // bytes after the last newline
			rep.Partial = &Partial{Offset: offset, Bytes: len(line), Digest: LineDigest(line)}
			break
		}
		body := line[:len(line)-1]
		var e Entry
		if perr := strictjson.Unmarshal(body, &e); perr != nil {
			return rep, &ChainError{File: name, Line: lineNo, Reason: "not an audit entry: " + perr.Error()}
		}
		want := ""
		if prev != nil {
			want = LineDigest(prev)
		}
		switch {
		case e.Seq != uint64(lineNo):
			return rep, &ChainError{File: name, Line: lineNo, Reason: fmt.Sprintf("sequence number %d where %d was expected: a line was deleted, inserted or moved", e.Seq, lineNo)}
		case e.Prev != want:
			return rep, &ChainError{File: name, Line: lineNo, Reason: fmt.Sprintf("prev is %s but line %d hashes to %s: line %d was edited, or lines were removed or reordered", orNone(e.Prev), lineNo-1, orNone(want), lineNo-1)}
		}
		rep.Entries = append(rep.Entries, e)
		prev = body
		rep.Head = LineDigest(body)
		if rep.Head == opts.Head {
			headSeen = true
		}
		offset += int64(len(line))
	}
	if !headSeen {
		return rep, &ChainError{File: name, Line: len(rep.Entries), Reason: fmt.Sprintf("no line hashes to the noted head %s: lines were removed from the end, or the log was replaced", opts.Head)}
	}
	return rep, nil
}

// readLine returns one line with its newline, at most MaxLine bytes; at
// the end of input it returns the bytes after the last newline and io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for {
		chunk, err := br.ReadSlice('\n')
		buf.Write(chunk)
		if buf.Len() > MaxLine {
			return nil, ErrTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return buf.Bytes(), err
	}
}

func orNone(s string) string {
	if s == "" {
		return `"" (first entry)`
	}
	return s
}
