package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// ErrBusy reports a bundle another `airlock sign` is signing right now.
var ErrBusy = errors.New("bundle is being signed by another process")

// SignResult says what Sign did.
type SignResult struct {
	// InPlace is true when the head was rewritten in the room the padding
	// frame left (time independent of bundle size); false when the bundle was
	// rewritten to a new file and renamed into place.
	InPlace bool
	// Signatures is the number of signatures the bundle now carries.
	Signatures int
	// KeyIDs are the keys that signed in this call.
	KeyIDs []string
	// Journal says what was done, before signing, with the journal of an
	// earlier interrupted sign: JournalNone, JournalRestored (its torn
	// head was put back, without the signatures it was adding) or
	// JournalDiscarded (the head was whole and kept).
	Journal string
}

// JournalSuffix names the rollback journal Sign keeps next to a bundle while
// it rewrites the head in place.
const JournalSuffix = ".sign-journal"

// Sign adds (or, for a key that already signed, replaces) signatures on the
// bundle at path. Only the head changes: the body frame is never decoded or
// recompressed.
//
// When the new head fits in the room left by the padding frame after the
// head (the usual case), the head region is overwritten in place: the old
// region is first saved to PATH.sign-journal and synced, then the new region
// is written and synced, then the journal is removed. If the process dies in
// between, the next Sign restores the old region from the journal before
// doing anything else, so the bundle is never left torn. When the new head
// does not fit, the bundle is rewritten to a temporary file (new head, fresh
// padding, body bytes copied unchanged) and renamed into place.
func Sign(ctx context.Context, path string, signers []Signer) (*SignResult, error) {
	if len(signers) == 0 {
		return nil, errors.New("sign: no signing key given")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, fmt.Errorf("%s: %w", path, ErrBusy)
	}
	journaled, err := recoverJournal(f, path)
	if err != nil {
		return nil, err
	}
	raw, frameLen, scanner, err := readHeadBytes(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Keys held in this process sign while the head is checked, and the
	// new head is compressed beside the check; the result is used only
	// once the check has passed. A token or a KMS is asked to sign only
	// after it.
	var early chan signedHead
	if inProcess(signers) {
		early = make(chan signedHead, 1)
		go func() {
			// It reads a head not yet checked: should that ever panic,
			// the panic is an error of this call, not the end of the
			// process.
			defer func() {
				if r := recover(); r != nil {
					early <- signedHead{err: fmt.Errorf("internal error signing %s: %v", path, r)}
				}
			}()
			early <- signEarly(ctx, raw, signers)
		}()
	}
	head, err := parseHead(raw)
	if err != nil {
		if early != nil {
			<-early
		}
		return nil, fmt.Errorf("%s: %w", path, withStage(err, "head"))
	}
	head.HeadSize, head.PaddingSize = frameLen, scanner.padding
	var sh signedHead
	if early != nil {
		sh = <-early
	} else {
		sh = signedHeadFor(ctx, raw, sigEntry(head), *head.Envelope, signers)
	}
	if sh.err != nil {
		return nil, sh.err
	}
	newHead, sigBytes, env := sh.frame, sh.sigBytes, sh.env

	res := &SignResult{Signatures: len(env.Signatures), Journal: journaled}
	for _, s := range signers {
		res.KeyIDs = append(res.KeyIDs, s.KeyID())
	}
	region := head.HeadSize + head.PaddingSize
	if int64(len(newHead))+8 <= region {
		res.InPlace = true
		newRegion := append(newHead, paddingFrame(int(region)-len(newHead))...)
		if err := rewriteInPlace(f, path, region, newRegion); err != nil {
			return nil, err
		}
	} else if err := rewriteCopy(f, path, region, newHead); err != nil {
		return nil, err
	}
	// Check what was written before declaring success: the new head is
	// the old, fully checked head with only its signatures entry replaced
	// (checked here), so the bytes on disk must be exactly the new head.
	if _, err := ParseEnvelope(sigBytes); err != nil {
		return nil, fmt.Errorf("sign: the new signatures entry does not parse: %w", err)
	}
	back := make([]byte, len(newHead))
	g, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sign: re-reading %s: %w", path, err)
	}
	defer g.Close()
	if _, err := io.ReadFull(g, back); err != nil || !bytes.Equal(back, newHead) {
		return nil, fmt.Errorf("sign: re-reading %s: the head on disk is not the one written (%v)", path, err)
	}
	return res, nil
}

// Recover deals with PATH.sign-journal, left by an interrupted `airlock
// sign`, without signing (see recoverJournal), and says what it did: one
// of JournalNone, JournalRestored and JournalDiscarded.
func Recover(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return JournalNone, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return JournalNone, fmt.Errorf("%s: %w", path, ErrBusy)
	}
	return recoverJournal(f, path)
}

// signedHead is the new head frame for a bundle signed by more keys.
type signedHead struct {
	frame    []byte    // the compressed head
	sigBytes []byte    // its signatures entry
	env      *Envelope // the envelope in it
	err      error
}

// inProcess reports whether every signer signs in this process (a key
// file), so that it may sign before the head is checked: the signature is
// dropped if the check fails.
func inProcess(signers []Signer) bool {
	for _, s := range signers {
		if l, ok := s.(interface{ InProcess() bool }); !ok || !l.InProcess() {
			return false
		}
	}
	return len(signers) > 0
}

// signEarly makes the signed head from raw, a head not yet checked: the
// envelope is read from its signatures entry, the second. The caller uses
// the result only when parseHead accepts raw, whose envelope is then this
// same one.
func signEarly(ctx context.Context, raw []byte, signers []Signer) signedHead {
	src := bytes.NewReader(raw)
	tr := tar.NewReader(src)
	start := 0
	for range 2 {
		hdr, err := tr.Next()
		if err != nil {
			return signedHead{err: malformed("head: %v", err)}
		}
		e, err := headEntryAt(raw, src, start, hdr)
		if err != nil {
			return signedHead{err: err}
		}
		if e.name == EntrySignatures {
			env, err := ParseEnvelope(e.data)
			if err != nil {
				return signedHead{err: err}
			}
			return signedHeadFor(ctx, raw, e, *env, signers)
		}
		start = e.end
	}
	return signedHead{err: malformed("head: no %s entry", EntrySignatures)}
}

// sigEntry is h's signatures entry (parseHead has checked it is there).
func sigEntry(h *Head) headEntry {
	i := slices.IndexFunc(h.raw, func(e headEntry) bool { return e.name == EntrySignatures })
	return h.raw[i]
}

// signedHeadFor signs env with signers and returns the head raw with the
// signatures entry sig replaced and compressed.
func signedHeadFor(ctx context.Context, raw []byte, sig headEntry, env Envelope, signers []Signer) signedHead {
	env.Signatures = append([]EnvelopeSignature(nil), env.Signatures...)
	if err := env.sign(ctx, signers); err != nil {
		return signedHead{err: err}
	}
	sigBytes, err := marshalIndent(&env)
	if err != nil {
		return signedHead{err: err}
	}
	headTar, err := replaceEntry(raw, sig, sigBytes)
	if err != nil {
		return signedHead{err: err}
	}
	enc, err := newEncoders(LevelDefault)
	if err != nil {
		return signedHead{err: err}
	}
	defer enc.close()
	return signedHead{frame: enc.head.EncodeAll(headTar, nil), sigBytes: sigBytes, env: &env}
}

// replaceEntry returns the head's tar bytes raw with entry e's content
// replaced by data, under a header as the writer writes it (e's name and
// time, data's size): every byte before and after e stays as it was.
func replaceEntry(raw []byte, e headEntry, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw) + len(data) - len(e.data) + 1024)
	buf.Write(raw[:e.start])
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(tarHeader(e.name, int64(len(data)), e.mtime)); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Flush(); err != nil { // pads to 512 bytes
		return nil, err
	}
	buf.Write(raw[e.end:])
	if buf.Len() > MaxHeadSize {
		return nil, overLimit("metadata of %d bytes exceeds %d", buf.Len(), MaxHeadSize)
	}
	return buf.Bytes(), nil
}

// rewriteInPlace replaces the first len(newRegion) bytes of f, protected by a journal.
func rewriteInPlace(f *os.File, path string, region int64, newRegion []byte) error {
	old := make([]byte, region)
	if _, err := f.ReadAt(old, 0); err != nil {
		return err
	}
	journal := path + JournalSuffix
	if err := atomicfile.WriteFile(journal, old, 0o600); err != nil {
		return fmt.Errorf("sign: write journal %s: %w", journal, err)
	}
	if _, err := f.WriteAt(newRegion, 0); err != nil {
		return fmt.Errorf("sign: rewrite head of %s: %w (the old head is saved in %s; run airlock sign again to restore it)", path, err, journal)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Remove(journal); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// What recoverJournal did with a journal left by an interrupted Sign.
const (
	// JournalNone: there was no journal.
	JournalNone = ""
	// JournalRestored: the head was torn; the old head was put back.
	JournalRestored = "restored"
	// JournalDiscarded: the head was whole (the interrupted Sign had not
	// begun to write it, or had finished), so it was kept and the journal
	// removed.
	JournalDiscarded = "discarded"
)

// recoverJournal deals with the head region saved by an interrupted Sign.
// A head that reads is kept whatever the journal holds: Sign either had
// not started to overwrite it or had finished, and putting the old head
// back would drop signatures that had landed. A head that does not read
// (torn by a write cut short) is restored from the journal, but only when
// the journal's head describes this file's body: the file's size, and the
// first body frame's bytes against the journal's signed frame index. A
// journal of another bundle (a stale one beside a newly packed file of
// the same name) is refused rather than written over the file.
func recoverJournal(f *os.File, path string) (string, error) {
	journal := path + JournalSuffix
	old, err := os.ReadFile(journal)
	if errors.Is(err, os.ErrNotExist) {
		return JournalNone, nil
	}
	if err != nil {
		return JournalNone, err
	}
	if _, _, err := readHead(io.NewSectionReader(f, 0, 1<<62)); err == nil {
		if err := os.Remove(journal); err != nil {
			return JournalNone, err
		}
		return JournalDiscarded, atomicfile.SyncDir(filepath.Dir(path))
	}
	// The journal must itself be a valid head region, of this file.
	jh, _, err := readHead(bytes.NewReader(old))
	if err != nil {
		return JournalNone, fmt.Errorf("sign: the head of %s does not read and its journal %s is damaged (%v); restore the bundle from its source", path, journal, err)
	}
	if err := journalFits(f, int64(len(old)), jh); err != nil {
		return JournalNone, fmt.Errorf("sign: the head of %s does not read, and the journal %s is not of this file (%v); it is left as it is: restore the bundle from its source, then remove the journal", path, journal, err)
	}
	if _, err := f.WriteAt(old, 0); err != nil {
		return JournalNone, err
	}
	if err := f.Sync(); err != nil {
		return JournalNone, err
	}
	if err := os.Remove(journal); err != nil {
		return JournalNone, err
	}
	return JournalRestored, atomicfile.SyncDir(filepath.Dir(path))
}

// journalFits checks that jh, the head of a journal of region bytes, is
// the head of f: f is the region plus jh's body (or first volume), and,
// in format v2, f's first body frame has the signed sha256 jh gives it.
// A version 1 head has no frame index: its body must start with a zstd
// frame where the region ends.
func journalFits(f *os.File, region int64, jh *Head) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if jh.Frames == nil || len(jh.Frames.Frames) == 0 {
		magic := make([]byte, 4)
		if _, err := f.ReadAt(magic, region); err != nil || !bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			return fmt.Errorf("no body frame where the journal's head region ends (byte %d)", region)
		}
		return nil
	}
	want := region + jh.Frames.CompressedSize
	if len(jh.Frames.Volumes) > 0 {
		want = region + jh.Frames.Volumes[0].Size
	}
	if st.Size() != want {
		return fmt.Errorf("the journal's head is for a file of %d bytes; this one has %d", want, st.Size())
	}
	fr := jh.Frames.Frames[0]
	raw := make([]byte, fr.Size)
	if _, err := f.ReadAt(raw, region+fr.Offset); err != nil {
		return fmt.Errorf("reading body frame 0: %w", err)
	}
	if err := frameHashError(fr, raw); err != nil {
		return fmt.Errorf("body frame 0: %w", err)
	}
	return nil
}

// rewriteCopy writes a new file with the new head, fresh padding and the old
// body bytes, and renames it over path. On Linux the body is copied by the
// kernel (copy_file_range), with no decompression.
func rewriteCopy(f *os.File, path string, region int64, newHead []byte) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	out, err := atomicfile.Create(path, st.Mode().Perm())
	if err != nil {
		return err
	}
	defer out.Abort()
	if _, err := out.Write(newHead); err != nil {
		return err
	}
	if _, err := out.Write(paddingFrame(HeadPadding)); err != nil {
		return err
	}
	if _, err := f.Seek(region, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(out.File, f); err != nil {
		return err
	}
	return out.Commit()
}
