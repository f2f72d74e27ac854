package bundle

import (
	"encoding/json"
	"strings"

	"github.com/airlock-dev/airlock/internal/checked"
)

// ContentFile is one file an artifact carries (a model file, a file, an SBOM
// document) with the digest a vendor publishes for it: the sha256 that
// `sha256sum` prints. It is the layer of the artifact's OCI manifest that
// holds the file, so the digest is also the blob's name in the bundle.
type ContentFile struct {
	// Artifact is the index of the artifact in the bundle manifest.
	Artifact int `json:"artifact"`
	// Kind is the artifact's kind: model, file or sbom.
	Kind string `json:"kind"`
	// Name names the artifact as messages do: "model NAME", "file SOURCE".
	Name string `json:"name"`
	// ManifestDigest is the artifact's OCI manifest digest.
	ManifestDigest string `json:"manifestDigest"`
	// Path is the file's path inside the artifact: the model's relative file
	// path, or the file name of a file or SBOM artifact.
	Path string `json:"path"`
	// Target is where `airlock install` places the file, relative to the
	// release directory; empty for SBOMs.
	Target string `json:"target,omitempty"`
	// Size is the file's size in bytes.
	Size int64 `json:"size"`
	// Digest is "sha256:<hex>", SHA256 the bare hex.
	Digest string `json:"digest"`
	SHA256 string `json:"sha256"`
	// MediaType is the layer media type.
	MediaType string `json:"mediaType"`
}

// ContentFiles lists, in artifact order and then layer order, every file of
// the artifacts whose kind carries files (KindInfo.Files), read from the
// artifacts' manifests in the head. The head's manifests were checked
// against their digests when it was read; a manifest that does not parse,
// or a layer with an invalid digest, is left out (the reader refuses such a
// bundle before this is reached).
func (h *Head) ContentFiles() []ContentFile {
	out := []ContentFile{}
	for i, a := range h.Manifest.Artifacts {
		if !a.Info().Files || a.MediaType != MediaTypeOCIManifest {
			continue
		}
		raw, ok := h.Blobs[a.Digest]
		if !ok {
			continue
		}
		var m struct {
			Layers []artifactLayer `json:"layers"`
		}
		if i < len(h.roots) && h.roots[i] != nil {
			m.Layers = h.roots[i].Layers // decoded once by the reader (rootmanifest.go)
		} else if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		for _, l := range m.Layers {
			if !checked.ValidDigest(l.Digest) || l.Size < 0 {
				continue
			}
			p := l.Annotations[AnnotationFilepath]
			if p == "" {
				p = l.Annotations[AnnotationTitle]
			}
			cf := ContentFile{
				Artifact: i, Kind: a.Kind, Name: a.Describe(), ManifestDigest: a.Digest, Path: p,
				Size: l.Size, Digest: l.Digest, SHA256: strings.TrimPrefix(l.Digest, "sha256:"), MediaType: l.MediaType,
			}
			switch a.Kind {
			case KindModel:
				cf.Target = a.Target + "/" + p
			case KindFile:
				cf.Target = a.Target
			}
			out = append(out, cf)
		}
	}
	return out
}
