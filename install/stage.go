package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/ctxio"
)

// copyBufferSize is the buffer staged files are written with.
const copyBufferSize = 1 << 20

// startStaging checks free space against the signed sizes, creates a fresh
// staging directory under DIR/.airlock and writes the files whose bytes the
// head holds.
func (in *installer) startStaging(ctx context.Context) error {
	avail, err := available(in.l.root, ".")
	if err != nil {
		return fmt.Errorf("free space of %s: %w", in.l.path, err)
	}
	if in.plan.bytes > avail {
		return &NoSpaceError{Dir: in.l.path, Need: in.plan.bytes, Available: avail}
	}
	for {
		name := stagingPrefix + randomSuffix()
		err := in.l.air.Mkdir(name, 0o755)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create staging directory in %s: %w", filepath.Join(in.l.path, dirAirlock), err)
		}
		in.stagingName = name
		break
	}
	stg, err := in.l.air.OpenRoot(in.stagingName)
	if err != nil {
		return err
	}
	in.stg = stg
	if err := stg.Chmod(".", 0o755); err != nil {
		return err
	}
	in.dirs = map[string]bool{}
	in.staged = map[string]bool{}
	in.bufs = [2][]byte{make([]byte, copyBufferSize), make([]byte, copyBufferSize)}
	for i := range in.plan.files {
		f := &in.plan.files[i]
		if f.head == nil {
			continue
		}
		if err := in.writeFile(ctx, f, bytes.NewReader(f.head)); err != nil {
			return err
		}
	}
	return nil
}

// stagedPath is the absolute path of a staged file.
func (in *installer) stagedPath(target string) string {
	return filepath.Join(in.l.path, dirAirlock, in.stagingName, filepath.FromSlash(target))
}

// mkdirs creates the parent directories of target in staging, mode 0755.
func (in *installer) mkdirs(target string) error {
	var missing []string
	for d := parentDir(target); d != "" && !in.dirs[d]; d = parentDir(d) {
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := in.stg.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := in.stg.Chmod(d, 0o755); err != nil {
			return err
		}
		in.dirs[d] = true
	}
	return nil
}

// writeFile writes one file into staging from r, which yields only checked
// bytes (a BodyEntry returns EOF only after the digest matched), sets its
// mode exactly, and fsyncs it. On any error the file is removed.
func (in *installer) writeFile(ctx context.Context, f *planFile, r io.Reader) error {
	if err := in.mkdirs(f.target); err != nil {
		return in.writeErr(f, err)
	}
	out, err := in.stg.OpenFile(f.target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return in.writeErr(f, err)
	}
	var w io.Writer = out
	if in.opts.WrapWriter != nil {
		w = in.opts.WrapWriter(w)
	}
	n, err := pipeCopy(w, ctxio.Reader(ctx, r), in.bufs)
	if err == nil && n != f.size {
		err = fmt.Errorf("%s: wrote %d bytes, expected %d", f.target, n, f.size)
	}
	if err == nil {
		err = out.Chmod(f.mode)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		in.stg.Remove(f.target)
		if errors.Is(err, bundle.ErrIntegrity) {
			return err // recorded by the reader; verification reports it
		}
		return in.writeErr(f, err)
	}
	in.staged[f.target] = true
	in.opts.failpoint(FailpointStaged)
	return nil
}

func (in *installer) writeErr(f *planFile, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &NoSpaceError{Dir: in.l.path, Need: in.plan.bytes, Available: -1, Target: f.target, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("stage %s (%s): %w", f.target, f.artifact, err)
}

// copyDuplicates writes the files whose content another file of the
// release already brought (the body carries each blob once), re-hashing
// the staged copy while copying.
func (in *installer) copyDuplicates(ctx context.Context) error {
	for _, idx := range in.plan.byDigest {
		first := &in.plan.files[idx[0]]
		if !in.staged[first.target] {
			return fmt.Errorf("internal error: %s was not staged", first.target)
		}
		for _, i := range idx[1:] {
			f := &in.plan.files[i]
			src, err := in.stg.Open(first.target)
			if err != nil {
				return err
			}
			h := sha256.New()
			err = in.writeFile(ctx, f, io.TeeReader(src, h))
			src.Close()
			if err != nil {
				return err
			}
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != f.digest {
				in.stg.Remove(f.target)
				return fmt.Errorf("%s: the staged copy of %s hashes to %s, expected %s (disk error?)", f.target, first.target, got, f.digest)
			}
		}
	}
	for i := range in.plan.files {
		if !in.staged[in.plan.files[i].target] {
			return fmt.Errorf("internal error: %s was not staged", in.plan.files[i].target)
		}
	}
	return nil
}

// syncStaging fsyncs every directory of the staging tree, deepest first.
func (in *installer) syncStaging() error {
	dirs := make([]string, 0, len(in.dirs)+1)
	for d := range in.dirs {
		dirs = append(dirs, d)
	}
	// Deepest first; "." last.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	dirs = append(dirs, ".")
	for _, d := range dirs {
		if err := syncDir(in.stg, d); err != nil {
			return err
		}
	}
	return nil
}

// pipeCopy copies r to w through two buffers, so that reading (which
// decompresses and hashes) and writing overlap: while one goroutine writes a
// buffer, this one fills the other. It returns the bytes read and the first
// error; io.EOF from r ends the copy without error. A write error stops the
// reading at the next buffer.
func pipeCopy(w io.Writer, r io.Reader, bufs [2][]byte) (int64, error) {
	full := make(chan []byte, 1)
	free := make(chan []byte, 2)
	free <- bufs[0]
	free <- bufs[1]
	var werr atomic.Pointer[error]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range full {
			if werr.Load() == nil {
				if _, err := w.Write(b); err != nil {
					werr.Store(&err)
				}
			}
			free <- b[:cap(b)]
		}
	}()
	var total int64
	var rerr error
	for werr.Load() == nil {
		b := <-free
		n, err := fill(r, b)
		if n > 0 {
			full <- b[:n]
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(full)
	<-done
	if rerr != nil {
		return total, rerr
	}
	if e := werr.Load(); e != nil {
		return total, *e
	}
	return total, nil
}

// fill reads into b until it is full, r fails, or r ends (io.EOF, returned
// as is, possibly with n > 0).
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
