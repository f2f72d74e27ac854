package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/referrer"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/bundle"
)

// Manifests, tags and the referrers tag fallback, over raw requests: every
// answer read with a limit, every write read back by digest and re-hashed,
// and writes that a concurrent writer got in the way of tried again.

// putManifest writes mf under ref (its digest or a tag) and reads it back by
// digest. subjectIndexed is true when the registry said (OCI-Subject) that
// it listed the manifest among its subject's referrers itself.
func (m *mirrorer) putManifest(ctx context.Context, repo name.Repository, ref string, mf bundle.Blob) (subjectIndexed bool, err error) {
	return m.putManifestRetry(ctx, repo, ref, mf, true)
}

// putManifestRetry is putManifest; without retry, a write that fails is
// not sent again (a referrers tag: its content was merged from a read that
// a retry after a wait would make stale, so the caller reads and merges
// again instead).
func (m *mirrorer) putManifestRetry(ctx context.Context, repo name.Repository, ref string, mf bundle.Blob, retry bool) (subjectIndexed bool, err error) {
	op := fmt.Sprintf("push manifest %s to %s", mf.Digest, repo)
	if ref != mf.Digest {
		op = fmt.Sprintf("tag %s:%s", repo, ref)
	}
	put := func(f func(context.Context) error) error {
		if retry {
			return m.c.retry(ctx, op, f)
		}
		return f(ctx)
	}
	err = put(func(ctx context.Context) error {
		data := mf.Data
		resp, err := m.c.send(ctx, request{
			method: http.MethodPut, url: m.c.url(repo, "manifests/"+ref),
			header: http.Header{"Content-Type": {mf.MediaType}},
			body:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			size:   int64(len(data)),
		}, pushScope(repo))
		if err != nil {
			return err
		}
		if err := checkStatus(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
			return err
		}
		drain(resp)
		subjectIndexed = resp.Header.Get(referrer.HeaderSubject) != ""
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrRegistry, op, err)
	}
	return subjectIndexed, m.readBackRef(ctx, repo, mf.Digest, mf.Digest)
}

// readBack fetches ref and checks that its bytes hash to want.
func (m *mirrorer) readBack(ctx context.Context, ref name.Reference, want string) error {
	return m.readBackRef(ctx, ref.Context(), ref.Identifier(), want)
}

// readBackRef fetches REPO:ref (or @ref) and checks that its bytes hash to
// want; at most bundle.MaxManifestSize bytes are read.
func (m *mirrorer) readBackRef(ctx context.Context, repo name.Repository, ref, want string) error {
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	full := repo.String() + sep + ref
	var raw []byte
	var found bool
	err := m.c.retry(ctx, "read back "+full, func(ctx context.Context) error {
		var err error
		raw, _, found, err = m.getManifest(ctx, repo, ref)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: read back %s: %w", ErrRegistry, full, err)
	}
	if !found {
		return &NotServedError{Ref: full, Reason: "was acknowledged but is not served (404 on read-back)"}
	}
	if got := sha256Digest(raw); got != want {
		if sep == ":" {
			// A tag: if the manifest it should name is stored byte for
			// byte, the tag was moved by another writer, not mangled.
			if served, err := m.manifestServed(ctx, repo, bundle.Blob{Descriptor: bundle.Descriptor{Digest: want}}); err == nil && served {
				return &TagMovedError{Tag: full, Got: got, Want: want}
			}
		}
		return fmt.Errorf("%w: %s reads back as %s, expected %s; the registry did not store the manifest byte for byte", ErrRegistry, full, got, want)
	}
	return nil
}

// manifestServed reports whether repo serves manifest mf byte for byte.
func (m *mirrorer) manifestServed(ctx context.Context, repo name.Repository, mf bundle.Blob) (bool, error) {
	var raw []byte
	var found bool
	err := m.c.retry(ctx, "check manifest "+mf.Digest+" in "+repo.String(), func(ctx context.Context) error {
		var err error
		raw, _, found, err = m.getManifest(ctx, repo, mf.Digest)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%w: check %s@%s: %w", ErrRegistry, repo, mf.Digest, err)
	}
	return found && sha256Digest(raw) == mf.Digest, nil
}

// subjectOfManifest returns the subject digest of a manifest, "" for none.
func subjectOfManifest(data []byte) string { return referrer.SubjectOf(data) }

// referrerDescriptor is the descriptor of mf in a referrers list.
func referrerDescriptor(mf bundle.Blob) (ocispec.Descriptor, error) {
	info, err := referrer.Parse(digest.Digest(mf.Digest), mf.MediaType, mf.Data)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return info.Desc, nil
}

// listedAsReferrer reports whether mf (which has a subject) is among its
// subject's referrers in repo: by the referrers API when the registry has
// one, else by the referrers tag sha256-<hex>.
func (m *mirrorer) listedAsReferrer(ctx context.Context, repo name.Repository, mf bundle.Blob) (bool, error) {
	subject := subjectOfManifest(mf.Data)
	if subject == "" {
		return true, nil
	}
	var listed bool
	err := m.c.retry(ctx, "list the referrers of "+repo.String()+"@"+subject, func(ctx context.Context) error {
		resp, err := m.c.send(ctx, request{method: http.MethodGet, url: m.c.url(repo, "referrers/"+subject),
			header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}}, pullScope(repo))
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), ocispec.MediaTypeImageIndex) {
			defer resp.Body.Close()
			raw, err := readLimited(resp.Body, bundle.MaxManifestSize, "GET "+repo.String()+" referrers of "+subject)
			if err != nil {
				return err
			}
			idx, err := parseIndex(raw)
			if err != nil {
				return fmt.Errorf("referrers of %s: %w", subject, err)
			}
			listed = idx.has(mf.Digest)
			return nil
		}
		drain(resp)
		// No referrers API: the tag.
		m.usedReferrersTag.Store(true)
		raw, _, found, err := m.getManifest(ctx, repo, referrersTag(subject))
		if err != nil || !found {
			listed = false
			return err
		}
		idx, err := parseIndex(raw)
		if err != nil {
			return fmt.Errorf("%s:%s: %w", repo, referrersTag(subject), err)
		}
		listed = idx.has(mf.Digest)
		return nil
	})
	return listed, err
}

// referrersTag is the fallback tag of the OCI distribution spec for the
// referrers of subject.
func referrersTag(subject string) string { return strings.Replace(subject, ":", "-", 1) }

type refIndex struct{ ocispec.Index }

func parseIndex(raw []byte) (*refIndex, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("not an image index: %w", err)
	}
	if idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("media type %q is not an OCI image index", idx.MediaType)
	}
	return &refIndex{idx}, nil
}

func (x *refIndex) has(d string) bool {
	return slices.ContainsFunc(x.Manifests, func(e ocispec.Descriptor) bool { return e.Digest.String() == d })
}

// maxReferrerRounds bounds the read-merge-write rounds on a referrers tag.
const maxReferrerRounds = 12

// listReferrer adds mf to the referrers tag of its subject in repo, for a
// registry without the referrers API: read the tag, merge, write. With
// confirm it is a loop: after each write, wait a moment and read again,
// until the entry is there after the wait. Two mirrors updating the same
// tag each re-add what the other's write dropped, so they converge. Without
// confirm the first successful write ends it (checkServed confirms later).
func (m *mirrorer) listReferrer(ctx context.Context, repo name.Repository, mf bundle.Blob, confirm bool) error {
	subject := subjectOfManifest(mf.Data)
	if subject == "" {
		return nil
	}
	desc, err := referrerDescriptor(mf)
	if err != nil {
		return fmt.Errorf("%w: referrer %s: %w", ErrRegistry, mf.Digest, err)
	}
	tag := referrersTag(subject)
	m.usedReferrersTag.Store(true)
	wrote := false
	for round := 1; round <= maxReferrerRounds; round++ {
		var raw []byte
		var found bool
		err := m.c.retry(ctx, "read "+repo.String()+":"+tag, func(ctx context.Context) error {
			var err error
			raw, _, found, err = m.getManifest(ctx, repo, tag)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: read %s:%s: %w", ErrRegistry, repo, tag, err)
		}
		idx := &refIndex{ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}}
		idx.SchemaVersion = 2
		if found {
			if idx, err = parseIndex(raw); err != nil {
				return fmt.Errorf("%w: %s:%s is not a referrers index, not overwritten: %w", ErrRegistry, repo, tag, err)
			}
		}
		if idx.has(mf.Digest) && (wrote || round == 1) {
			return nil
		}
		idx.MediaType = ocispec.MediaTypeImageIndex
		idx.SchemaVersion = 2
		idx.Manifests = append(idx.Manifests, desc)
		slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
		out, err := json.Marshal(idx.Index)
		if err != nil {
			return err
		}
		b := bundle.Blob{Descriptor: bundle.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: sha256Digest(out), Size: int64(len(out))}, Data: out}
		if _, err := m.putManifestRetry(ctx, repo, tag, b, false); err != nil {
			// A write refused because of what another writer did, or that
			// failed on the way, is read and merged again in the next
			// round (never sent again as it was: it may be stale by then).
			m.opts.Logger.Debug("referrers tag write failed, merging again", "tag", repo.String()+":"+tag, "err", err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !transient(err) && !unreachable(err) && !isRegistryStatus(err) {
				return err
			}
		} else {
			wrote = true
			if !confirm {
				return nil
			}
		}
		if err := settle(ctx, round); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s:%s: the referrer %s was still missing after %d rounds of concurrent updates", ErrRegistry, repo, tag, mf.Digest, maxReferrerRounds)
}

// isRegistryStatus reports an error that carries a registry answer (as
// opposed to a connection failure that outlived the retry window).
func isRegistryStatus(err error) bool {
	var se *statusError
	return errors.As(err, &se)
}

// settle waits a little, longer in later rounds, with jitter: long enough
// for a concurrent writer's read-modify-write to land, so that reading
// again shows whether it dropped our entry.
func settle(ctx context.Context, round int) error {
	d := time.Duration(150+rand.IntN(150*round)) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
