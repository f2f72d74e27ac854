package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// edSigner is a minimal in-memory Signer for tests.
type edSigner struct {
	priv ed25519.PrivateKey
	id   string
}

func newEdSigner(t testing.TB, seed byte) *edSigner {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &edSigner{priv: priv, id: "sha256:" + hex.EncodeToString(sum[:])}
}

func (s *edSigner) KeyID() string   { return s.id }
func (s *edSigner) InProcess() bool { return true }
func (s *edSigner) Sign(_ context.Context, m []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, m), nil
}

// verifiedBy reports which of signers' signatures verify over the envelope.
func verifiedBy(t *testing.T, path string, signers ...*edSigner) int {
	t.Helper()
	h, err := ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pae, err := h.Envelope.PAE()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range signers {
		for _, sig := range h.Envelope.Signatures {
			raw, _ := base64.StdEncoding.DecodeString(sig.Sig)
			if ed25519.Verify(s.priv.Public().(ed25519.PublicKey), pae, raw) {
				n++
			}
		}
	}
	return n
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b.airlock")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func bodyOf(t *testing.T, path string) []byte {
	t.Helper()
	h, err := ReadHeadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	return b[h.HeadSize+h.PaddingSize:]
}

func TestSignInPlaceReplaceAndAdd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := writeTemp(t, valid(t))
	body := bodyOf(t, p)
	a, b := newEdSigner(t, 1), newEdSigner(t, 2)
	st0, _ := os.Stat(p)

	res, err := Sign(ctx, p, []Signer{a})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InPlace || res.Signatures != 1 {
		t.Fatalf("first sign: %+v", res)
	}
	if res, err = Sign(ctx, p, []Signer{a}); err != nil || res.Signatures != 1 {
		t.Fatalf("re-sign with the same key must replace: %+v %v", res, err)
	}
	if res, err = Sign(ctx, p, []Signer{b}); err != nil || res.Signatures != 2 {
		t.Fatalf("second key: %+v %v", res, err)
	}
	if n := verifiedBy(t, p, a, b); n != 2 {
		t.Fatalf("%d signatures verify, want 2", n)
	}
	if !bytes.Equal(bodyOf(t, p), body) {
		t.Fatal("signing changed the body bytes")
	}
	st1, _ := os.Stat(p)
	if st1.Size() != st0.Size() {
		t.Fatalf("in-place signing changed the size %d -> %d", st0.Size(), st1.Size())
	}
	if err := readAll(mustRead(t, p)); err != nil {
		t.Fatalf("signed bundle does not read: %v", err)
	}
	if _, err := os.Stat(p + JournalSuffix); !os.IsNotExist(err) {
		t.Fatalf("journal left behind: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignFallsBackToRewriteWhenFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := writeTemp(t, valid(t))
	body := bodyOf(t, p)
	var signers []Signer
	var eds []*edSigner
	for i := 0; i < MaxSignatures; i++ {
		s := newEdSigner(t, byte(10+i))
		signers, eds = append(signers, s), append(eds, s)
	}
	// 64 ed25519 signatures fit in the padding; grow the head past it by
	// shrinking the padding first: rewrite the file with a tiny padding frame.
	h, err := ReadHeadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, p)
	tight := append(append(bytes.Clone(b[:h.HeadSize]), paddingFrame(8)...), b[h.HeadSize+h.PaddingSize:]...)
	if err := os.WriteFile(p, tight, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Sign(ctx, p, signers)
	if err != nil {
		t.Fatal(err)
	}
	if res.InPlace || res.Signatures != MaxSignatures {
		t.Fatalf("%+v", res)
	}
	if !bytes.Equal(bodyOf(t, p), body) {
		t.Fatal("rewrite changed the body bytes")
	}
	if n := verifiedBy(t, p, eds...); n != MaxSignatures {
		t.Fatalf("%d signatures verify", n)
	}
	if _, err := Sign(ctx, p, []Signer{newEdSigner(t, 200)}); !errors.Is(err, ErrLimit) {
		t.Fatalf("65th signature: %v", err)
	}
}

// TestSignRecoversFromInterruptedRewrite simulates a crash after the journal
// was written and the head half-overwritten.
func TestSignRecoversFromInterruptedRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := writeTemp(t, valid(t))
	h, _ := ReadHeadFile(p)
	orig := mustRead(t, p)
	region := orig[:h.HeadSize+h.PaddingSize]
	if err := os.WriteFile(p+JournalSuffix, region, 0o600); err != nil {
		t.Fatal(err)
	}
	torn := bytes.Clone(orig)
	copy(torn[10:], bytes.Repeat([]byte{0xEE}, 40))
	if err := os.WriteFile(p, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHeadFile(p); err == nil {
		t.Fatal("torn head was readable")
	}
	a := newEdSigner(t, 3)
	res, err := Sign(ctx, p, []Signer{a})
	if err != nil {
		t.Fatal(err)
	}
	if verifiedBy(t, p, a) != 1 || res.Journal != JournalRestored {
		t.Fatalf("after recovery: %+v", res)
	}
	if err := readAll(mustRead(t, p)); err != nil {
		t.Fatal(err)
	}
}

// TestSignKeepsAWholeHeadOverItsJournal: a sign killed after writing the
// new head but before removing the journal leaves a head that reads; the
// next sign keeps it (with the signature that landed) and drops the
// journal, instead of putting the old head back.
func TestSignKeepsAWholeHeadOverItsJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := writeTemp(t, valid(t))
	h, _ := ReadHeadFile(p)
	before := mustRead(t, p)[:h.HeadSize+h.PaddingSize]
	a, b := newEdSigner(t, 4), newEdSigner(t, 5)
	if _, err := Sign(ctx, p, []Signer{a}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+JournalSuffix, before, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Sign(ctx, p, []Signer{b})
	if err != nil {
		t.Fatal(err)
	}
	if res.Journal != JournalDiscarded || verifiedBy(t, p, a, b) != 2 {
		t.Fatalf("%+v: want the journal discarded and both signatures kept", res)
	}
	if _, err := os.Stat(p + JournalSuffix); !os.IsNotExist(err) {
		t.Fatalf("journal left: %v", err)
	}
}

// TestSignRefusesAJournalOfAnotherBundle: a journal left beside a path to
// which another bundle was packed since is never written over it. With
// the bundle's head whole it is dropped; with the head torn, Sign and
// Recover refuse, naming the journal, and change nothing.
func TestSignRefusesAJournalOfAnotherBundle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := unpad(packTiny(t))
	oh, err := ReadHead(bytes.NewReader(other))
	if err != nil {
		t.Fatal(err)
	}
	stale := append(bytes.Clone(other[:oh.HeadSize]), paddingFrame(HeadPadding)...)

	p := writeTemp(t, valid(t))
	orig := mustRead(t, p)
	torn := bytes.Clone(orig)
	copy(torn[10:], bytes.Repeat([]byte{0xEE}, 40))
	if err := os.WriteFile(p, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+JournalSuffix, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(ctx, p, []Signer{newEdSigner(t, 6)}); err == nil || !strings.Contains(err.Error(), "is not of this file") {
		t.Fatalf("Sign over a torn head with another bundle's journal: %v", err)
	}
	if _, err := Recover(p); err == nil || !strings.Contains(err.Error(), "is not of this file") {
		t.Fatalf("Recover: %v", err)
	}
	if !bytes.Equal(mustRead(t, p), torn) || !bytes.Equal(mustRead(t, p+JournalSuffix), stale) {
		t.Fatal("a refused recovery changed the bundle or its journal")
	}

	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newEdSigner(t, 7)
	res, err := Sign(ctx, p, []Signer{c})
	if err != nil || res.Journal != JournalDiscarded || verifiedBy(t, p, c) != 1 {
		t.Fatalf("Sign of a whole head beside a stale journal: %+v, %v", res, err)
	}
}

func TestSignBusy(t *testing.T) {
	t.Parallel()
	p := writeTemp(t, valid(t))
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(context.Background(), p, []Signer{newEdSigner(t, 4)}); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
}

func TestSignRefusesDamagedBundle(t *testing.T) {
	t.Parallel()
	b := valid(t)
	b[20] ^= 0xff
	p := writeTemp(t, b)
	if _, err := Sign(context.Background(), p, []Signer{newEdSigner(t, 5)}); err == nil {
		t.Fatal("signed a damaged bundle")
	}
	if !bytes.Equal(mustRead(t, p), b) {
		t.Fatal("a refused sign changed the file")
	}
}

// TestSignChangesOnlySignatures: signing rewrites the signatures entry and
// leaves every other byte of the head as it was.
func TestSignChangesOnlySignatures(t *testing.T) {
	t.Parallel()
	// The oci-layout entry's time differs from the one airlock writes: a
	// head airlock reads, which signing must not rewrite into its own form.
	p := writeTemp(t, rewriteHead(t, valid(t), func(_ *Head, e headEntry, hdr *tar.Header) []byte {
		if e.name == EntryOCILayout {
			hdr.ModTime = hdr.ModTime.Add(time.Hour)
		}
		return e.data
	}))
	sigSpan := func(h *Head) headEntry {
		for _, e := range h.raw {
			if e.name == EntrySignatures {
				return e
			}
		}
		t.Fatal("no signatures entry")
		return headEntry{}
	}
	before, err := ReadHeadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(context.Background(), p, []Signer{newEdSigner(t, 7)}); err != nil {
		t.Fatal(err)
	}
	after, err := ReadHeadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old, cur := sigSpan(before), sigSpan(after)
	if old.start != cur.start || !bytes.Equal(before.rawHead[:old.start], after.rawHead[:cur.start]) {
		t.Error("the entries before the signatures entry changed")
	}
	if !bytes.Equal(before.rawHead[old.end:], after.rawHead[cur.end:]) {
		t.Error("the entries after the signatures entry changed")
	}
	if bytes.Equal(old.data, cur.data) || len(after.Envelope.Signatures) != 1 {
		t.Error("the signatures entry did not change")
	}
}

// remoteSigner stands for a token or a KMS: it does not sign in process,
// so Sign must not ask it before the head is checked.
type remoteSigner struct {
	ed    *edSigner
	calls int
}

func (s *remoteSigner) KeyID() string { return s.ed.id }
func (s *remoteSigner) Sign(ctx context.Context, m []byte) ([]byte, error) {
	s.calls++
	return s.ed.Sign(ctx, m)
}

// TestSignChecksTheHeadFirst: a head that decompresses but fails its
// checks (bundle.json no longer matches the statement) is refused and the
// file left alone, whether the key signs in process (which signs while the
// head is checked) or not (which is never asked); both kinds sign a good
// bundle.
func TestSignChecksTheHeadFirst(t *testing.T) {
	t.Parallel()
	good := valid(t)
	bad := rewriteHead(t, good, func(h *Head, e headEntry, _ *tar.Header) []byte {
		if e.name != EntryManifest {
			return e.data
		}
		name := h.Manifest.Name
		return bytes.Replace(e.data, []byte(name), []byte(strings.ToUpper(name[:1])+name[1:]), 1)
	})
	for _, tc := range []struct {
		name   string
		signer func() (Signer, func() int)
	}{
		{"in process", func() (Signer, func() int) { return newEdSigner(t, 8), func() int { return 0 } }},
		{"token or KMS", func() (Signer, func() int) {
			r := &remoteSigner{ed: newEdSigner(t, 9)}
			return r, func() int { return r.calls }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, bad)
			s, calls := tc.signer()
			if _, err := Sign(context.Background(), p, []Signer{s}); err == nil {
				t.Fatal("signed a bundle whose bundle.json does not match its statement")
			}
			if !bytes.Equal(mustRead(t, p), bad) {
				t.Fatal("a refused sign changed the file")
			}
			if _, ok := s.(*remoteSigner); ok && calls() != 0 {
				t.Fatalf("a signer outside the process was asked %d times before the head was checked", calls())
			}
			p = writeTemp(t, good)
			if res, err := Sign(context.Background(), p, []Signer{s}); err != nil || res.Signatures != 1 {
				t.Fatalf("%+v %v", res, err)
			}
			if err := readAll(mustRead(t, p)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSignEarlyRefusesOddEntries: the signing that runs beside the head's
// check reads the signatures entry itself, so it must refuse what the
// check refuses rather than trust the tar reader: here a directory entry
// of size -1 (base-256), which tar passes on and which once made the
// early signing slice out of range and crash the process.
func TestSignEarlyRefusesOddEntries(t *testing.T) {
	t.Parallel()
	good := valid(t)
	h, err := ReadHead(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: EntrySignatures, Mode: 0o644, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	hdr := buf.Bytes()[:512]
	for i := 124; i < 136; i++ {
		hdr[i] = 0xff // the size field: -1 in base-256
	}
	copy(hdr[148:156], "        ")
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	raw := append(append([]byte(nil), h.rawHead[:h.raw[0].end]...), hdr...)
	bad := append(append(frame(t, raw), paddingFrame(HeadPadding)...), good[h.HeadSize+h.PaddingSize:]...)
	p := writeTemp(t, bad)
	if _, err := Sign(context.Background(), p, []Signer{newEdSigner(t, 10)}); err == nil || !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want a malformed head", err)
	}
	if !bytes.Equal(mustRead(t, p), bad) {
		t.Fatal("a refused sign changed the file")
	}
}
