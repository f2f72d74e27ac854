package bundle

import (
	"fmt"
	"strings"
)

// Placement says how `airlock mirror` places an artifact of a kind in a registry.
type Placement int

const (
	// PlaceNone: the kind is not pushed to a registry (it is installed).
	PlaceNone Placement = iota
	// PlaceByRef: pushed under the repository and tag of its reference.
	PlaceByRef
	// PlaceModel: pushed to the repository models/NAME, tagged with the
	// bundle version.
	PlaceModel
	// PlaceWithSubject: pushed next to the image it is attached to (a
	// referrer, or a cosign tag); left in the bundle when it has no subject.
	PlaceWithSubject
	// PlaceChart: pushed to the repository charts/NAME, tagged with the
	// chart version ("+" written "_", as Helm does), so that
	// `helm pull oci://SITE/charts/NAME --version V` finds it.
	PlaceChart
)

// KindInfo is what the format says about one artifact kind: the one table
// that readers, verify, mirror, install and the CLI consult instead of
// switching on kind names. Adding a kind is a row here plus the code that
// is really new for it (how pack builds it, how install places it).
type KindInfo struct {
	// Name is the kind as recorded in bundle.json and the dev.airlock.kind annotation.
	Name string
	// ArtifactType is the OCI artifactType of the kind's manifests; "" for
	// images (no artifact type), for charts (Helm identifies them by their
	// config media type, MediaTypeHelmConfig), and for SBOMs and
	// attachments, whose type is that of the document or upstream attachment.
	ArtifactType string
	// Target: the artifact names an install path (Artifact.Target) that
	// `airlock install` places its files at.
	Target bool
	// Mode: the artifact records a file mode (Artifact.Mode).
	Mode bool
	// Subject: the artifact may be attached to an image of the bundle
	// (Artifact.Subject and SubjectDigest).
	Subject bool
	// Placement is how mirror places it.
	Placement Placement
	// ImagePolicy: the policy's platform and SBOM requirements apply.
	ImagePolicy bool
	// Files: each layer of the artifact's manifest is one file with a path
	// (a model file, a file, an SBOM document); reports list their sha256.
	Files bool
	// describe names an artifact of this kind in messages.
	describe func(a Artifact) string
}

var kindTable = []KindInfo{
	{Name: KindImage, Placement: PlaceByRef, ImagePolicy: true,
		describe: func(a Artifact) string { return "image " + a.Ref }},
	{Name: KindModel, ArtifactType: ArtifactTypeModel, Target: true, Placement: PlaceModel, Files: true,
		describe: func(a Artifact) string { return "model " + a.Name }},
	{Name: KindFile, ArtifactType: ArtifactTypeFile, Target: true, Mode: true, Placement: PlaceNone, Files: true,
		describe: func(a Artifact) string { return "file " + a.Source }},
	{Name: KindDir, ArtifactType: ArtifactTypeDir, Target: true, Mode: true, Placement: PlaceNone, Files: true,
		describe: func(a Artifact) string { return "directory " + a.Source }},
	{Name: KindChart, Placement: PlaceChart,
		describe: func(a Artifact) string { return "chart " + a.Name + " " + a.Version }},
	{Name: KindSBOM, Subject: true, Placement: PlaceWithSubject, Files: true,
		describe: func(a Artifact) string { return "sbom " + a.Source }},
	{Name: KindAttachment, Subject: true, Placement: PlaceWithSubject,
		describe: func(a Artifact) string {
			what := a.Tag
			if what == "" {
				what = a.ArtifactType
			}
			return fmt.Sprintf("attachment %s of %s", what, a.Subject)
		}},
	{Name: KindTrustedRoot, ArtifactType: ArtifactTypeTrustedRoot, Placement: PlaceNone,
		describe: func(a Artifact) string { return "trusted root " + a.Source }},
}

// unknownKind is what KindOf returns for a kind the table lacks: nothing
// placed, installed or counted.
var unknownKind = KindInfo{describe: func(a Artifact) string { return a.Kind + " artifact" }}

// KindOf returns the table row of a kind and whether the kind is known.
func KindOf(kind string) (KindInfo, bool) {
	for _, k := range kindTable {
		if k.Name == kind {
			return k, true
		}
	}
	u := unknownKind
	u.Name = kind
	return u, false
}

// Kinds lists the known kind names in table order.
func Kinds() []string {
	out := make([]string, len(kindTable))
	for i, k := range kindTable {
		out[i] = k.Name
	}
	return out
}

// Info returns the kind table row of the artifact's kind.
func (a Artifact) Info() KindInfo {
	k, _ := KindOf(a.Kind)
	return k
}

// Describe names the artifact for messages: "image REF", "model NAME",
// "file SOURCE", "directory SOURCE", "chart NAME VERSION", "sbom SOURCE" or
// "attachment TAG of REF".
func (a Artifact) Describe() string { return a.Info().describe(a) }

// IsSBOM reports whether the artifact is an SBOM: one packed from a file,
// or an upstream attachment whose artifact type is an SPDX or CycloneDX
// document.
func (a Artifact) IsSBOM() bool {
	if a.Kind == KindSBOM {
		return true
	}
	t := a.ArtifactType
	return a.Kind == KindAttachment && (strings.Contains(t, "spdx") || strings.Contains(t, "cyclonedx"))
}
