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
	// pending marks a record read from an intent that the document does
	// not hold yet (its run has not completed, or ended half way);
	// withdrawn an intent its run withdrew when refused; unread an intent
	// listed but not served, known from its tag only (no version, no
	// root). intent is REPO:TAG of the intent, tag its tag, digest its
	// manifest's digest (read ones). None of these is ever written into
	// the document.
	pending, withdrawn, unread bool
	intent, tag, digest        string
}

// what names a record in a message.
func (r stateRecord) what() string {
	if r.unread {
		return "the intent " + r.intent + ", listed but not served"
	}
	return fmt.Sprintf("version %s, root %s", r.Version, r.Root)
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
	claim := st.pendingHighest()
	refuse := func(sentinel error, format string, args ...any) (bool, error) {
		e := &FreshnessError{Name: id.name, Version: id.version, Sequence: id.sequence, Highest: st.HighestSequence, State: stateRef, Reason: fmt.Sprintf(format, args...), Err: sentinel}
		if claim != nil && id.sequence < st.HighestSequence {
			e.Intent, e.IntentDigest = claim.intent, claim.digest
		}
		return false, e
	}
	for _, r := range st.Records {
		switch {
		case r.Sequence == id.sequence && r.Root != id.root:
			e := &FreshnessError{Name: id.name, Version: id.version, Sequence: id.sequence, Highest: st.HighestSequence, State: stateRef, Err: ErrReplay,
				Reason: fmt.Sprintf("sequence %d was already mirrored for a different bundle (%s); every release needs a new sequence", id.sequence, r.what())}
			if r.pending {
				e.Intent, e.IntentDigest = r.intent, r.digest
			}
			return false, e
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
		return refuse(ErrReplay, "a lower sequence than one already mirrored into this prefix: this is an older bundle (a replay or a rollback attack); its tags would move the site back%s", st.describeHighest())
	}
	if !ruleAllows {
		return refuse(ErrDowngradeNotAllowed, "a downgrade was asked for, but the policy rule for %s does not set allowDowngrade: true", id.name)
	}
	return true, nil
}

// pendingHighest is the claim (an intent the document does not record)
// that holds the highest sequence; nil when a record does.
func (s *siteState) pendingHighest() *stateRecord {
	if s == nil {
		return nil
	}
	var out *stateRecord
	for i, r := range s.Records {
		if r.Sequence != s.HighestSequence {
			continue
		}
		if !r.pending {
			return nil
		}
		out = &s.Records[i]
	}
	return out
}

// describeHighest says which bundle holds the highest sequence when it is
// one whose run has not completed ("" otherwise), naming its intent so
// that a forged or stray one can be removed.
func (s *siteState) describeHighest() string {
	r := s.pendingHighest()
	switch {
	case r == nil:
		return ""
	case r.unread:
		return fmt.Sprintf(" (sequence %d is claimed by %s: a run writing it now, or one whose intent was deleted while listed; "+
			"if no bundle with that sequence was released, see format.md, section 17, on removing an intent)", r.Sequence, r.what())
	}
	return fmt.Sprintf(" (sequence %d is version %s, claimed at %s by a run that has not completed, intent %s, manifest %s: "+
		"one still running, or one that ended half way, which mirroring version %s again completes; "+
		"if no bundle %s with sequence %d was released, that intent was not written by airlock mirror: delete manifest %s of the state repository (format.md, section 17)",
		r.Sequence, r.Version, r.MirroredAt.Format(time.RFC3339), r.intent, r.digest, r.Version, r.Version, r.Sequence, r.digest)
}

// checkSite reads the site state (the document and the intents) and
// decides; it runs before anything is pushed.
func (m *mirrorer) checkSite(ctx context.Context) error {
	repo, err := m.stateRepo()
	if err != nil {
		return fmt.Errorf("site state repository: %w", err)
	}
	v, err := m.readSiteView(ctx, repo, viewCheck, nil)
	if err != nil {
		return err
	}
	m.ownLive = v.own != nil
	err = m.decide(repo, v)
	var fe *FreshnessError
	if v.own != nil && errors.As(err, &fe) && fe.Err == ErrReplay && m.id.sequence < fe.Highest {
		// An earlier run of this bundle claimed (and may have set its
		// tags) but never completed, and a newer bundle is there: its
		// tags may be this bundle's now.
		st := v.merged(m.id.name)
		newer := st.highestRecord()
		return &ConcurrentMirrorError{Name: m.id.name, Version: m.id.version, Sequence: m.id.sequence,
			NewerVersion: newer.Version, NewerSequence: newer.Sequence, State: fe.State,
			Earlier: true, EarlierClaim: v.own.MirroredAt, Intent: fe.Intent, IntentDigest: fe.IntentDigest}
	}
	return err
}

// highestRecord is the record (or claim) of the highest sequence; one
// with that sequence only when no record holds it.
func (s *siteState) highestRecord() stateRecord {
	out := stateRecord{Sequence: s.highest()}
	if s == nil {
		return out
	}
	for _, r := range s.Records {
		if r.Sequence == s.HighestSequence && (out.Version == "" || !r.pending) {
			out = r
		}
	}
	return out
}

// readSiteView is readView with its errors classed.
func (m *mirrorer) readSiteView(ctx context.Context, repo name.Repository, mode viewMode, skip map[string]bool) (*siteView, error) {
	v, err := m.readView(ctx, repo, mode, skip)
	if err != nil {
		if errors.Is(err, ErrSiteState) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: read the site state %s:%s: %w", ErrRegistry, repo, m.id.name, err)
	}
	return v, nil
}

// decide applies decideSite to a view and keeps whether it is a downgrade.
func (m *mirrorer) decide(repo name.Repository, v *siteView) error {
	ruleAllows := false
	if r, err := m.opts.Policy.Match(m.id.name); err == nil && r != nil {
		ruleAllows = r.AllowDowngrade
	}
	dg, err := decideSite(v.merged(m.id.name), m.id, repo.String()+":"+m.id.name, m.opts.AllowDowngrade, ruleAllows)
	if err != nil {
		return err
	}
	m.downgrade = dg
	return nil
}

// claimSite runs after every manifest is pushed and before any tag moves:
// it writes this bundle's intent, then reads the site state and decides
// again (another run may have claimed a newer bundle meanwhile). From
// here on an older bundle is refused even if this run ends half way. A
// refusal withdraws the intent and moves no tag.
func (m *mirrorer) claimSite(ctx context.Context) error {
	repo, err := m.stateRepo()
	if err != nil {
		return fmt.Errorf("site state repository: %w", err)
	}
	if err := m.writeIntent(ctx, repo, false); err != nil {
		return fmt.Errorf("%w: write the intent %s:%s: %w", ErrRegistry, repo, intentTag(m.id), err)
	}
	// A claim that could not be read back is left live: the intent is
	// the same tag an earlier run of this bundle may have left, and it may
	// be what holds older bundles back; a live claim blocks them until
	// this bundle's run completes, which is the safe side. Only a refusal
	// withdraws it, and not then when an earlier run's claim was live.
	v, err := m.readSiteView(ctx, repo, viewClaim, nil)
	if err != nil {
		return err
	}
	if err := m.decide(repo, v); err != nil {
		if !m.ownLive {
			if werr := m.writeIntent(ctx, repo, true); werr != nil {
				m.opts.Logger.Warn("could not withdraw the intent of a refused bundle", "tag", repo.String()+":"+intentTag(m.id), "err", werr)
			}
		}
		return err
	}
	// Only the newer claims read live now (an allowed downgrade's) are
	// known; every other higher intent (withdrawn, unread, or new) is
	// read again after the tags.
	m.claimed = map[string]bool{}
	for _, r := range v.live {
		if r.Sequence > m.id.sequence && !r.unread {
			m.claimed[r.tag] = true
		}
	}
	m.claimedHighest = max(m.id.sequence, v.merged(m.id.name).highest())
	return nil
}

// checkSuperseded runs after the tags are set: a newer bundle whose intent
// (or record) appeared since claimSite may have had its tags replaced by
// this run's. The run then fails as refused by the site state, naming
// that bundle, so that it gets mirrored again.
func (m *mirrorer) checkSuperseded(ctx context.Context) error {
	repo, err := m.stateRepo()
	if err != nil {
		return fmt.Errorf("site state repository: %w", err)
	}
	v, err := m.readSiteView(ctx, repo, viewRecheck, m.claimed)
	if err != nil {
		return err
	}
	var newer *stateRecord
	for _, r := range v.live {
		if r.Sequence > m.id.sequence && (newer == nil || r.Sequence > newer.Sequence) {
			newer = &r
		}
	}
	if newer != nil {
		return &ConcurrentMirrorError{Name: m.id.name, Version: m.id.version, Sequence: m.id.sequence,
			NewerVersion: newer.Version, NewerSequence: newer.Sequence, State: repo.String() + ":" + m.id.name,
			Intent: newer.intent, IntentDigest: newer.digest}
	}
	if newer == nil && v.doc.highest() > m.claimedHighest {
		for _, r := range v.doc.Records {
			if r.Sequence == v.doc.HighestSequence {
				newer = &r
			}
		}
		if newer == nil {
			newer = &stateRecord{Sequence: v.doc.HighestSequence}
		}
	}
	if newer == nil {
		return nil
	}
	return &ConcurrentMirrorError{Name: m.id.name, Version: m.id.version, Sequence: m.id.sequence,
		NewerVersion: newer.Version, NewerSequence: newer.Sequence, State: repo.String() + ":" + m.id.name}
}

// highest is the highest sequence of s; 0 for no state.
func (s *siteState) highest() uint64 {
	if s == nil {
		return 0
	}
	return s.HighestSequence
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
