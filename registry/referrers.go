package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/referrer"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The referrers API (OCI distribution spec 1.1, "Listing Referrers") is not
// in the CNCF distribution library, so the Server answers
// GET /v2/<name>/referrers/<digest> itself from the same storage: it lists
// the repository's manifests (one directory walk), reads each one once per
// process, and returns those whose subject is <digest>.

const (
	// headerFiltersApplied names the filters a referrers response applied.
	headerFiltersApplied = "OCI-Filters-Applied"
	// referrersSegment is the path segment before the subject digest.
	referrersSegment = "referrers"
	// maxReferrerCache bounds the per-process cache of parsed manifests;
	// when it is full the cache starts over.
	maxReferrerCache = 1 << 16
	// maxManifestBytes is the largest manifest the server accepts; the
	// distribution library refuses larger PUT bodies.
	maxManifestBytes = 4 << 20
)

// referrers answers the referrers API from a distribution namespace.
type referrers struct {
	ns  distribution.Namespace
	log *slog.Logger

	mu    sync.Mutex
	cache map[digest.Digest]referrer.Info // by manifest digest; manifests are immutable
}

func newReferrers(ns distribution.Namespace, log *slog.Logger) *referrers {
	return &referrers{ns: ns, log: log, cache: make(map[digest.Digest]referrer.Info)}
}

// referrersPath splits "/v2/<name>/referrers/<ref>" into name and ref. No
// route of the distribution API ends in "/referrers/<x>", so a match is
// always ours, even for a repository whose name contains "referrers".
func referrersPath(p string) (name, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	head, ref := rest[:i], rest[i+1:]
	name, ok = strings.CutSuffix(head, "/"+referrersSegment)
	if !ok || name == "" || ref == "" {
		return "", "", false
	}
	return name, ref, true
}

// serve answers GET and HEAD /v2/<name>/referrers/<ref>.
func (rf *referrers) serve(w http.ResponseWriter, r *http.Request, name, ref string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnsupported.WithMessage("the referrers API supports GET and HEAD only"))
		return
	}
	named, err := reference.WithName(name)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
		return
	}
	subject, err := digest.Parse(ref)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	artifactType := r.URL.Query().Get("artifactType")

	descs, err := rf.list(r.Context(), named, subject, artifactType)
	if err != nil {
		if r.Context().Err() == nil {
			rf.log.Warn("list referrers", "repository", name, "subject", subject.String(), "err", err)
		}
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail("could not list referrers; see the server log"))
		return
	}
	body, err := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: descs,
	})
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", v1.MediaTypeImageIndex)
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if artifactType != "" {
		h.Set(headerFiltersApplied, "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// list returns the descriptors of the manifests in repository named whose
// subject is subject, sorted by digest, keeping only those of artifactType
// when it is not empty. An unknown repository has no referrers.
func (rf *referrers) list(ctx context.Context, named reference.Named, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	descs := []v1.Descriptor{} // an empty list, never null
	repo, err := rf.ns.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	en, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, errors.New("the manifest store cannot list manifests")
	}
	// A manifest pushed by a sha512 digest has a second revision link (its
	// alias) that names the same sha256 revision: list it once.
	seen := map[digest.Digest]bool{}
	err = en.Enumerate(ctx, func(d digest.Digest) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if seen[d] {
			return nil
		}
		seen[d] = true
		info, ok, err := rf.info(ctx, ms, d)
		if err != nil || !ok {
			return err
		}
		if info.Subject != subject {
			return nil
		}
		if artifactType != "" && info.Desc.ArtifactType != artifactType {
			return nil
		}
		descs = append(descs, info.Desc)
		return nil
	})
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return descs, nil // no such repository, or no manifests in it
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return descs, nil
}

// info returns the referrer facts of manifest d, from the cache or by
// reading it. ok is false for a manifest that vanished or cannot be read as
// JSON; those are skipped (and logged), as the registry cannot serve them
// either.
func (rf *referrers) info(ctx context.Context, ms distribution.ManifestService, d digest.Digest) (referrer.Info, bool, error) {
	rf.mu.Lock()
	info, ok := rf.cache[d]
	rf.mu.Unlock()
	if ok {
		return info, true, nil
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return referrer.Info{}, false, ctx.Err()
		}
		var unknown distribution.ErrManifestUnknownRevision
		if !errors.As(err, &unknown) {
			rf.log.Warn("referrers: skip a manifest that cannot be read", "digest", d.String(), "err", err)
		}
		return referrer.Info{}, false, nil
	}
	mediaType, payload, err := m.Payload()
	if err != nil {
		rf.log.Warn("referrers: skip a manifest that cannot be read", "digest", d.String(), "err", err)
		return referrer.Info{}, false, nil
	}
	info, err = referrer.Parse(d, mediaType, payload)
	if err != nil {
		rf.log.Warn("referrers: skip a manifest that is not valid JSON", "digest", d.String(), "err", err)
		return referrer.Info{}, false, nil
	}
	rf.mu.Lock()
	if len(rf.cache) >= maxReferrerCache {
		clear(rf.cache)
	}
	rf.cache[d] = info
	rf.mu.Unlock()
	return info, true, nil
}
