package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
)

// Intents. A registry has no lock and no compare-and-swap on tags, so the
// state document (one tag, written by read-merge-write) can lose a
// concurrent writer's update. Before a run moves any tag it therefore
// writes its own intent: a tag of the state repository that only runs of
// this very bundle write,
//
//	PREFIX/airlock-state:_intent-<16 hex of sha256(NAME)>-<SEQUENCE>-<12 hex of ROOT>
//
// an OCI manifest of artifactType IntentMediaType whose annotations name
// the bundle. No other writer writes that tag, so no read-merge-write can
// drop it; every reader lists the state repository's tags and counts the
// intents of its bundle name as records (pending ones until the state
// document has them). An intent is never removed by airlock; one that a
// refused run wrote is withdrawn (rewritten with annotationWithdrawn).
//
// The order of a run is: write the intent, read every intent and the
// document, refuse if a newer bundle is there (no tag moved yet); set the
// tags; read again, and fail if a newer bundle's intent appeared meanwhile.
// Of two runs, each writes before it reads, so at least one sees the
// other: the older one then either stops before its tags or fails after
// them, saying so; it never exits 0 with its tags over the newer's.

const (
	// IntentMediaType is the artifact type of an intent manifest.
	IntentMediaType     = "application/vnd.airlock.mirror-intent.v1+json"
	intentTagPrefix     = "_intent-"
	annotationVersion   = "dev.airlock.bundle.version"
	annotationSequence  = "dev.airlock.bundle.sequence"
	annotationRoot      = "dev.airlock.bundle.root"
	annotationCreated   = "org.opencontainers.image.created"
	annotationWithdrawn = "dev.airlock.intent.withdrawn"
	// maxStateTags bounds the tags read from the state repository.
	maxStateTags = 100_000
	// tagsPage is the page size asked for when listing tags.
	tagsPage = 1000
)

// intentRef is one intent tag, parsed from its name.
type intentRef struct {
	tag      string
	sequence uint64
	root12   string
}

// intentPrefix is the start of every intent tag of bundle name bname.
func intentPrefix(bname string) string {
	h := sha256.Sum256([]byte(bname))
	return intentTagPrefix + hex.EncodeToString(h[:8]) + "-"
}

// root12 is the first 12 hex digits of a root digest.
func root12(root string) string {
	h := strings.TrimPrefix(root, "sha256:")
	return h[:min(12, len(h))]
}

// intentTag is the intent tag of bundle id.
func intentTag(id bundleID) string {
	return intentPrefix(id.name) + strconv.FormatUint(id.sequence, 10) + "-" + root12(id.root)
}

// parseIntentTag parses a tag of the state repository; ok is false for
// tags that are not intents of the name whose prefix is given.
func parseIntentTag(prefix, tag string) (intentRef, bool) {
	rest, ok := strings.CutPrefix(tag, prefix)
	if !ok {
		return intentRef{}, false
	}
	seq, root, ok := strings.Cut(rest, "-")
	if !ok || len(root) != 12 {
		return intentRef{}, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != seq {
		return intentRef{}, false
	}
	return intentRef{tag: tag, sequence: n, root12: root}, true
}

// listIntents returns the intent tags of bname in repo.
func (m *mirrorer) listIntents(ctx context.Context, repo name.Repository, bname string) ([]intentRef, error) {
	tags, err := m.listTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	prefix := intentPrefix(bname)
	var out []intentRef
	for _, t := range tags {
		if in, ok := parseIntentTag(prefix, t); ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// listTags lists every tag of repo (none when it does not exist), page by
// page, at most maxStateTags.
func (m *mirrorer) listTags(ctx context.Context, repo name.Repository) ([]string, error) {
	var all []string
	last := ""
	for {
		q := url.Values{"n": {strconv.Itoa(tagsPage)}}
		if last != "" {
			q.Set("last", last)
		}
		var page []string
		var more bool
		err := m.c.retry(ctx, "list the tags of "+repo.String(), func(ctx context.Context) error {
			resp, err := m.c.send(ctx, request{method: http.MethodGet, url: m.c.url(repo, "tags/list?"+q.Encode())}, pullScope(repo))
			if err != nil {
				return err
			}
			if resp.StatusCode == http.StatusNotFound {
				drain(resp)
				page, more = nil, false
				return nil
			}
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, err := readLimited(resp.Body, bundle.MaxManifestSize, "GET "+repo.String()+" tags")
			if err != nil {
				return err
			}
			var body struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				return &SiteStateError{Ref: repo.String(), Reason: "has a tag list that does not parse", Err: err}
			}
			page = body.Tags
			// A registry that pages without a Link header (as
			// go-containerregistry's does) still fills the page.
			more = strings.Contains(resp.Header.Get("Link"), `rel="next"`) || len(body.Tags) >= tagsPage
			return nil
		})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(all) > maxStateTags {
			return nil, &SiteStateError{Ref: repo.String(), Reason: fmt.Sprintf("has more than %d tags", maxStateTags)}
		}
		if !more || len(page) == 0 || page[len(page)-1] <= last {
			return all, nil
		}
		last = page[len(page)-1]
	}
}

// readIntent reads one intent; nil when the tag is gone.
func (m *mirrorer) readIntent(ctx context.Context, repo name.Repository, bname string, in intentRef) (*stateRecord, error) {
	ref := repo.String() + ":" + in.tag
	var rec *stateRecord
	err := m.c.retry(ctx, "read the intent "+ref, func(ctx context.Context) error {
		rec = nil
		raw, _, found, err := m.getManifest(ctx, repo, in.tag)
		if err != nil || !found {
			return err
		}
		var mf struct {
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(raw, &mf); err != nil {
			return &SiteStateError{Ref: ref, Reason: "is not a manifest", Err: err}
		}
		a := mf.Annotations
		seq, err := strconv.ParseUint(a[annotationSequence], 10, 64)
		if mf.ArtifactType != IntentMediaType || a[annotationName] != bname || err != nil || seq != in.sequence ||
			!checked.ValidDigest(a[annotationRoot]) || root12(a[annotationRoot]) != in.root12 || a[annotationVersion] == "" {
			return &SiteStateError{Ref: ref, Reason: "is not an airlock intent for " + bname + " matching its tag"}
		}
		created, _ := time.Parse(time.RFC3339, a[annotationCreated])
		rec = &stateRecord{Version: a[annotationVersion], Sequence: seq, Root: a[annotationRoot], MirroredAt: created,
			pending: true, withdrawn: a[annotationWithdrawn] == "true"}
		return nil
	})
	return rec, err
}

// writeIntent sets this bundle's intent tag (withdrawn or not) and reads
// it back.
func (m *mirrorer) writeIntent(ctx context.Context, repo name.Repository, withdrawn bool) error {
	if err := m.ensureEmptyBlob(ctx, repo); err != nil {
		return err
	}
	ann := map[string]string{
		annotationName:     m.id.name,
		annotationVersion:  m.id.version,
		annotationSequence: strconv.FormatUint(m.id.sequence, 10),
		annotationRoot:     m.id.root,
		annotationCreated:  m.now.UTC().Format(time.RFC3339),
	}
	if withdrawn {
		ann[annotationWithdrawn] = "true"
	}
	mf := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  IntentMediaType,
		"config":        map[string]any{"mediaType": emptyJSONType, "digest": emptyJSONDigest, "size": 2},
		"layers":        []any{map[string]any{"mediaType": emptyJSONType, "digest": emptyJSONDigest, "size": 2}},
		"annotations":   ann,
	}
	raw, err := json.Marshal(mf)
	if err != nil {
		return err
	}
	b := bundle.Blob{Descriptor: bundle.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: sha256Digest(raw), Size: int64(len(raw))}, Data: raw}
	tag := intentTag(m.id)
	if _, err := m.putManifest(ctx, repo, tag, b); err != nil {
		return err
	}
	return m.readBackRef(ctx, repo, tag, b.Digest)
}

// ensureEmptyBlob puts the empty JSON blob ("{}") into repo unless it is
// served there.
func (m *mirrorer) ensureEmptyBlob(ctx context.Context, repo name.Repository) error {
	empty := []byte("{}")
	d := bundle.Descriptor{MediaType: emptyJSONType, Digest: emptyJSONDigest, Size: 2}
	ok, err := m.blobServedRetry(ctx, repo, d, func(off int64) (byte, error) { return empty[off], nil })
	if err != nil || ok {
		return err
	}
	_, _, err = m.pushBlob(ctx, repo, d, memOpener(empty), nil)
	return err
}

// siteView is what a run decides on: the state document and the live
// intents of its bundle name.
type siteView struct {
	doc *siteState
	// intents are the intent tags of the name, as listed.
	intents []intentRef
	// live are the intents read (see readView), withdrawn ones left out.
	live []stateRecord
	// unread are intents listed but not served (deleted, or still being
	// written after a few waits).
	unread []string
}

// readView reads the state document and the intents of m.id.name that
// bear on m.id: every intent of its sequence, and those of higher
// sequences not in skip (from the highest down, until a live one is
// found; the rest cannot change a decision).
func (m *mirrorer) readView(ctx context.Context, repo name.Repository, skip map[string]bool) (*siteView, error) {
	// Intents first, then the document: an intent is folded into the
	// document before anything could make it unnecessary, so reading in
	// this order misses neither.
	intents, err := m.listIntents(ctx, repo, m.id.name)
	if err != nil {
		return nil, err
	}
	doc, err := m.readState(ctx, repo, m.id.name)
	if err != nil {
		return nil, err
	}
	v := &siteView{doc: doc, intents: intents}
	slices.SortFunc(intents, func(a, b intentRef) int {
		switch {
		case a.sequence > b.sequence:
			return -1
		case a.sequence < b.sequence:
			return 1
		}
		return strings.Compare(a.tag, b.tag)
	})
	own := intentTag(m.id)
	foundNewer := false
	for _, in := range intents {
		if in.sequence < m.id.sequence || in.tag == own || skip[in.tag] || (in.sequence > m.id.sequence && foundNewer) || doc.hasIntent(in) {
			continue
		}
		rec, err := m.readIntent(ctx, repo, m.id.name, in)
		for round := 1; err == nil && rec == nil && round <= 3; round++ {
			// Listed but not served: a tag being written (distribution
			// lists a tag's directory before its link is readable), or
			// one deleted. Wait for the first.
			if err := settle(ctx, round); err != nil {
				return nil, err
			}
			rec, err = m.readIntent(ctx, repo, m.id.name, in)
		}
		if err != nil {
			return nil, err
		}
		if rec == nil {
			v.unread = append(v.unread, in.tag) // gone; read again by a later check
			continue
		}
		if rec.withdrawn {
			continue
		}
		v.live = append(v.live, *rec)
		if in.sequence > m.id.sequence {
			foundNewer = true
		}
	}
	return v, nil
}

// hasIntent reports whether the document holds a record for the intent
// (it was folded in when its run completed).
func (s *siteState) hasIntent(in intentRef) bool {
	return s != nil && slices.ContainsFunc(s.Records, func(r stateRecord) bool {
		return r.Sequence == in.sequence && root12(r.Root) == in.root12
	})
}

// merged is the document with the live intents added as pending records:
// what decideSite judges.
func (v *siteView) merged(bname string) *siteState {
	if v.doc == nil && len(v.live) == 0 {
		return nil
	}
	out := &siteState{SchemaVersion: 1, Name: bname}
	if v.doc != nil {
		out.HighestSequence = v.doc.HighestSequence
		out.Records = append(out.Records, v.doc.Records...)
	}
	for _, r := range v.live {
		out.Records = append(out.Records, r)
		out.HighestSequence = max(out.HighestSequence, r.Sequence)
	}
	return out
}
