package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// Blob uploads. A blob of at most ChunkThreshold bytes goes in one PATCH; a
// larger one in chunks of MirrorOptions.ChunkSize, each PATCH carrying
// Content-Range (OCI distribution spec, "Pushing a blob in chunks"). After
// every chunk the upload's URL and offset are saved in the run directory
// (sessions/KEY, KEY naming registry, repository and digest); a later run
// adopts the sessions of a run that ended, asks the registry where the
// upload stands (GET on the upload URL, its Range header) and continues
// from there: from the registry's offset, which after a kill in the middle
// of a chunk is ahead of the saved one where the registry kept the part it
// received (distribution 3). A saved URL is only ever used for that status
// request; an upload the registry no longer knows or will not continue
// (distribution 2.x refuses an upload whose size is not the offset signed
// into its URL, and deletes it) is started again at once and reported
// (MirrorOptions.OnRestart, Result.Blobs.Restarted). When the context is
// cancelled (Ctrl-C, SIGTERM) the chunk in flight is finished first, so
// that the registry's offset and the saved one agree.

const (
	// ChunkThreshold is the size above which blobs are uploaded in chunks
	// that a later run can resume.
	ChunkThreshold = 64 << 20
	// defaultChunkSize is MirrorOptions.ChunkSize's default.
	defaultChunkSize = 32 << 20
	// chunkGrace bounds how long a chunk in flight may take to finish
	// after the run was cancelled.
	chunkGrace = 2 * time.Minute
)

// RestartEvent describes an upload of a large blob, begun by an earlier
// run or attempt, that the registry would not continue: the blob is sent
// again from its start. Distribution 2.x refuses an upload whose stored
// size is not the offset in its saved URL, which is what a run killed
// (SIGKILL, power loss) or cut off in the middle of a chunk leaves.
type RestartEvent struct {
	Blob       string // the blob's digest
	Repository string // REGISTRY/REPO
	Size       int64  // the blob's size
	Lost       int64  // bytes sent before that are sent again
	Err        error  // the registry's answer
}

// session is a resumable upload, as saved between chunks.
type session struct {
	Registry string `json:"registry"`
	Repo     string `json:"repository"`
	Digest   string `json:"digest"`
	Location string `json:"location"`
	Offset   int64  `json:"offset"`
}

func sessionKey(repo name.Repository, digest string) string {
	sum := sha256.Sum256([]byte(repo.RegistryStr() + "/" + repo.RepositoryStr() + "@" + digest))
	return hex.EncodeToString(sum[:16])
}

func (m *mirrorer) sessionPath(repo name.Repository, digest string) string {
	return filepath.Join(m.run.sessions, sessionKey(repo, digest))
}

func (m *mirrorer) loadSession(repo name.Repository, digest string) *session {
	b, err := os.ReadFile(m.sessionPath(repo, digest))
	if err != nil || len(b) > 64<<10 {
		return nil
	}
	var s session
	if json.Unmarshal(b, &s) != nil || s.Registry != repo.RegistryStr() || s.Repo != repo.RepositoryStr() || s.Digest != digest || s.Offset < 0 {
		return nil
	}
	return &s
}

func (m *mirrorer) saveSession(s session) error {
	repo, err := name.NewRepository(s.Registry + "/" + s.Repo)
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(m.sessionPath(repo, s.Digest), 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := json.NewEncoder(f).Encode(s); err != nil {
		return err
	}
	return f.Commit()
}

func (m *mirrorer) dropSession(repo name.Repository, digest string) {
	os.Remove(m.sessionPath(repo, digest))
}

// blobServed asks the registry for the last byte of a blob (one ranged
// GET) and compares it, and the blob's size from Content-Range, with ours:
// a registry's "present" (a HEAD's 200, a mount's 201) is not taken on its
// word. A registry that ignores Range answers 200 with the whole blob: its
// first byte is compared then, and the rest is not read. When the answer
// gives no size, a HEAD is asked for it.
func (m *mirrorer) blobServed(ctx context.Context, repo name.Repository, d bundle.Descriptor, local probe) (bool, error) {
	u := m.c.url(repo, "blobs/"+d.Digest)
	off := max(d.Size-1, 0)
	h := http.Header{}
	if d.Size > 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off))
	}
	resp, err := m.c.send(ctx, request{method: http.MethodGet, url: u, header: h}, pullScope(repo))
	if err != nil {
		return false, err
	}
	defer drain(resp)
	size := int64(-1)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, total := contentRange(cr)
		if cr == "" {
			start = off // no header (a spec violation): the size is asked with HEAD below
		}
		if start != off {
			m.opts.Logger.Warn("the registry answered another range of a blob than the one asked; uploading it", "blob", d.Digest, "repository", repo.String(), "content-range", resp.Header.Get("Content-Range"))
			return false, nil
		}
		size = total
	case http.StatusOK:
		off = 0 // the Range was ignored: the first byte is the one to compare
		if resp.Header.Get("Content-Length") != "" {
			size = resp.ContentLength
		}
	case http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable:
		// Not there, or shorter than ours.
		return false, nil
	default:
		return false, checkStatus(resp, http.StatusOK, http.StatusPartialContent)
	}
	if size < 0 && d.Size > 0 {
		if size, err = m.headSize(ctx, repo, u); err != nil {
			return false, err
		}
	}
	if size >= 0 && size != d.Size {
		m.opts.Logger.Warn("the registry serves a blob of another size; uploading it", "blob", d.Digest, "repository", repo.String(), "size", size, "want", d.Size)
		return false, nil
	}
	if d.Size == 0 {
		return true, nil
	}
	got := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			m.opts.Logger.Warn("the registry says a blob is present but does not serve it", "blob", d.Digest, "repository", repo.String())
			return false, nil // an empty answer: not served
		}
		return false, err
	}
	want, err := local(off)
	if err != nil {
		return false, err
	}
	if got[0] != want {
		return false, &NotServedError{Ref: repo.String() + "@" + d.Digest, Reason: fmt.Sprintf("the registry serves other bytes than the blob's (byte %d differs)", off)}
	}
	return true, nil
}

// headSize asks the registry for a blob's size (HEAD, Content-Length);
// -1 when it gives none.
func (m *mirrorer) headSize(ctx context.Context, repo name.Repository, u string) (int64, error) {
	resp, err := m.c.send(ctx, request{method: http.MethodHead, url: u}, pullScope(repo))
	if err != nil {
		return -1, err
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return -1, nil
	case resp.StatusCode != http.StatusOK:
		return -1, checkStatus(resp, http.StatusOK)
	case resp.Header.Get("Content-Length") == "":
		return -1, nil
	}
	return resp.ContentLength, nil
}

// contentRange parses a Content-Range header "bytes FIRST-LAST/TOTAL" and
// returns FIRST and TOTAL; TOTAL is -1 when it is "*", and FIRST is -1
// when the header is not of that form.
func contentRange(v string) (first, total int64) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return -1, -1
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return -1, -1
	}
	a, _, ok := strings.Cut(span, "-")
	first, err := strconv.ParseInt(a, 10, 64)
	if !ok || err != nil || first < 0 {
		return -1, -1
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil || total < 0 {
		total = -1
	}
	return first, total
}

// probe returns the byte of a blob at an offset.
type probe func(off int64) (byte, error)

// byteAt reads one byte of a blob.
func byteAt(open opener, off int64) (byte, error) {
	rc, err := open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if s, ok := rc.(io.Seeker); ok {
		if _, err := s.Seek(off, io.SeekStart); err != nil {
			return 0, err
		}
	} else if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(rc, b); err != nil {
		return 0, err
	}
	return b[0], nil
}

// pushBlob puts blob d into repo: a cross-repository mount from from when
// it is set and the registry allows it, else an upload (resumed when an
// earlier run left one). It returns the bytes sent and whether the blob was
// mounted.
func (m *mirrorer) pushBlob(ctx context.Context, repo name.Repository, d bundle.Descriptor, open opener, from *name.Repository) (sent int64, mounted bool, err error) {
	op := fmt.Sprintf("push blob %s to %s", d.Digest, repo)
	chunked := d.Size > ChunkThreshold
	err = m.c.retry(ctx, op, func(ctx context.Context) error {
		n, mnt, err := m.uploadAttempt(ctx, repo, d, open, from, chunked)
		sent += n
		mounted = mnt
		return err
	})
	if err != nil {
		return sent, false, fmt.Errorf("%w: %s: %w", ErrRegistry, op, err)
	}
	return sent, mounted, nil
}

// uploadAttempt is one attempt of pushBlob. When the registry refuses the
// upload session in the middle (it no longer knows it, or no longer at our
// offset), a new upload is started at once, in the same attempt.
func (m *mirrorer) uploadAttempt(ctx context.Context, repo name.Repository, d bundle.Descriptor, open opener, from *name.Repository, chunked bool) (sent int64, mounted bool, err error) {
	sent, mounted, err = m.upload(ctx, repo, d, open, from, chunked, true)
	if err != nil && sessionRefused(err) && ctx.Err() == nil {
		n, mnt, err := m.upload(ctx, repo, d, open, from, chunked, false)
		return sent + n, mnt, err
	}
	return sent, mounted, err
}

// upload sends blob d in one upload session: a saved one when resume is
// set and there is one the registry continues, else a new one.
func (m *mirrorer) upload(ctx context.Context, repo name.Repository, d bundle.Descriptor, open opener, from *name.Repository, chunked, resume bool) (sent int64, mounted bool, err error) {
	scopes := []string{pushScope(repo)}
	if from != nil {
		scopes = append(scopes, pullScope(*from))
	}
	var loc string
	var off, resumedAt int64
	if chunked && resume {
		if s := m.loadSession(repo, d.Digest); s != nil {
			if loc, off, err = m.resumeUpload(ctx, repo, d, s); err != nil {
				return 0, false, err // the session is kept for the next attempt
			}
			resumedAt = off
		}
	}
	if loc == "" {
		u := m.c.url(repo, "blobs/uploads/")
		if from != nil {
			u += "?mount=" + d.Digest + "&from=" + from.RepositoryStr()
		}
		resp, err := m.c.send(ctx, request{method: http.MethodPost, url: u}, scopes...)
		if err != nil {
			return 0, false, err
		}
		if err := checkStatus(resp, http.StatusCreated, http.StatusAccepted); err != nil {
			return 0, false, err
		}
		drain(resp)
		if resp.StatusCode == http.StatusCreated {
			return 0, true, nil
		}
		if loc, err = resolveLocation(resp); err != nil {
			return 0, false, err
		}
		off = 0
	}
	chunk := d.Size
	if chunked {
		chunk = m.opts.ChunkSize
	}
	for off < d.Size {
		n := min(chunk, d.Size-off)
		next, err := m.patchChunk(ctx, repo, loc, open, off, n, chunked)
		if err != nil {
			if chunked && sessionRefused(err) {
				// The upload is gone (or no longer at our offset).
				m.restarted(repo, d, off, resumedAt, err)
			}
			return sent, false, err
		}
		loc, off, sent = next, off+n, sent+n
		if chunked {
			if err := m.saveSession(session{Registry: repo.RegistryStr(), Repo: repo.RepositoryStr(), Digest: d.Digest, Location: loc, Offset: off}); err != nil {
				return sent, false, fmt.Errorf("save upload state: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return sent, false, err
		}
	}
	u, err := withQuery(loc, "digest", d.Digest)
	if err != nil {
		return sent, false, err
	}
	resp, err := m.c.send(ctx, request{method: http.MethodPut, url: u}, scopes...)
	if err != nil {
		return sent, false, err
	}
	if err := checkStatus(resp, http.StatusCreated, http.StatusNoContent, http.StatusAccepted); err != nil {
		if chunked && (transient(err) || sessionRefused(err)) {
			// The registry refused the whole (a digest that does not
			// match what it holds, a lost upload): start over.
			m.restarted(repo, d, off, resumedAt, err)
		}
		return sent, false, err
	}
	drain(resp)
	m.dropSession(repo, d.Digest)
	return sent, false, nil
}

// restarted drops the saved session of an upload the registry would not
// continue, and says so (once for each such upload) when bytes that an
// earlier request had delivered are lost with it: the blob is sent again
// from its start by the next attempt. resumedAt is the offset the upload
// was resumed from in this attempt (0 when it was not), which is then no
// longer counted as resumed.
func (m *mirrorer) restarted(repo name.Repository, d bundle.Descriptor, lost, resumedAt int64, why error) {
	m.dropSession(repo, d.Digest)
	if resumedAt > 0 {
		m.count(func(r *Result) { r.Blobs.Resumed--; r.Blobs.BytesResumed -= resumedAt })
	}
	if lost <= 0 {
		return
	}
	m.count(func(r *Result) { r.Blobs.Restarted++; r.Blobs.BytesRestarted += lost })
	m.opts.Logger.Warn("the registry would not continue an upload; sending the blob again from its start",
		"blob", d.Digest, "repository", repo.String(), "lost", lost, "err", why)
	if m.opts.OnRestart != nil {
		m.opts.OnRestart(RestartEvent{Blob: d.Digest, Repository: repo.String(), Size: d.Size, Lost: lost, Err: why})
	}
}

// sessionRefused reports an answer that means the upload session itself
// is not accepted (any more): it is unknown (404: expired, purged, a
// registry restarted without its state), its state token is invalid or no
// longer at the upload's size (400 BLOB_UPLOAD_INVALID: distribution 2.x
// cancels the upload then), or the offset is not the upload's (416).
// Sending the same session again cannot succeed; a new upload can.
func sessionRefused(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable:
		return true
	case http.StatusBadRequest:
		return se.has("BLOB_UPLOAD_INVALID") || se.has("BLOB_UPLOAD_UNKNOWN") || se.has("RANGE_INVALID") || se.has("SIZE_INVALID")
	}
	return false
}

// patchChunk sends bytes [off, off+n) of the blob to the upload at loc and
// returns the upload's next URL. A chunk of a resumable upload is finished
// even when ctx is cancelled meanwhile (for at most chunkGrace), so that
// the saved state matches the registry's.
func (m *mirrorer) patchChunk(ctx context.Context, repo name.Repository, loc string, open opener, off, n int64, resumable bool) (string, error) {
	pctx := ctx
	if resumable {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), chunkGrace)
		defer cancel()
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
	body := func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		if off > 0 {
			s, ok := rc.(io.Seeker)
			if !ok {
				rc.Close()
				return nil, errors.New("blob source cannot seek")
			}
			if _, err := s.Seek(off, io.SeekStart); err != nil {
				rc.Close()
				return nil, err
			}
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, n), rc}, nil
	}
	h := http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", off, off+n-1)},
	}
	resp, err := m.c.send(pctx, request{method: http.MethodPatch, url: loc, header: h, body: body, size: n}, pushScope(repo))
	if err != nil {
		return "", err
	}
	if err := checkStatus(resp, http.StatusAccepted, http.StatusNoContent, http.StatusCreated); err != nil {
		return "", err
	}
	drain(resp)
	return resolveLocation(resp)
}

// resumeUpload asks the registry where a saved upload stands (GET on its
// URL, the distribution spec's upload status) and returns the URL and
// offset to continue from. The offset is the registry's (its Range
// header), not the saved one: it may be ahead of it (a registry that kept
// part of a chunk cut by a kill) or behind. When the registry does not
// know the upload, refuses its state, or reports nothing to continue
// from, the session is dropped, the loss reported, and loc is "": a new
// upload starts at once. err is set only when the registry could not be
// asked (unreachable, overloaded, or refusing credentials): the session is
// then kept for the next attempt.
func (m *mirrorer) resumeUpload(ctx context.Context, repo name.Repository, d bundle.Descriptor, s *session) (loc string, off int64, err error) {
	resp, err := m.c.send(ctx, request{method: http.MethodGet, url: s.Location}, pushScope(repo))
	if err != nil {
		return "", 0, err
	}
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		drain(resp)
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "", 0, checkStatus(resp)
	default:
		m.restarted(repo, d, s.Offset, 0, checkStatus(resp))
		return "", 0, nil
	}
	off, ok := uploadOffset(resp.Header.Get("Range"))
	if !ok || off > d.Size || off == 0 {
		why := fmt.Errorf("GET %s: the upload status says Range %q, nothing to continue from", redactURL(s.Location), resp.Header.Get("Range"))
		m.restarted(repo, d, s.Offset, 0, why)
		return "", 0, nil
	}
	loc = s.Location
	if resp.Header.Get("Location") != "" {
		if loc, err = resolveLocation(resp); err != nil {
			m.restarted(repo, d, s.Offset, 0, err)
			return "", 0, nil
		}
	}
	m.opts.Logger.Info("resuming an earlier upload", "blob", d.Digest, "repository", repo.String(), "offset", off, "saved", s.Offset)
	m.count(func(r *Result) { r.Blobs.Resumed++; r.Blobs.BytesResumed += off })
	return loc, off, nil
}

// uploadOffset reads the Range header of an upload status ("0-N", the bytes
// received; some registries write "bytes=0-N") and returns N+1; "0-0",
// which distribution also sends for an empty upload, and no header at all
// mean 0 (at most one byte is then not resumed). Whatever the registry
// says, the final PUT's digest check catches a wrong offset.
func uploadOffset(h string) (int64, bool) {
	if h == "" || h == "0-0" || h == "bytes=0-0" {
		return 0, true
	}
	h = strings.TrimPrefix(h, "bytes=")
	a, b, ok := strings.Cut(h, "-")
	if !ok || a != "0" {
		return 0, false
	}
	end, err := strconv.ParseInt(b, 10, 64)
	if err != nil || end < 0 {
		return 0, false
	}
	return end + 1, true
}
