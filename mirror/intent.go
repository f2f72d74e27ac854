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
// document has them). One that a refused run wrote is withdrawn
// (rewritten with annotationWithdrawn); the intents of lower sequences
// that the document records are deleted by later runs (pruneIntents).
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
	// maxTagListBytes bounds the bytes of all pages of that tag list;
	// maxTagPages the pages; maxTagLength a tag (the OCI limit).
	maxTagListBytes = 32 << 20
	maxTagPages     = 2_000
	maxTagLength    = 128
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

// listIntents returns the intent tags of bname in repo, page by page,
// keeping only those (every other tag is checked and dropped). found is
// false when the registry answers 404 for the first page (no such
// repository); the caller decides whether that can be true.
//
// Paging: a page with a Link header (rel="next") is followed to that URL
// (same host only) and must list a tag beyond the highest seen so far;
// any other page is followed by a request with last=<highest tag seen>,
// and the listing ends at a page that is empty or lists nothing beyond
// it (a registry that ignores n and last, as distribution 2.8 does,
// answers its whole list again). So a registry that sends short pages
// without a Link is still read to its end.
func (m *mirrorer) listIntents(ctx context.Context, repo name.Repository, bname string) (intents []intentRef, found bool, err error) {
	prefix := intentPrefix(bname)
	seen := map[string]intentRef{}
	next := m.c.url(repo, "tags/list?"+url.Values{"n": {strconv.Itoa(tagsPage)}}.Encode())
	maxSeen := ""
	var count, pages int
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if pages++; pages > maxTagPages {
			return nil, false, &SiteStateError{Ref: repo.String(), Reason: fmt.Sprintf("has a tag list of more than %d pages", maxTagPages)}
		}
		pg, err := m.tagPage(ctx, repo, next, pages == 1)
		if err != nil {
			return nil, false, err
		}
		if pg.notFound {
			return nil, false, nil
		}
		if size += pg.size; size > maxTagListBytes {
			return nil, false, &SiteStateError{Ref: repo.String(), Reason: fmt.Sprintf("has a tag list of more than %d bytes", maxTagListBytes)}
		}
		highest := maxSeen
		for _, t := range pg.tags {
			if t == "" || len(t) > maxTagLength {
				return nil, false, &SiteStateError{Ref: repo.String(), Reason: fmt.Sprintf("lists a tag of %d characters (a tag has 1 to %d)", len(t), maxTagLength)}
			}
			if t > maxSeen {
				if count++; count > maxStateTags {
					return nil, false, &SiteStateError{Ref: repo.String(), Reason: fmt.Sprintf("has more than %d tags", maxStateTags)}
				}
				highest = max(highest, t)
			}
			if in, ok := parseIntentTag(prefix, t); ok {
				seen[t] = in
			}
		}
		advanced := highest > maxSeen
		maxSeen = highest
		switch {
		case len(pg.tags) == 0:
		case !advanced && pg.link != "":
			return nil, false, &SiteStateError{Ref: repo.String(), Reason: "has a tag list whose next page (as its Link header says) lists nothing beyond the page before"}
		case !advanced:
			// The registry ignores last: every page is its whole list.
		case pg.link != "":
			next = pg.link
			continue
		default:
			next = m.c.url(repo, "tags/list?"+url.Values{"n": {strconv.Itoa(tagsPage)}, "last": {maxSeen}}.Encode())
			continue
		}
		out := make([]intentRef, 0, len(seen))
		for _, in := range seen {
			out = append(out, in)
		}
		return out, true, nil
	}
}

// tagList is one page of a tag list.
type tagList struct {
	tags     []string
	link     string // the next page's URL, from the Link header; "" for none
	size     int64  // bytes read
	notFound bool   // 404 on the first page
}

// tagPage reads one page of repo's tag list from u.
func (m *mirrorer) tagPage(ctx context.Context, repo name.Repository, u string, first bool) (tagList, error) {
	var pg tagList
	err := m.c.retry(ctx, "list the tags of "+repo.String(), func(ctx context.Context) error {
		pg = tagList{}
		resp, err := m.c.send(ctx, request{method: http.MethodGet, url: u}, pullScope(repo))
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusNotFound && first {
			drain(resp)
			pg.notFound = true
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
		pg.tags, pg.size = body.Tags, int64(len(raw))
		pg.link, err = nextLink(resp)
		if err != nil {
			return &SiteStateError{Ref: repo.String(), Reason: "has a tag list with an unusable Link header", Err: err}
		}
		return nil
	})
	return pg, err
}

// nextLink is the URL of the Link header's rel="next", resolved against
// the request; it must stay on the request's scheme and host.
func nextLink(resp *http.Response) (string, error) {
	for _, l := range resp.Header.Values("Link") {
		for _, part := range strings.Split(l, ",") {
			target, params, ok := strings.Cut(part, ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) ||
				!strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			u, err := resp.Request.URL.Parse(target[1 : len(target)-1])
			if err != nil {
				return "", err
			}
			if u.Scheme != resp.Request.URL.Scheme || u.Host != resp.Request.URL.Host {
				return "", fmt.Errorf("%s points to another host", redactURL(u.String()))
			}
			return u.String(), nil
		}
	}
	return "", nil
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
			pending: true, withdrawn: a[annotationWithdrawn] == "true", intent: ref, digest: sha256Digest(raw)}
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
	// live are the intents read (see readView), withdrawn ones left out,
	// and those listed but not served, as pending claims of the sequence
	// their tag names.
	live []stateRecord
	// own is this bundle's own intent when the view was asked to read it
	// (viewCheck), it is live and the document does not record it: an
	// earlier run of this bundle claimed and never completed.
	own *stateRecord
}

// viewMode says what a read of the site state is for.
type viewMode int

const (
	// viewCheck: before anything is pushed; this bundle's own intent is
	// read too.
	viewCheck viewMode = iota
	// viewClaim: right after this run wrote its intent, which the tag
	// list must show.
	viewClaim
	// viewRecheck: after the tags; intents in skip (read live at the
	// claim) are not read again.
	viewRecheck
)

// readView reads the state document and the intents of m.id.name that
// bear on m.id: every intent of its sequence, and those of higher
// sequences not in skip (from the highest down, until a live one is
// found; the rest cannot change a decision). An intent listed but not
// served counts, from its tag alone, as a pending claim (there is no
// waiting for it: a claim that is still being written is a claim).
func (m *mirrorer) readView(ctx context.Context, repo name.Repository, mode viewMode, skip map[string]bool) (*siteView, error) {
	// Intents first, then the document: an intent is folded into the
	// document before anything could make it unnecessary, so reading in
	// this order misses neither.
	intents, found, err := m.listIntents(ctx, repo, m.id.name)
	if err != nil {
		return nil, err
	}
	own := intentTag(m.id)
	if mode == viewClaim && !slices.ContainsFunc(intents, func(in intentRef) bool { return in.tag == own }) {
		return nil, &SiteStateError{Ref: repo.String() + ":" + own,
			Reason: "was just written and read back, but the registry's tag list does not show the intent just written: a listing that leaves tags out cannot show a newer claim either"}
	}
	doc, err := m.readState(ctx, repo, m.id.name)
	if err != nil {
		return nil, err
	}
	if !found && doc != nil {
		return nil, &SiteStateError{Ref: repo.String(), Reason: "answers 404 for its tag list but serves the state document " + m.id.name}
	}
	v := &siteView{doc: doc}
	slices.SortFunc(intents, func(a, b intentRef) int {
		switch {
		case a.sequence > b.sequence:
			return -1
		case a.sequence < b.sequence:
			return 1
		}
		return strings.Compare(a.tag, b.tag)
	})
	foundNewer := false
	for _, in := range intents {
		if in.sequence < m.id.sequence || skip[in.tag] || (in.sequence > m.id.sequence && foundNewer) || doc.hasIntent(in) {
			continue
		}
		if in.tag == own {
			if mode != viewCheck {
				continue
			}
			rec, err := m.readIntent(ctx, repo, m.id.name, in)
			if err != nil {
				return nil, err
			}
			if rec != nil && !rec.withdrawn {
				v.own = rec
			}
			continue
		}
		rec, err := m.readIntent(ctx, repo, m.id.name, in)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			// Listed but not served: a tag being written (distribution
			// lists a tag's directory before its link is readable), or
			// one deleted. Its name alone decides.
			rec = &stateRecord{Sequence: in.sequence, pending: true, unread: true, intent: repo.String() + ":" + in.tag}
		}
		if rec.withdrawn {
			continue
		}
		rec.tag = in.tag
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

// maxPrune bounds the intents one run deletes.
const maxPrune = 16

// pruneIntents runs after this bundle's record is in the document: it
// deletes (by digest) the intents of lower sequences of the name that the
// document records, at most maxPrune of them, so that the tag count of a
// long-lived prefix stays bounded. This bundle's own intent stays: a
// later lost update of the document cannot drop the highest claim, and a
// lost lower record cannot let anything below this bundle's sequence
// through. Best effort: a registry that refuses DELETE keeps them (they
// then count toward maxStateTags; see format.md, section 17).
func (m *mirrorer) pruneIntents(ctx context.Context) {
	repo, err := m.stateRepo()
	if err != nil {
		return
	}
	log := m.opts.Logger
	intents, _, err := m.listIntents(ctx, repo, m.id.name)
	if err != nil {
		log.Debug("not pruning intents", "err", err)
		return
	}
	doc, err := m.readState(ctx, repo, m.id.name)
	if err != nil {
		log.Debug("not pruning intents", "err", err)
		return
	}
	n := 0
	for _, in := range intents {
		if in.sequence >= m.id.sequence || !doc.hasIntent(in) {
			continue
		}
		if n++; n > maxPrune {
			return
		}
		rec, err := m.readIntent(ctx, repo, m.id.name, in)
		if err != nil || rec == nil {
			continue
		}
		resp, err := m.c.send(ctx, request{method: http.MethodDelete, url: m.c.url(repo, "manifests/"+rec.digest)}, pushScope(repo))
		if err != nil {
			log.Debug("could not delete a recorded intent", "intent", rec.intent, "err", err)
			return
		}
		if err := checkStatus(resp, http.StatusAccepted, http.StatusOK); err != nil {
			log.Debug("the registry does not delete recorded intents; they stay", "intent", rec.intent, "err", err)
			return
		}
		drain(resp)
	}
}
