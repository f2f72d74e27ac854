package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// The site state: what has been mirrored into a registry prefix, kept in
// that registry so that every operator and every machine sees it. For a
// bundle named NAME mirrored into REGISTRY/PREFIX it is the artifact
// REGISTRY/PREFIX/airlock-state:NAME (docs/format.md, "Site state"): an OCI
// image manifest of artifactType StateMediaType whose one layer is the
// JSON document siteState.

const (
	// StateRepository is the repository under the target prefix that holds
	// the site state, one tag per bundle name.
	StateRepository = "airlock-state"
	// StateMediaType is the artifact type of the state manifest and the
	// media type of its one layer.
	StateMediaType = "application/vnd.airlock.mirror-state.v1+json"
	// maxStateBytes bounds the state document read from the registry.
	maxStateBytes = 1 << 20
	// maxStateRecords bounds the records kept (the newest by sequence).
	maxStateRecords = 100
	emptyJSONDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	emptyJSONType   = "application/vnd.oci.empty.v1+json"
	annotationName  = "dev.airlock.bundle.name"
	annotationSeq   = "dev.airlock.highest-sequence"
)

// siteState is the state document.
type siteState struct {
	SchemaVersion   int           `json:"schemaVersion"`
	Name            string        `json:"name"`
	HighestSequence uint64        `json:"highestSequence"`
	Records         []stateRecord `json:"records"`
}

// stateRecord is one bundle mirrored into the prefix.
type stateRecord struct {
	Version    string    `json:"version"`
	Sequence   uint64    `json:"sequence"`
	Root       string    `json:"root"`
	MirroredAt time.Time `json:"mirroredAt"`
	Downgrade  bool      `json:"downgrade,omitempty"`
}

// bundleID is what freshness compares.
type bundleID struct {
	name, version string
	sequence      uint64
	root          string
}

// stateRepo is PREFIX/airlock-state.
func (m *mirrorer) stateRepo() (name.Repository, error) {
	return m.opts.To.repo(StateRepository)
}

// readState fetches the site state for name; nil when there is none.
func (m *mirrorer) readState(ctx context.Context, repo name.Repository, bname string) (*siteState, error) {
	ref := repo.String() + ":" + bname
	var st *siteState
	err := m.c.retry(ctx, "read the site state "+ref, func(ctx context.Context) error {
		st = nil
		raw, _, found, err := m.getManifest(ctx, repo, bname)
		if err != nil || !found {
			return err
		}
		var mf struct {
			ArtifactType string `json:"artifactType"`
			Layers       []struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
				Size      int64  `json:"size"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(raw, &mf); err != nil {
			return &SiteStateError{Ref: ref, Reason: "is not a manifest", Err: err}
		}
		if mf.ArtifactType != StateMediaType || len(mf.Layers) != 1 || mf.Layers[0].MediaType != StateMediaType ||
			mf.Layers[0].Size < 0 || mf.Layers[0].Size > maxStateBytes || !checked.ValidDigest(mf.Layers[0].Digest) {
			return &SiteStateError{Ref: ref, Reason: "is not an airlock site state (artifactType " + StateMediaType + " with one layer of that type)"}
		}
		doc, err := m.getBlob(ctx, repo, mf.Layers[0].Digest, mf.Layers[0].Size)
		if err != nil {
			return err
		}
		var s siteState
		if err := strictjson.Unmarshal(doc, &s); err != nil {
			return &SiteStateError{Ref: ref, Reason: "holds an unreadable state document", Err: err}
		}
		if s.SchemaVersion != 1 || s.Name != bname || len(s.Records) > maxStateRecords {
			return &SiteStateError{Ref: ref, Reason: fmt.Sprintf("holds a state document for %q, schema %d, %d records", s.Name, s.SchemaVersion, len(s.Records))}
		}
		st = &s
		return nil
	})
	return st, err
}

// getManifest reads REPO:REF (a tag or digest), at most
// bundle.MaxManifestSize bytes. found is false on 404.
func (m *mirrorer) getManifest(ctx context.Context, repo name.Repository, ref string) (raw []byte, mediaType string, found bool, err error) {
	h := http.Header{"Accept": {
		"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.v1+prettyjws", "application/vnd.docker.distribution.manifest.v1+json",
		"application/vnd.oci.artifact.manifest.v1+json",
	}}
	resp, err := m.c.send(ctx, request{method: http.MethodGet, url: m.c.url(repo, "manifests/"+ref), header: h}, pullScope(repo))
	if err != nil {
		return nil, "", false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		drain(resp)
		return nil, "", false, nil
	}
	if err := checkStatus(resp, http.StatusOK); err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	sep := ":"
	if checked.ValidDigest(ref) {
		sep = "@"
	}
	if resp.ContentLength > bundle.MaxManifestSize {
		return nil, "", false, &LimitError{What: "GET " + repo.String() + sep + ref, Limit: bundle.MaxManifestSize}
	}
	raw, err = readLimited(resp.Body, bundle.MaxManifestSize, "GET "+repo.String()+sep+ref)
	if err != nil {
		return nil, "", false, err
	}
	return raw, resp.Header.Get("Content-Type"), true, nil
}

// getBlob reads a small blob whole and checks its digest.
func (m *mirrorer) getBlob(ctx context.Context, repo name.Repository, digest string, size int64) ([]byte, error) {
	resp, err := m.c.send(ctx, request{method: http.MethodGet, url: m.c.url(repo, "blobs/"+digest)}, pullScope(repo))
	if err != nil {
		return nil, err
	}
	if err := checkStatus(resp, http.StatusOK); err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, size, "GET "+repo.String()+"@"+digest)
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(b); got != digest {
		return nil, &NotServedError{Ref: repo.String() + "@" + digest, Reason: "reads back as " + got}
	}
	return b, nil
}

// decideSite applies the freshness rules to a bundle against the site
// state: a lower sequence than the highest mirrored is a downgrade, allowed
// only with allowFlag and the policy rule's consent; a sequence or version
// already mirrored with other content is refused.
func decideSite(st *siteState, id bundleID, stateRef string, allowFlag, ruleAllows bool) (downgrade bool, err error) {
	if st == nil {
		return false, nil
	}
	refuse := func(sentinel error, format string, args ...any) (bool, error) {
		return false, &FreshnessError{Name: id.name, Version: id.version, Sequence: id.sequence, Highest: st.HighestSequence, State: stateRef, Reason: fmt.Sprintf(format, args...), Err: sentinel}
	}
	for _, r := range st.Records {
		switch {
		case r.Sequence == id.sequence && r.Root != id.root:
			return refuse(ErrReplay, "sequence %d was already mirrored for a different bundle (version %s, root %s); every release needs a new sequence", id.sequence, r.Version, r.Root)
		case r.Version == id.version && r.Root != id.root:
			return refuse(ErrReplay, "version %s was already mirrored with different content (root %s)", id.version, r.Root)
		}
	}
	if id.sequence == st.HighestSequence && !slices.ContainsFunc(st.Records, func(r stateRecord) bool { return r.Sequence == id.sequence }) {
		return refuse(ErrReplay, "sequence %d was already mirrored for another bundle", id.sequence)
	}
	if id.sequence >= st.HighestSequence {
		return false, nil
	}
	if !allowFlag {
		return refuse(ErrReplay, "a lower sequence than one already mirrored into this prefix: this is an older bundle (a replay or a rollback attack); its tags would move the site back")
	}
	if !ruleAllows {
		return refuse(ErrDowngradeNotAllowed, "a downgrade was asked for, but the policy rule for %s does not set allowDowngrade: true", id.name)
	}
	return true, nil
}

// checkSite reads the site state and decides; it runs before anything is
// pushed, and again right before the tags are set.
func (m *mirrorer) checkSite(ctx context.Context) error {
	repo, err := m.stateRepo()
	if err != nil {
		return fmt.Errorf("site state repository: %w", err)
	}
	st, err := m.readState(ctx, repo, m.id.name)
	if err != nil {
		if errors.Is(err, ErrSiteState) {
			return err
		}
		return fmt.Errorf("%w: read the site state %s:%s: %w", ErrRegistry, repo, m.id.name, err)
	}
	ruleAllows := false
	if r, err := m.opts.Policy.Match(m.id.name); err == nil && r != nil {
		ruleAllows = r.AllowDowngrade
	}
	dg, err := decideSite(st, m.id, repo.String()+":"+m.id.name, m.opts.AllowDowngrade, ruleAllows)
	if err != nil {
		return err
	}
	m.downgrade = dg
	return nil
}

// recordSite writes this bundle into the site state, after its tags are
// set: read, merge, write, read back, until the record is there (another
// operator may write the same state at the same time).
func (m *mirrorer) recordSite(ctx context.Context) error {
	repo, err := m.stateRepo()
	if err != nil {
		return err
	}
	ref := repo.String() + ":" + m.id.name
	rec := stateRecord{Version: m.id.version, Sequence: m.id.sequence, Root: m.id.root, MirroredAt: m.now.UTC(), Downgrade: m.downgrade}
	for attempt := 1; ; attempt++ {
		st, err := m.readState(ctx, repo, m.id.name)
		if err != nil {
			return fmt.Errorf("%w: update the site state %s: %w", ErrRegistry, ref, err)
		}
		if st.has(rec) && st.HighestSequence >= rec.Sequence {
			return nil // recorded (by this attempt, after it settled, or by an earlier run)
		}
		if attempt > 8 {
			return fmt.Errorf("%w: update the site state %s: it kept changing under concurrent writers", ErrRegistry, ref)
		}
		next := st.merge(m.id.name, rec)
		if err := m.writeState(ctx, repo, next); err != nil {
			return fmt.Errorf("%w: update the site state %s: %w", ErrRegistry, ref, err)
		}
		if err := settle(ctx, attempt); err != nil {
			return err
		}
	}
}

func (s *siteState) has(rec stateRecord) bool {
	return s != nil && slices.ContainsFunc(s.Records, func(r stateRecord) bool {
		return r.Sequence == rec.Sequence && r.Root == rec.Root && r.Version == rec.Version
	})
}

// merge returns a copy of s with rec added (or kept) and the highest
// sequence raised to it; the oldest records beyond maxStateRecords go.
func (s *siteState) merge(bname string, rec stateRecord) *siteState {
	out := &siteState{SchemaVersion: 1, Name: bname}
	if s != nil {
		out.HighestSequence = s.HighestSequence
		out.Records = append(out.Records, s.Records...)
	}
	if !out.has(rec) {
		out.Records = append(out.Records, rec)
	}
	out.HighestSequence = max(out.HighestSequence, rec.Sequence)
	slices.SortStableFunc(out.Records, func(a, b stateRecord) int {
		switch {
		case a.Sequence < b.Sequence:
			return -1
		case a.Sequence > b.Sequence:
			return 1
		}
		return 0
	})
	if n := len(out.Records); n > maxStateRecords {
		out.Records = out.Records[n-maxStateRecords:]
	}
	return out
}

// writeState pushes the state document and its manifest under the tag.
func (m *mirrorer) writeState(ctx context.Context, repo name.Repository, st *siteState) error {
	doc, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	docDesc := bundle.Descriptor{MediaType: StateMediaType, Digest: sha256Digest(doc), Size: int64(len(doc))}
	empty := []byte("{}")
	emptyDesc := bundle.Descriptor{MediaType: emptyJSONType, Digest: emptyJSONDigest, Size: 2}
	for _, b := range []struct {
		d    bundle.Descriptor
		data []byte
	}{{docDesc, doc}, {emptyDesc, empty}} {
		data := b.data
		ok, err := m.blobServedRetry(ctx, repo, b.d, func(off int64) (byte, error) { return data[off], nil })
		if err != nil {
			return err
		}
		if !ok {
			if _, _, err := m.pushBlob(ctx, repo, b.d, memOpener(b.data), nil); err != nil {
				return err
			}
		}
	}
	mf := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  StateMediaType,
		"config":        map[string]any{"mediaType": emptyJSONType, "digest": emptyJSONDigest, "size": 2},
		"layers":        []any{map[string]any{"mediaType": StateMediaType, "digest": docDesc.Digest, "size": docDesc.Size}},
		"annotations": map[string]string{
			annotationName: st.Name,
			annotationSeq:  strconv.FormatUint(st.HighestSequence, 10),
		},
	}
	raw, err := json.Marshal(mf)
	if err != nil {
		return err
	}
	b := bundle.Blob{Descriptor: bundle.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: sha256Digest(raw), Size: int64(len(raw))}, Data: raw}
	_, err = m.putManifest(ctx, repo, st.Name, b)
	return err
}

// blobServedRetry is blobServed inside the retry loop.
func (m *mirrorer) blobServedRetry(ctx context.Context, repo name.Repository, d bundle.Descriptor, local probe) (bool, error) {
	var ok bool
	err := m.c.retry(ctx, "check blob "+d.Digest+" in "+repo.String(), func(ctx context.Context) error {
		var err error
		ok, err = m.blobServed(ctx, repo, d, local)
		return err
	})
	return ok, err
}
