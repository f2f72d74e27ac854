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
	// Files lists every file of the model, file and SBOM artifacts with its
	// path, size and sha256 (see ContentFile).
	Files  []ContentFile `json:"files"`
	Totals Totals        `json:"totals"`
	// Statement is what the signatures cover.
	Statement InspectStatement `json:"statement"`
	// Signatures lists who signed the bundle; empty when unsigned. The
	// signatures are not checked here: `airlock verify` does that.
	Signatures []InspectSignature `json:"signatures"`
	Head       InspectHead        `json:"head"`
	// Directories describes each directory artifact's tree; omitted when
	// the bundle carries none.
	Directories []InspectDir `json:"directories,omitempty"`
	// Body describes the frames of a format v2 body and its volumes;
	// omitted for version 1.
	Body *InspectBody `json:"body,omitempty"`
}

// InspectBody describes a v2 body: its frames and, for a volume set, each
// volume's body bytes and sha256 (docs/format.md §18).
type InspectBody struct {
	Frames           int            `json:"frames"`
	FrameSize        int64          `json:"frameSize"`
	CompressedSize   int64          `json:"compressedSize"`
	UncompressedSize int64          `json:"uncompressedSize"`
	Volumes          []VolumeRecord `json:"volumes,omitempty"`
}

// InspectStatement shows the signed statement's fields.
type InspectStatement struct {
	PredicateType string    `json:"predicateType"`
	Sequence      uint64    `json:"sequence"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires"`
	Channel       string    `json:"channel,omitempty"`
}

// InspectSignature describes one signature on the bundle.
type InspectSignature struct {
	KeyID string `json:"keyid"`
	// Name is the key's name in a policy, when one was given.
	Name string `json:"name,omitempty"`
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
	sigs := []InspectSignature{}
	for _, sg := range h.Envelope.Signatures {
		sigs = append(sigs, InspectSignature{KeyID: sg.KeyID})
	}
	p := h.Statement.Predicate
	return &Inspection{
		Statement:      InspectStatement{PredicateType: h.Statement.PredicateType, Sequence: p.Sequence, Created: p.Created, Expires: p.Expires, Channel: p.Channel},
		SchemaVersion:  1,
		Format:         h.Marker,
		Name:           h.Manifest.Name,
		Version:        h.Manifest.Version,
		Created:        h.Manifest.Created,
		Root:           h.Manifest.Root,
		ManifestDigest: h.ManifestDigest,
		Artifacts:      arts,
		Files:          h.ContentFiles(),
		Totals:         h.Manifest.Totals,
		Signatures:     sigs,
		Head:           InspectHead{CompressedBytes: h.HeadSize, Entries: h.Entries, Signed: len(sigs) > 0},
		Directories:    InspectDirs(h, false),
		Body:           inspectBody(h),
	}
}

func inspectBody(h *Head) *InspectBody {
	if h.Frames == nil {
		return nil
	}
	f := h.Frames
	return &InspectBody{Frames: len(f.Frames), FrameSize: f.FrameSize, CompressedSize: f.CompressedSize, UncompressedSize: f.UncompressedSize, Volumes: f.Volumes}
}
