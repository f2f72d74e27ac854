package report

import (
	"encoding/json"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/sbom"
	"github.com/airlock-dev/airlock/verify"
)

// Verdicts at the top of a report.
const (
	// Verified: signatures, policy and every byte checked.
	Verified = "VERIFIED"
	// Rejected: the bundle failed a check.
	Rejected = "REJECTED"
	// HeadOnly: signatures and policy passed, but the body was not read.
	HeadOnly = "TRUSTED (HEAD ONLY)"
)

// Document is a report: the verification of one bundle with its SBOM
// component lists and size breakdowns. Its JSON form (`airlock report
// --format json`) is a documented schema; fields are only ever added.
type Document struct {
	SchemaVersion int `json:"schemaVersion"` // 1
	// Airlock is the version of airlock that wrote the report.
	Airlock string `json:"airlock"`
	// Generated is when the report was made.
	Generated time.Time `json:"generated"`
	// Verdict is Verified, Rejected or HeadOnly; VerdictDetail says why.
	Verdict       string `json:"verdict"`
	VerdictDetail string `json:"verdictDetail"`
	// Verification is the report of the one verification pass (the same as
	// `airlock verify --json`).
	Verification *verify.Report `json:"verification"`
	// Attachments lists, per image, the upstream signatures, attestations
	// and SBOMs the bundle carries.
	Attachments []ImageAttachments `json:"attachments"`
	// SBOMs lists every SBOM document with its components.
	SBOMs []SBOM `json:"sboms"`
	// Sizes breaks the bundle's bytes down by kind and by image.
	Sizes Sizes `json:"sizes"`
}

// ImageAttachments are the upstream attachments of one image.
type ImageAttachments struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// PackCheck is how images[].verify checked the image at pack time,
	// as the packer recorded it in the signed bundle.json; "" when not asked.
	PackCheck   string       `json:"packCheck,omitempty"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is one upstream signature, attestation or SBOM.
type Attachment struct {
	What          string `json:"what"` // signature, attestation, SBOM, referrer
	Tag           string `json:"tag,omitempty"`
	ArtifactType  string `json:"artifactType,omitempty"`
	Digest        string `json:"digest"`
	SubjectDigest string `json:"subjectDigest"`
}

// SBOM is one SBOM document and what it lists.
type SBOM struct {
	Artifact      int                 `json:"artifact"`
	Name          string              `json:"name"`
	Kind          string              `json:"kind"`
	Subject       string              `json:"subject,omitempty"`
	SubjectDigest string              `json:"subjectDigest,omitempty"`
	Path          string              `json:"path,omitempty"`
	Digest        string              `json:"digest"`
	Size          int64               `json:"size"`
	MediaType     string              `json:"mediaType"`
	Recorded      *bundle.SBOMSummary `json:"recorded,omitempty"` // the summary pack recorded
	Inventory     *sbom.Inventory     `json:"inventory,omitempty"`
	// NotListed says why the components are not listed; empty when they are.
	NotListed string `json:"notListed,omitempty"`
}

// Sizes are byte totals for the size charts.
type Sizes struct {
	// ByKind sums each artifact's bytes by kind (blobs shared by several
	// artifacts count once per artifact).
	ByKind []Bar `json:"byKind"`
	// ByImage is each image's bytes.
	ByImage []Bar `json:"byImage"`
}

// Bar is one bar of a chart.
type Bar struct {
	Label string `json:"label"`
	Bytes int64  `json:"bytes"`
}

// Options configures Build; the zero value works.
type Options struct {
	// Airlock is the airlock version, printed in the report.
	Airlock string
	// Generated is the report's time; zero means the verification's Now.
	Generated time.Time
}

// Build makes the report of rep, with the SBOM documents c collected in
// the same pass (nil when none were collected).
func Build(rep *verify.Report, c *Collector, opts Options) *Document {
	d := &Document{SchemaVersion: 1, Airlock: opts.Airlock, Generated: opts.Generated, Verification: rep}
	if d.Generated.IsZero() {
		d.Generated = rep.Now
	}
	d.Generated = d.Generated.UTC()
	switch {
	case rep.Verified:
		d.Verdict = Verified
		d.VerdictDetail = "signatures, policy and every byte of the bundle checked"
	case rep.HeadOnly && rep.Trusted:
		d.Verdict = HeadOnly
		d.VerdictDetail = "signatures and policy checked from the head; the body was NOT read, so no content digest was checked"
	default:
		d.Verdict = Rejected
		d.VerdictDetail = rep.Error
		if d.VerdictDetail == "" {
			d.VerdictDetail = "the bundle failed verification"
		}
	}
	d.Attachments = attachments(rep.Artifacts)
	d.SBOMs = c.sboms()
	if len(d.SBOMs) == 0 {
		for i, a := range rep.Artifacts {
			if a.Kind == bundle.KindSBOM {
				d.SBOMs = append(d.SBOMs, SBOM{Artifact: i, Name: a.Describe(), Kind: a.Kind, Subject: a.Subject, SubjectDigest: a.SubjectDigest,
					Digest: a.Digest, Size: a.Bytes, MediaType: a.ArtifactType, Recorded: a.SBOM,
					NotListed: "the bundle was not trusted, so its content was not read"})
			}
		}
	}
	d.Sizes = sizes(rep.Artifacts)
	return d
}

func attachments(arts []bundle.Artifact) []ImageAttachments {
	out := []ImageAttachments{}
	idx := map[string]int{}
	for _, a := range arts {
		if a.Kind == bundle.KindImage {
			idx[a.Ref] = len(out)
			out = append(out, ImageAttachments{Image: a.Ref, Digest: a.Digest, PackCheck: a.PackCheck, Attachments: []Attachment{}})
		}
	}
	for _, a := range arts {
		if a.Kind != bundle.KindAttachment {
			continue
		}
		i, ok := idx[a.Subject]
		if !ok {
			continue
		}
		out[i].Attachments = append(out[i].Attachments, Attachment{What: AttachmentWhat(a), Tag: a.Tag, ArtifactType: a.ArtifactType, Digest: a.Digest, SubjectDigest: a.SubjectDigest})
	}
	return out
}

// AttachmentWhat names what an upstream attachment is, from its tag or
// artifact type: signature, attestation, SBOM or referrer.
func AttachmentWhat(a bundle.Artifact) string {
	switch {
	case strings.HasSuffix(a.Tag, ".sig") || strings.Contains(a.ArtifactType, "sig"):
		return "signature"
	case strings.HasSuffix(a.Tag, ".att") || strings.Contains(a.ArtifactType, "in-toto") || strings.Contains(a.ArtifactType, "attestation"):
		return "attestation"
	case strings.HasSuffix(a.Tag, ".sbom") || sbomMediaType(a.ArtifactType):
		return "SBOM"
	}
	return "referrer"
}

func sizes(arts []bundle.Artifact) Sizes {
	s := Sizes{ByKind: []Bar{}, ByImage: []Bar{}}
	kinds := map[string]int64{}
	for _, a := range arts {
		kinds[a.Kind] += a.Bytes
		if a.Kind == bundle.KindImage {
			s.ByImage = append(s.ByImage, Bar{Label: a.Ref, Bytes: a.Bytes})
		}
	}
	for _, k := range bundle.Kinds() {
		if n, ok := kinds[k]; ok {
			s.ByKind = append(s.ByKind, Bar{Label: k, Bytes: n})
		}
	}
	sort.SliceStable(s.ByImage, func(i, j int) bool { return s.ByImage[i].Bytes > s.ByImage[j].Bytes })
	return s
}

// JSON writes the document as indented JSON.
func (d *Document) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}
