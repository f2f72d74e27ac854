package bundle

import "time"

// Inspection is what `airlock inspect` reports, read from the head alone.
// Its JSON form is a stable, documented schema (docs/format.md, "inspect
// --json"); fields are only ever added.
type Inspection struct {
	SchemaVersion  int          `json:"schemaVersion"` // 1
	Format         FormatMarker `json:"format"`
	Name           string       `json:"name"`
	Version        string       `json:"version"`
	Created        time.Time    `json:"created"`
	Root           Descriptor   `json:"root"`
	ManifestDigest string       `json:"manifestDigest"`
	Artifacts      []Artifact   `json:"artifacts"`
	Totals         Totals       `json:"totals"`
	// Signatures lists who signed the bundle; empty when unsigned.
	Signatures []InspectSignature `json:"signatures"`
	Head       InspectHead        `json:"head"`
}

// InspectSignature describes one signature on the bundle.
type InspectSignature struct {
	KeyID string `json:"keyid"`
}

// InspectHead describes the metadata frame.
type InspectHead struct {
	CompressedBytes int64 `json:"compressedBytes"`
	Entries         int   `json:"entries"`
	Signed          bool  `json:"signed"`
}

// Inspect summarizes a head.
func Inspect(h *Head) *Inspection {
	arts := h.Manifest.Artifacts
	if arts == nil {
		arts = []Artifact{}
	}
	return &Inspection{
		SchemaVersion:  1,
		Format:         h.Marker,
		Name:           h.Manifest.Name,
		Version:        h.Manifest.Version,
		Created:        h.Manifest.Created,
		Root:           h.Manifest.Root,
		ManifestDigest: h.ManifestDigest,
		Artifacts:      arts,
		Totals:         h.Manifest.Totals,
		Signatures:     []InspectSignature{},
		Head:           InspectHead{CompressedBytes: h.HeadSize, Entries: h.Entries, Signed: h.Signatures != nil},
	}
}
