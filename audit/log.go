package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// MaxLine bounds one entry, newline included (64 KiB).
const MaxLine = 64 << 10

// Operations recorded in the log.
const (
	OpMirror   = "mirror"
	OpInstall  = "install"
	OpRollback = "rollback"
	OpPrune    = "prune"
)

// Results recorded in the log.
const (
	ResultAccepted = "accepted" // verified and done (mirrored, installed, switched, unchanged)
	ResultRejected = "rejected" // the bundle failed verification or was refused
	ResultFailed   = "failed"   // could not complete (registry or I/O error)
	ResultDone     = "done"     // rollback and prune
	// ResultRefused: an install, rollback or prune that did not happen;
	// Class and Reason say why. The install root and its state are as
	// they were; this line is the only change the run made.
	ResultRefused = "refused"
)

// Classes of a refusal, in Entry.Class: what the error meant.
const (
	// ClassRejected: the input was judged and refused (an untrusted,
	// malformed or tampered bundle, a replay, a downgrade, an unsafe path).
	ClassRejected = "rejected"
	// ClassCouldNotRun: the run did not get to a verdict or could not
	// complete (I/O, no space, an unusable state, nothing to roll back).
	ClassCouldNotRun = "could-not-run"
)

// Entry is one line of the log. Fields are only ever added.
type Entry struct {
	// Seq numbers the entries from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the operation ran (UTC).
	Time time.Time `json:"time"`
	// Operation is OpMirror, OpInstall, OpRollback or OpPrune.
	Operation string `json:"operation"`
	// Result is ResultAccepted, ResultRejected, ResultFailed, ResultDone
	// or ResultRefused.
	Result string `json:"result"`
	// Class is ClassRejected or ClassCouldNotRun for a refused run.
	Class string `json:"class,omitempty"`
	// Outcome says what happened in the operation's own words
	// ("installed", "switched", "unchanged", "rolled back 1.2 -> 1.1").
	Outcome string `json:"outcome,omitempty"`
	// Bundle identifies the bundle, when the operation had one, from a
	// statement whose signatures and policy passed (for a refused install
	// the body may still have failed; Reason says so).
	Bundle *Bundle `json:"bundle,omitempty"`
	// Claimed is what the head of a refused bundle said about itself when
	// its signatures or the policy did not pass: unverified claims, as far
	// as they were read (only Path, the file given, when the head could
	// not be read). Never set together with Bundle.
	Claimed *Bundle `json:"claimed,omitempty"`
	// Policy is the trust policy applied.
	Policy *Policy `json:"policy,omitempty"`
	// Signers are the keys whose signatures counted.
	Signers []Signer `json:"signers,omitempty"`
	// Record is the sha256 digest ("sha256:<hex>") of the signed
	// verification record written for this operation, if any.
	Record string `json:"record,omitempty"`
	// Target is where the operation acted: the install root or the registry.
	Target string `json:"target,omitempty"`
	// Reason is why a bundle was rejected or an operation failed.
	Reason string `json:"reason,omitempty"`
	// Airlock is the version of airlock that wrote the entry.
	Airlock string `json:"airlock,omitempty"`
	// Repaired notes a partial line a crash left, which this append removed.
	Repaired string `json:"repaired,omitempty"`
	// Prev is "sha256:<hex>" of the previous line's bytes (without its
	// newline); empty for the first entry.
	Prev string `json:"prev"`
}

// Bundle identifies a bundle in an entry.
type Bundle struct {
	Name     string `json:"name,omitempty"`
	Version  string `json:"version,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	Root     string `json:"root,omitempty"` // root digest
	Path     string `json:"path,omitempty"`
}

// Policy identifies a trust policy in an entry.
type Policy struct {
	Path   string `json:"path,omitempty"`
	Digest string `json:"digest"`
}

// Signer is a key whose signature counted.
type Signer struct {
	Name  string `json:"name,omitempty"`
	KeyID string `json:"keyid"`
}

// LineDigest returns "sha256:<hex>" of one line's bytes without its newline:
// what the next entry's Prev holds.
func LineDigest(line []byte) string {
	s := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return "sha256:" + hex.EncodeToString(s[:])
}

// Log is an audit log opened for appending.
type Log struct {
	f       *os.File
	path    string
	created bool
	dir     interface{ Sync() error } // the directory, to fsync a new file's name
}

// Open opens (creating it, mode 0644) the log at path for appending.
func Open(path string) (*Log, error) {
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	l := &Log{f: f, path: path, created: errors.Is(statErr, os.ErrNotExist)}
	if l.created {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			defer d.Close()
			if err := d.Sync(); err != nil {
				f.Close()
				return nil, fmt.Errorf("audit log %s: sync directory: %w", path, err)
			}
		}
	}
	return l, nil
}

// OpenIn opens (creating it, mode 0644) the log name inside root, so the
// path is resolved through root and never leaves it (install's state
// directory). display names the file in messages.
func OpenIn(root *os.Root, name, display string) (*Log, error) {
	_, statErr := root.Lstat(name)
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", display, err)
	}
	l := &Log{f: f, path: display, created: errors.Is(statErr, os.ErrNotExist)}
	if l.created {
		d, err := root.Open(".")
		if err == nil {
			err = d.Sync()
			d.Close()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit log %s: sync directory: %w", display, err)
		}
	}
	return l, nil
}

// Close closes the log.
func (l *Log) Close() error { return l.f.Close() }

// AppendOnce is Append, except that when the log's last entry is e
// already (equal in every field but Seq, Prev and Repaired) it appends
// nothing and returns that entry and its digest. Callers that prepare an
// entry before a commit and append it after (install's write-ahead file)
// use it so that replaying the append after a crash never logs twice.
func (l *Log) AppendOnce(e Entry) (Entry, string, error) {
	return l.append(e, true)
}

// Append adds e to the log: it sets e.Seq and e.Prev from the last line,
// writes the line and its newline in one write and fsyncs the file. A
// trailing partial line (a crash during an earlier append) is cut off first
// and noted in e.Repaired. It returns the entry as written and the digest of
// its line (the new head).
func (l *Log) Append(e Entry) (Entry, string, error) { return l.append(e, false) }

func (l *Log) append(e Entry, once bool) (Entry, string, error) {
	if err := lock(l.f); err != nil {
		return e, "", fmt.Errorf("audit log %s: lock: %w", l.path, err)
	}
	defer unlock(l.f)
	last, partial, err := l.tail()
	if err != nil {
		return e, "", err
	}
	if partial != nil {
		size, err := l.f.Seek(0, io.SeekEnd)
		if err != nil {
			return e, "", err
		}
		if err := l.f.Truncate(size - int64(len(partial))); err != nil {
			return e, "", fmt.Errorf("audit log %s: cut the partial last line: %w", l.path, err)
		}
		if err := l.f.Sync(); err != nil {
			return e, "", fmt.Errorf("audit log %s: %w", l.path, err)
		}
		e.Repaired = fmt.Sprintf("removed a partial last line of %d bytes (%s) left by an interrupted append", len(partial), LineDigest(partial))
	}
	e.Seq, e.Prev = 1, ""
	if last != nil {
		var prev Entry
		if err := json.Unmarshal(last, &prev); err != nil || prev.Seq == 0 {
			return e, "", &ChainError{File: l.path, Line: -1, Reason: "the last line is not an audit entry; run airlock audit verify " + l.path}
		}
		if once && sameEntry(prev, e) {
			return prev, LineDigest(last), nil
		}
		e.Seq, e.Prev = prev.Seq+1, LineDigest(last)
	}
	e.Time = e.Time.UTC()
	line, err := json.Marshal(e)
	if err != nil {
		return e, "", err
	}
	if len(line)+1 > MaxLine {
		return e, "", fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLong, len(line)+1, MaxLine)
	}
	n, err := l.f.Write(append(line, '\n'))
	if err == nil && n != len(line)+1 {
		err = io.ErrShortWrite
	}
	if err != nil {
		return e, "", fmt.Errorf("audit log %s: append: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return e, "", fmt.Errorf("audit log %s: fsync: %w", l.path, err)
	}
	return e, LineDigest(line), nil
}

// tail returns the last complete line (without its newline; nil for an
// empty log) and the bytes after the last newline (nil when the file ends
// with one).
func (l *Log) tail() (last, partial []byte, err error) {
	size, err := l.f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, err
	}
	if size == 0 {
		return nil, nil, nil
	}
	n := min(size, 2*MaxLine)
	buf := make([]byte, n)
	if _, err := l.f.ReadAt(buf, size-n); err != nil {
		return nil, nil, fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if buf[len(buf)-1] != '\n' {
		cut := bytes.LastIndexByte(buf, '\n')
		if cut < 0 && n < size {
			return nil, nil, &ChainError{File: l.path, Line: -1, Reason: fmt.Sprintf("the last %d bytes hold no complete line", n)}
		}
		partial = bytes.Clone(buf[cut+1:])
		buf = buf[:cut+1]
	}
	if len(buf) == 0 {
		return nil, partial, nil
	}
	body := buf[:len(buf)-1]
	start := bytes.LastIndexByte(body, '\n')
	if start < 0 && int64(len(buf)+len(partial)) < size {
		return nil, nil, &ChainError{File: l.path, Line: -1, Reason: fmt.Sprintf("the last line is longer than %d bytes", MaxLine)}
	}
	return bytes.Clone(body[start+1:]), partial, nil
}

// sameEntry compares two entries in every field but Seq, Prev and Repaired.
func sameEntry(a, b Entry) bool {
	a.Seq, a.Prev, a.Repaired = 0, "", ""
	b.Seq, b.Prev, b.Repaired = 0, "", ""
	a.Time, b.Time = a.Time.UTC(), b.Time.UTC()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
