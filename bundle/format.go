package bundle

import (
	"time"
)

// Entry names in the head, in the order they appear.
const (
	// EntryFormat is the first entry: the format marker.
	EntryFormat = "airlock/format.json"
	// EntrySignatures holds the DSSE envelope over the bundle statement, when signed.
	EntrySignatures = "airlock/signatures.json"
	// EntryManifest is the bundle manifest.
	EntryManifest = "airlock/bundle.json"
	// EntryFrames is the frame index of a v2 bundle (after EntryManifest).
	EntryFrames = "airlock/frames.json"
	// EntryOCILayout is the OCI image layout marker.
	EntryOCILayout = "oci-layout"
	// EntryIndex is the OCI image layout index: the root of the content tree.
	EntryIndex = "index.json"
)

// Media types and annotations airlock defines or uses.
const (
	// FormatName identifies the bundle format in the marker entry.
	FormatName = "airlock-bundle"
	// MediaTypeBundleManifest is the media type of airlock/bundle.json.
	MediaTypeBundleManifest = "application/vnd.airlock.bundle.manifest.v1+json"

	MediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeEmptyJSON     = "application/vnd.oci.empty.v1+json"
	MediaTypeOctetStream   = "application/octet-stream"
	ArtifactTypeFile       = "application/vnd.airlock.file.v1"
	ArtifactTypeModel      = "application/vnd.cncf.model.manifest.v1+json"
	MediaTypeModelConfig   = "application/vnd.cncf.model.config.v1+json"
	MediaTypeModelWeight   = "application/vnd.cncf.model.weight.v1.raw"
	MediaTypeModelWeightCf = "application/vnd.cncf.model.weight.config.v1.raw"
	MediaTypeModelDoc      = "application/vnd.cncf.model.doc.v1.raw"
	MediaTypeModelCode     = "application/vnd.cncf.model.code.v1.raw"

	AnnotationRefName  = "org.opencontainers.image.ref.name"
	AnnotationTitle    = "org.opencontainers.image.title"
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationFilepath = "org.cncf.model.filepath"
	AnnotationKind     = "dev.airlock.kind"
	AnnotationTarget   = "dev.airlock.target"
	AnnotationMode     = "dev.airlock.mode"
	AnnotationSource   = "dev.airlock.source"
)

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// Artifact kinds.
const (
	KindImage = "image"
	KindModel = "model"
	KindFile  = "file"
	KindSBOM  = "sbom"
	// KindAttachment is an upstream signature, attestation or SBOM attached
	// to an image (a cosign tag or an OCI 1.1 referrer), carried as found.
	KindAttachment = "attachment"
	// KindDir is a directory tree installed under one target (docs/format.md §9).
	KindDir = "dir"
	// KindChart is a Helm chart, carried as an OCI Helm chart artifact.
	KindChart = "chart"
	// KindTrustedRoot is a Sigstore trusted_root.json that images[].verify
	// checked keyless signatures against at pack time, carried so that a
	// policy can name it by digest (it is never trusted for being here).
	KindTrustedRoot = "trustedroot"
)

// Trusted root artifacts: the manifest's artifact type and the layer's
// media type (the trusted root format's own).
const (
	ArtifactTypeTrustedRoot = "application/vnd.airlock.sigstore-trusted-root.v1"
	MediaTypeTrustedRoot    = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
)

// FormatMarker is the content of the first entry.
type FormatMarker struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// Descriptor points at content by digest, as in the OCI image spec.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Manifest is airlock/bundle.json: what the bundle is and what it carries.
// It is parsed strictly (unknown or duplicate keys are errors).
type Manifest struct {
	SchemaVersion int        `json:"schemaVersion"`
	MediaType     string     `json:"mediaType"`
	Name          string     `json:"name"`
	Version       string     `json:"version"`
	Created       time.Time  `json:"created"`
	Root          Descriptor `json:"root"`
	Artifacts     []Artifact `json:"artifacts"`
	Totals        Totals     `json:"totals"`
	// Frames names airlock/frames.json, the frame index (format v2; absent
	// in v1).
	Frames *Descriptor `json:"frames,omitempty"`
}

// Artifact is one thing the release carries.
type Artifact struct {
	Kind string `json:"kind"`
	// Ref is the image reference as written in airlock.yaml (images only).
	Ref string `json:"ref,omitempty"`
	// Resolved is what Ref resolved to at pack time: repository@digest of the
	// source manifest or index, before any platform filtering (images only).
	Resolved string `json:"resolved,omitempty"`
	// Name is the model name (models) or the chart name (charts).
	Name string `json:"name,omitempty"`
	// Version is the chart version (charts only).
	Version string `json:"version,omitempty"`
	// Source is the path in airlock.yaml (models, files, directories,
	// SBOMs), or where a chart came from as written there.
	Source string `json:"source,omitempty"`
	// Target is the install path (models, files and directories).
	Target string `json:"target,omitempty"`
	// Mode is the octal file mode (files; for directories, the one mode
	// given for every file, empty when each file keeps its own).
	Mode string `json:"mode,omitempty"`
	// Descriptor of the artifact's root manifest or index inside the bundle.
	Descriptor
	// Platforms the artifact offers ("os/arch[/variant]"), images only.
	Platforms []string `json:"platforms,omitempty"`
	// Filtered is true when Platforms was filtered from the source index, so
	// Digest differs from the digest in Resolved.
	Filtered bool `json:"filtered,omitempty"`
	// PackCheck says how images[].verify checked the image's upstream
	// signature at pack time ("cosign key FILE (sha256:...)" or "keyless
	// issuer ..., subject ..."); empty when it was not asked to. It is the
	// packer's claim, covered by the bundle's signatures, not re-derived by
	// a reader (a policy's images rules re-check signatures themselves).
	PackCheck string `json:"packCheck,omitempty"`
	// Subject is the image ref an SBOM describes, SubjectDigest its root digest.
	Subject       string `json:"subject,omitempty"`
	SubjectDigest string `json:"subjectDigest,omitempty"`
	// ArtifactType is the artifact type of an attached referrer or cosign
	// attachment (signatures, attestations, SBOMs).
	ArtifactType string `json:"artifactType,omitempty"`
	// Tag is the tag a cosign attachment was found under ("sha256-<hex>.sig").
	Tag string `json:"tag,omitempty"`
	// SBOM summarizes an SBOM document (SBOMs only).
	SBOM *SBOMSummary `json:"sbom,omitempty"`
	// Blobs and Bytes count the artifact's blobs (manifests, configs, layers),
	// including ones shared with other artifacts.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// SBOMSummary is the recorded summary of an SBOM document.
type SBOMSummary struct {
	Format      string `json:"format"`
	SpecVersion string `json:"specVersion"`
	Name        string `json:"name,omitempty"`
	Packages    int    `json:"packages"`
}

// Totals counts the unique content in the bundle.
type Totals struct {
	Artifacts int   `json:"artifacts"`
	Blobs     int   `json:"blobs"`     // unique blobs, head and body
	Bytes     int64 `json:"bytes"`     // sum of unique blob sizes
	BodyBlobs int   `json:"bodyBlobs"` // blobs in the body frame
	BodyBytes int64 `json:"bodyBytes"`
}
