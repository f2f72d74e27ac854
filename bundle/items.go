package bundle

import (
	"context"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/checked"
)

// LocalLayer is one file of a model, file or SBOM artifact, already hashed.
type LocalLayer struct {
	Descriptor
	// Path is the file's slash-separated path inside a model or directory,
	// or the file name of a file or SBOM artifact.
	Path string
	// Mode is the file's octal mode inside a directory artifact; "" elsewhere.
	Mode string
}

// NewModelItem builds a model artifact (a ModelPack manifest, docs/format.md
// §7) from its files, sorted by path, each typed by ModelLayerMediaType when
// its MediaType is empty. Open and Verified are left for the caller.
func NewModelItem(name, source, target string, files []LocalLayer) (*Item, error) {
	diffIDs := make([]string, len(files))
	for i := range files {
		if files[i].MediaType == "" {
			files[i].MediaType = ModelLayerMediaType(files[i].Path)
		}
		diffIDs[i] = files[i].Digest
	}
	cfg := modelConfig{Descriptor: modelDescriptor{Name: name}, Config: struct{}{}, ModelFS: modelFS{Type: "layers", DiffIDs: diffIDs}}
	cfgRaw, err := marshalNoEscape(cfg)
	if err != nil {
		return nil, err
	}
	cd := ocispec.Descriptor{MediaType: MediaTypeModelConfig, Digest: digestOf(checked.Digest(cfgRaw)), Size: int64(len(cfgRaw))}
	rec := Artifact{Kind: KindModel, Name: name, Source: source, Target: target}
	ann := map[string]string{AnnotationKind: KindModel, AnnotationTarget: target, AnnotationTitle: name}
	it, err := localItem(rec, ArtifactTypeModel, cd, cfgRaw, files, ann, nil)
	if err != nil {
		return nil, err
	}
	it.RefName = "models/" + name
	return it, nil
}

// NewFileItem builds a file artifact: one layer, installed at target with mode.
func NewFileItem(source, target, mode string, file LocalLayer) (*Item, error) {
	if file.MediaType == "" {
		file.MediaType = MediaTypeOctetStream
	}
	if file.Path == "" {
		file.Path = path.Base(target)
	}
	rec := Artifact{Kind: KindFile, Source: source, Target: target, Mode: mode}
	ann := map[string]string{AnnotationKind: KindFile, AnnotationTarget: target, AnnotationMode: mode}
	return localItem(rec, ArtifactTypeFile, emptyConfig(), emptyJSON, []LocalLayer{file}, ann, nil)
}

// NewTrustedRootItem builds a trusted root artifact: one layer, the
// Sigstore trusted_root.json read from source.
func NewTrustedRootItem(source string, file LocalLayer) (*Item, error) {
	file.MediaType = MediaTypeTrustedRoot
	if file.Path == "" {
		file.Path = path.Base(source)
	}
	rec := Artifact{Kind: KindTrustedRoot, Source: source}
	ann := map[string]string{AnnotationKind: KindTrustedRoot, AnnotationSource: source}
	return localItem(rec, ArtifactTypeTrustedRoot, emptyConfig(), emptyJSON, []LocalLayer{file}, ann, nil)
}

// SBOMSubject is the image an SBOM describes.
type SBOMSubject struct {
	Ref  string     // the image's reference in the release
	Root Descriptor // the image's root in the bundle
}

// NewSBOMItem builds an SBOM artifact whose single layer is the document
// (its MediaType the document's format); subject, when not nil, makes it a
// referrer of that image.
func NewSBOMItem(source string, summary *SBOMSummary, doc LocalLayer, subject *SBOMSubject) (*Item, error) {
	rec := Artifact{Kind: KindSBOM, Source: source, SBOM: summary}
	var sd *ocispec.Descriptor
	if subject != nil {
		rec.Subject, rec.SubjectDigest = subject.Ref, subject.Root.Digest
		sd = &ocispec.Descriptor{MediaType: subject.Root.MediaType, Digest: digestOf(subject.Root.Digest), Size: subject.Root.Size}
	}
	if doc.Path == "" {
		doc.Path = path.Base(source)
	}
	ann := map[string]string{AnnotationKind: KindSBOM}
	return localItem(rec, doc.MediaType, emptyConfig(), emptyJSON, []LocalLayer{doc}, ann, sd)
}

// ModelLayerMediaType classifies a model file by name into a ModelPack layer type.
func ModelLayerMediaType(rel string) string {
	base := strings.ToLower(path.Base(rel))
	ext := path.Ext(base)
	switch {
	case strings.HasPrefix(base, "readme") || strings.HasPrefix(base, "license") || strings.HasPrefix(base, "notice") || ext == ".md":
		return MediaTypeModelDoc
	case ext == ".py":
		return MediaTypeModelCode
	case ext == ".json" || ext == ".yaml" || ext == ".yml" || ext == ".txt" || base == "tokenizer.model":
		return MediaTypeModelWeightCf
	}
	return MediaTypeModelWeight
}

// localItem builds the OCI manifest of a model, file or SBOM artifact and
// walks it, so the item is checked exactly as a reader will check it.
func localItem(rec Artifact, artifactType string, config ocispec.Descriptor, configData []byte, layers []LocalLayer, annotations map[string]string, subject *ocispec.Descriptor) (*Item, error) {
	m := ocispec.Manifest{
		MediaType:    MediaTypeOCIManifest,
		ArtifactType: artifactType,
		Config:       config,
		Subject:      subject,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		var ann map[string]string
		if l.Path != "" {
			ann = map[string]string{AnnotationTitle: l.Path}
		}
		if rec.Kind == KindModel {
			ann[AnnotationFilepath] = l.Path
		}
		if l.Mode != "" {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[AnnotationMode] = l.Mode
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: digestOf(l.Digest), Size: l.Size, Annotations: ann})
	}
	raw, err := marshalNoEscape(m)
	if err != nil {
		return nil, err
	}
	root := Descriptor{MediaType: MediaTypeOCIManifest, Digest: checked.Digest(raw), Size: int64(len(raw))}
	content := memoryContent{root.Digest: raw, string(config.Digest): configData}
	g, err := Walk(context.Background(), root, raw, content, nil)
	if err != nil {
		return nil, err
	}
	return &Item{Record: rec, Graph: g}, nil
}

// memoryContent serves manifests and configs built in memory.
type memoryContent map[string][]byte

func (m memoryContent) Manifest(_ context.Context, d Descriptor) ([]byte, error) { return m.get(d) }
func (m memoryContent) Config(_ context.Context, d Descriptor) ([]byte, error)   { return m.get(d) }
func (m memoryContent) get(d Descriptor) ([]byte, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, malformed("%s is referenced but missing", d.Digest)
	}
	return b, nil
}

func emptyConfig() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: MediaTypeEmptyJSON, Digest: digestOf(checked.Digest(emptyJSON)), Size: int64(len(emptyJSON))}
}

// modelConfig is the ModelPack model configuration (application/vnd.cncf.model.config.v1+json).
type modelConfig struct {
	Descriptor modelDescriptor `json:"descriptor"`
	Config     struct{}        `json:"config"`
	ModelFS    modelFS         `json:"modelfs"`
}

type modelDescriptor struct {
	Name string `json:"name"`
}

type modelFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}
