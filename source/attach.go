package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
	"github.com/airlock-dev/airlock/pack"
)

// Limits of Attachments.
const (
	// MaxAttachments bounds what Attachments returns for one subject; a
	// subject with more is an error (ErrTooManyAttachments), not a cut list.
	MaxAttachments = 64
	// attachJobs bounds the subjects looked up in a registry at once.
	attachJobs = 4
)

var (
	// ErrTooManyAttachments reports a subject with more than MaxAttachments
	// cosign tags and referrers.
	ErrTooManyAttachments = errors.New("too many attachments")
	// ErrBadAttachment reports an attachment the source describes
	// inconsistently: a manifest over bundle.MaxManifestSize, of a media type
	// airlock does not carry, not strict JSON, served with another size or
	// digest than listed, or a listed referrer whose subject is another image.
	ErrBadAttachment = errors.New("invalid attachment")
)

// AttachmentError names the image, the subject and the attachment a
// failure of Attachments belongs to.
type AttachmentError struct {
	// Source is the image reference or layout path being packed.
	Source string
	// Subject is the digest of the manifest the attachment belongs to.
	Subject string
	// Attachment is the tag ("sha256-<hex>.sig") or the referrer digest, or
	// "referrers" for the listing itself; "" for the subject as a whole.
	Attachment string
	// Err wraps ErrTooManyAttachments, ErrBadAttachment or the source's error.
	Err error
}

func (e *AttachmentError) Error() string {
	what := "attachments of " + e.Subject
	if e.Attachment != "" {
		what += " (" + strconv.Quote(e.Attachment) + ")"
	}
	return fmt.Sprintf("%s: %s: %v", e.Source, what, e.Err)
}

// Unwrap returns the cause.
func (e *AttachmentError) Unwrap() error { return e.Err }

// cosignSuffixes are the suffixes of the tags cosign attaches to an image,
// in the order Attachments returns them: signatures, attestations, SBOMs.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// cosignTag is the tag cosign stores an attachment of subject under.
func cosignTag(subject, suffix string) string {
	return strings.Replace(subject, ":", "-", 1) + suffix
}

// Kinds of entries in an OCI layout written by `cosign save`.
const (
	cosignKindAnnotation = "kind"
	cosignKindPrefix     = "dev.cosignproject.cosign/"
)

// cosignKindSuffix maps the kind annotation of a `cosign save` layout entry
// to the suffix of the tag it came from.
var cosignKindSuffix = map[string]string{
	cosignKindPrefix + "sigs":  ".sig",
	cosignKindPrefix + "atts":  ".att",
	cosignKindPrefix + "sboms": ".sbom",
}

var (
	_ pack.AttachmentSource = (*remoteSource)(nil)
	_ pack.AttachmentSource = (*layoutSource)(nil)
)

// carried reports whether airlock carries manifests of media type mt.
func carried(mt string) bool {
	switch mt {
	case bundle.MediaTypeOCIManifest, bundle.MediaTypeOCIIndex, bundle.MediaTypeDockerV2, bundle.MediaTypeDockerList:
		return true
	}
	return false
}

// manifestInfo is what Attachments reads from an attachment's manifest.
type manifestInfo struct {
	mediaType    string // its mediaType member; "" when absent
	artifactType string // artifactType, else config.mediaType
	subject      string // subject.digest; "" when absent
}

// inspectManifest reads raw strictly (no duplicate keys, no trailing data)
// and takes members by their exact names.
func inspectManifest(raw []byte) (manifestInfo, error) {
	var info manifestInfo
	if err := strictjson.Check(raw); err != nil {
		return info, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return info, errors.New("not a JSON object")
	}
	member := func(obj map[string]json.RawMessage, key string, v any) error {
		if b, ok := obj[key]; ok {
			if err := json.Unmarshal(b, v); err != nil {
				return fmt.Errorf("member %q: %w", key, err)
			}
		}
		return nil
	}
	var config, subject map[string]json.RawMessage
	if err := errors.Join(
		member(top, "mediaType", &info.mediaType),
		member(top, "artifactType", &info.artifactType),
		member(top, "config", &config),
		member(top, "subject", &subject),
	); err != nil {
		return info, err
	}
	if info.artifactType == "" {
		if err := member(config, "mediaType", &info.artifactType); err != nil {
			return info, err
		}
	}
	if err := member(subject, "digest", &info.subject); err != nil {
		return info, err
	}
	if subject != nil && !checked.ValidDigest(info.subject) {
		return info, fmt.Errorf("subject digest %q is not sha256:<64 lowercase hex>", clip(info.subject))
	}
	return info, nil
}

// newAttachment checks raw, the manifest of an attachment of subject, and
// describes it. served is the media type the source reported for it (the
// Content-Type, or the layout's descriptor); the manifest's own mediaType
// member wins when present.
func newAttachment(kind string, subject bundle.Descriptor, served string, raw []byte) (pack.Attachment, error) {
	if len(raw) > bundle.MaxManifestSize {
		return pack.Attachment{}, fmt.Errorf("%w: manifest of %d bytes exceeds %d", ErrBadAttachment, len(raw), bundle.MaxManifestSize)
	}
	info, err := inspectManifest(raw)
	if err != nil {
		return pack.Attachment{}, fmt.Errorf("%w: %w", ErrBadAttachment, err)
	}
	mt := info.mediaType
	if mt == "" {
		mt = served
	}
	if !carried(mt) {
		return pack.Attachment{}, fmt.Errorf("%w: media type %q (airlock carries OCI and Docker v2 manifests and indexes)", ErrBadAttachment, clip(mt))
	}
	a := pack.Attachment{
		Kind:    kind,
		Subject: subject,
		Root:    bundle.Descriptor{MediaType: mt, Digest: checked.Digest(raw), Size: int64(len(raw))},
		Raw:     raw,
	}
	if kind == pack.AttachReferrer {
		if info.subject != subject.Digest {
			return pack.Attachment{}, fmt.Errorf("%w: listed as a referrer of %s but its subject is %q", ErrBadAttachment, subject.Digest, clip(info.subject))
		}
		a.ArtifactType = info.artifactType
	}
	return a, nil
}

// checkSubjects refuses subjects whose digest cannot name a tag.
func checkSubjects(source string, subjects []bundle.Descriptor) error {
	for _, s := range subjects {
		if !checked.ValidDigest(s.Digest) {
			return &AttachmentError{Source: source, Subject: clip(s.Digest), Err: fmt.Errorf("%w: subject digest is not sha256:<64 lowercase hex>", checked.ErrUnsupportedDigest)}
		}
	}
	return nil
}

// sortAttachments orders one subject's attachments: cosign tags by suffix
// (.sig, .att, .sbom), then referrers by digest.
func sortAttachments(as []pack.Attachment) {
	rank := func(a pack.Attachment) int {
		if a.Kind == pack.AttachReferrer {
			return len(cosignSuffixes)
		}
		for i, s := range cosignSuffixes {
			if strings.HasSuffix(a.Tag, s) {
				return i
			}
		}
		return len(cosignSuffixes)
	}
	slices.SortStableFunc(as, func(a, b pack.Attachment) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Root.Digest, b.Root.Digest)
	})
}

// isNotFound reports a registry answer meaning "no such tag or manifest".
func isNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// Attachments implements pack.AttachmentSource for a registry: for each
// subject, the manifests tagged sha256-<hex>.sig, .att and .sbom in the
// image's repository, and the OCI 1.1 referrers of the subject, read from
// the Referrers API or, when the registry has none (distribution 2.x), from
// the referrers tag "sha256-<hex>" that go-containerregistry, cosign and
// oras maintain. A referrer that is also one of the tagged manifests is
// returned once, as the tag. Referrers of media types airlock does not
// carry are left out; a listed referrer that is gone (404) is skipped.
// Subjects are looked up 4 at a time.
func (s *remoteSource) Attachments(ctx context.Context, subjects []bundle.Descriptor) ([]pack.Attachment, error) {
	if err := checkSubjects(s.ref, subjects); err != nil {
		return nil, err
	}
	found := make([][]pack.Attachment, len(subjects))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(attachJobs)
	for i, subj := range subjects {
		g.Go(func() error {
			as, err := s.attachmentsOf(gctx, subj)
			found[i] = as
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := []pack.Attachment{}
	for _, as := range found {
		out = append(out, as...)
	}
	return out, nil
}

func (s *remoteSource) attachmentsOf(ctx context.Context, subject bundle.Descriptor) ([]pack.Attachment, error) {
	fail := func(what string, err error) error {
		return &AttachmentError{Source: s.ref, Subject: subject.Digest, Attachment: what, Err: err}
	}
	// registryErr says what to do about a registry error, keeping a
	// cancellation recognisable (classify would report it as unreachable).
	registryErr := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", context.Cause(ctx), err)
		}
		return classify(s.ref, s.repo.RegistryStr(), err)
	}
	opts := s.p.remoteOptions(ctx)
	var out []pack.Attachment
	seen := map[string]bool{}
	for _, suffix := range cosignSuffixes {
		tag := cosignTag(subject.Digest, suffix)
		desc, err := remote.Get(s.repo.Tag(tag), opts...)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fail(tag, registryErr(err))
		}
		a, err := newAttachment(pack.AttachCosignTag, subject, string(desc.MediaType), desc.Manifest)
		if err != nil {
			return nil, fail(tag, err)
		}
		a.Tag = tag
		seen[a.Root.Digest] = true
		out = append(out, a)
	}

	idx, err := remote.Referrers(s.repo.Digest(subject.Digest), opts...)
	if err != nil {
		return nil, fail("referrers", registryErr(err))
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, fail("referrers", err)
	}
	if len(raw) > bundle.MaxManifestSize {
		return nil, fail("referrers", fmt.Errorf("%w: referrers list of %d bytes exceeds %d", ErrBadAttachment, len(raw), bundle.MaxManifestSize))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fail("referrers", fmt.Errorf("%w: %w", ErrBadAttachment, err))
	}
	listed := slices.Clone(im.Manifests)
	slices.SortFunc(listed, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	for _, d := range listed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dg := d.Digest.String()
		if seen[dg] || !carried(string(d.MediaType)) {
			continue
		}
		switch {
		case !checked.ValidDigest(dg):
			return nil, fail(dg, fmt.Errorf("%w: digest is not sha256:<64 lowercase hex>", ErrBadAttachment))
		case d.Size <= 0 || d.Size > bundle.MaxManifestSize:
			return nil, fail(dg, fmt.Errorf("%w: listed size %d is not in 1..%d", ErrBadAttachment, d.Size, bundle.MaxManifestSize))
		case len(out) >= MaxAttachments:
			return nil, fail("", fmt.Errorf("%w: more than %d", ErrTooManyAttachments, MaxAttachments))
		}
		got, err := remote.Get(s.repo.Digest(dg), opts...)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fail(dg, registryErr(err))
		}
		a, err := newAttachment(pack.AttachReferrer, subject, string(got.MediaType), got.Manifest)
		if err != nil {
			return nil, fail(dg, err)
		}
		if a.Root.Digest != dg || a.Root.Size != d.Size {
			return nil, fail(dg, fmt.Errorf("%w: listed as %s, %d bytes; served %s, %d bytes", ErrBadAttachment, dg, d.Size, a.Root.Digest, a.Root.Size))
		}
		seen[dg] = true
		out = append(out, a)
	}
	sortAttachments(out)
	return out, nil
}

// Attachments implements pack.AttachmentSource for an OCI image layout.
// It looks at the entries of index.json only:
//
//   - an entry whose org.opencontainers.image.ref.name ends in
//     "sha256-<hex>.sig", ".att" or ".sbom" (after the last ':', as `skopeo
//     copy` or `oras copy` name a copied cosign tag) is a cosign tag of that
//     subject;
//   - in a layout written by `cosign save`, the entries of kind
//     dev.cosignproject.cosign/sigs, /atts and /sboms are the cosign tags of
//     the layout's one entry of kind /image or /imageIndex;
//   - any other entry of a carried media type whose manifest's subject is a
//     wanted subject is a referrer.
//
// Entries that cannot be read are skipped while looking for referrers, but
// are errors when they are cosign tags of a wanted subject.
func (s *layoutSource) Attachments(ctx context.Context, subjects []bundle.Descriptor) ([]pack.Attachment, error) {
	source := "oci:" + string(s.path)
	if err := checkSubjects(source, subjects); err != nil {
		return nil, err
	}
	idx, err := s.path.ImageIndex()
	if err != nil {
		return nil, &SourceError{Ref: source, Err: err}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, &SourceError{Ref: source, Err: err}
	}
	wanted := map[string]bundle.Descriptor{}
	for _, subj := range subjects {
		wanted[subj.Digest] = subj
	}
	savedImage := cosignSavedImage(im.Manifests)

	found := map[string][]pack.Attachment{} // by subject digest
	seen := map[[2]string]bool{}            // subject digest, attachment digest
	add := func(a pack.Attachment) error {
		key := [2]string{a.Subject.Digest, a.Root.Digest}
		if seen[key] {
			return nil
		}
		if len(found[a.Subject.Digest]) >= MaxAttachments {
			return &AttachmentError{Source: source, Subject: a.Subject.Digest, Err: fmt.Errorf("%w: more than %d", ErrTooManyAttachments, MaxAttachments)}
		}
		seen[key] = true
		found[a.Subject.Digest] = append(found[a.Subject.Digest], a)
		return nil
	}

	// Cosign tags first, so that a tagged manifest that also names the
	// subject is returned once, as the tag.
	tagged := map[string]bool{}
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		subjDigest, tag, ok := layoutCosignTag(d, savedImage)
		subj, want := wanted[subjDigest]
		if !ok || !want {
			continue
		}
		tagged[d.Digest.String()] = true
		raw, err := s.readManifest(d)
		if err != nil {
			return nil, &AttachmentError{Source: source, Subject: subjDigest, Attachment: tag, Err: err}
		}
		a, err := newAttachment(pack.AttachCosignTag, subj, string(d.MediaType), raw)
		if err != nil {
			return nil, &AttachmentError{Source: source, Subject: subjDigest, Attachment: tag, Err: err}
		}
		a.Tag = tag
		if err := add(a); err != nil {
			return nil, err
		}
	}
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dg := d.Digest.String()
		if tagged[dg] || !carried(string(d.MediaType)) || d.Size <= 0 || d.Size > bundle.MaxManifestSize {
			continue
		}
		raw, err := s.readManifest(d)
		if err != nil {
			continue // unreadable: not known to be attached to anything
		}
		info, err := inspectManifest(raw)
		if err != nil {
			continue
		}
		subj, want := wanted[info.subject]
		if !want {
			continue
		}
		a, err := newAttachment(pack.AttachReferrer, subj, string(d.MediaType), raw)
		if err != nil {
			return nil, &AttachmentError{Source: source, Subject: subj.Digest, Attachment: dg, Err: err}
		}
		if err := add(a); err != nil {
			return nil, err
		}
	}

	out := []pack.Attachment{}
	done := map[string]bool{}
	for _, subj := range subjects {
		if done[subj.Digest] {
			continue
		}
		done[subj.Digest] = true
		as := found[subj.Digest]
		sortAttachments(as)
		out = append(out, as...)
	}
	return out, nil
}

// cosignSavedImage returns the digest of the one entry of kind
// dev.cosignproject.cosign/image or /imageIndex, as `cosign save` writes
// it, or "" when there is not exactly one.
func cosignSavedImage(entries []v1.Descriptor) string {
	var img string
	n := 0
	for _, d := range entries {
		switch d.Annotations[cosignKindAnnotation] {
		case cosignKindPrefix + "image", cosignKindPrefix + "imageIndex":
			img = d.Digest.String()
			n++
		}
	}
	if n != 1 {
		return ""
	}
	return img
}

// layoutCosignTag tells whether the layout entry d is a cosign tag, and of
// which subject. savedImage is the subject of a `cosign save` layout.
func layoutCosignTag(d v1.Descriptor, savedImage string) (subject, tag string, ok bool) {
	if suffix, isSaved := cosignKindSuffix[d.Annotations[cosignKindAnnotation]]; isSaved && savedImage != "" {
		return savedImage, cosignTag(savedImage, suffix), true
	}
	name, has := d.Annotations[bundle.AnnotationRefName]
	if !has {
		return "", "", false
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	for _, suffix := range cosignSuffixes {
		hexPart, isTag := strings.CutSuffix(name, suffix)
		if !isTag {
			continue
		}
		hexPart, isTag = strings.CutPrefix(hexPart, "sha256-")
		if isTag && checked.ValidDigest("sha256:"+hexPart) {
			return "sha256:" + hexPart, name, true
		}
	}
	return "", "", false
}

// readManifest reads the manifest d names from the layout, bounded by
// bundle.MaxManifestSize and checked against d's size and digest.
func (s *layoutSource) readManifest(d v1.Descriptor) ([]byte, error) {
	dg := d.Digest.String()
	switch {
	case !checked.ValidDigest(dg):
		return nil, fmt.Errorf("%w: digest %q is not sha256:<64 lowercase hex>", ErrBadAttachment, clip(dg))
	case d.Size <= 0 || d.Size > bundle.MaxManifestSize:
		return nil, fmt.Errorf("%w: manifest size %d is not in 1..%d", ErrBadAttachment, d.Size, bundle.MaxManifestSize)
	}
	rc, err := s.path.Blob(d.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := checked.ReadAll(rc, dg, d.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAttachment, err)
	}
	return raw, nil
}

// clip shortens untrusted text for an error message.
func clip(s string) string {
	const limit = 100
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
