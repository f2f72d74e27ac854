package bundle

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/internal/safepath"
	"github.com/airlock-dev/airlock/internal/sbom"
)

// bundle.json repeats facts about each artifact (platforms, artifact type,
// install paths, modes, subjects) that consumers and the policy act on. The
// reader derives each of them from the verified content and refuses a
// bundle whose claim disagrees: a signed claim alone never satisfies a
// policy, and verify, mirror and install all refuse the same bundles with
// the same message. docs/format.md section 13 lists the claims.

// recordModeRE is the mode bundle.json records: exactly four octal digits,
// permission bits only (airlock.yaml also accepts three; pack records four).
var recordModeRE = regexp.MustCompile(`^0[0-7]{3}$`)

// cosignTagRE is the tag a cosign attachment is found under.
var cosignTagRE = regexp.MustCompile(`^sha256-([a-f0-9]{64})\.(sig|att|sbom)$`)

// InstallFile is one file a file or model artifact places under a release
// directory, derived from the artifact's verified manifest: the path of a
// file artifact is its target, the path of a model file is the model's
// target joined with the layer's org.cncf.model.filepath annotation.
type InstallFile struct {
	// Artifact is the index of the artifact in Manifest.Artifacts.
	Artifact int
	// What names the artifact for messages: "file etc/app.yaml", "model m".
	What string
	// Path is relative to the release directory, slash-separated, checked
	// with the same rule as every artifact target.
	Path string
	// Descriptor is the layer holding the file's bytes.
	Descriptor
	// Mode is the recorded permission, four octal digits ("0644" for models).
	Mode string
}

// artifactManifest is the part of an artifact's root manifest the claims
// are checked against.
type artifactManifest struct {
	ArtifactType string          `json:"artifactType"`
	Config       *ociDescriptor  `json:"config"`
	Subject      *ociDescriptor  `json:"subject"`
	Layers       []artifactLayer `json:"layers"`
}

type artifactLayer struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

// claimError is a claim of bundle.json that its content contradicts.
func claimError(format string, args ...any) error {
	return malformed("bundle.json claims "+format, args...)
}

// checkClaims compares what artifact a claims with its content tree g.
// refName is the org.opencontainers.image.ref.name of its index.json entry.
func checkClaims(a Artifact, g *Graph, refName string) error {
	if err := checkNames(a, refName); err != nil {
		return err
	}
	if a.Kind == KindImage {
		if !slices.Equal(a.Platforms, g.Platforms) {
			return claimError("platforms [%s], but its index and configs offer [%s]", strings.Join(a.Platforms, ", "), strings.Join(g.Platforms, ", "))
		}
		if a.ArtifactType != "" || a.Tag != "" || a.SBOM != nil {
			return claimError("an artifact type, tag or SBOM summary for an image")
		}
		return nil
	}
	if len(a.Platforms) > 0 || a.Filtered {
		return claimError("platforms for a %s artifact (only images have them)", a.Kind)
	}
	switch {
	case a.Kind == KindAttachment && !IsManifest(a.MediaType):
		return malformed("an attachment must be a single manifest, not %q", a.MediaType)
	case a.Kind != KindAttachment && a.MediaType != MediaTypeOCIManifest:
		// pack writes models, files and SBOMs as OCI manifests only.
		return malformed("a %s artifact must be a single OCI manifest (%s), not %q", a.Kind, MediaTypeOCIManifest, a.MediaType)
	}
	var m artifactManifest
	if r := g.decodedRoot(); r != nil {
		m = r.artifactManifest
	} else if err := json.Unmarshal(g.Manifests[0].Data, &m); err != nil {
		return malformed("%v", err)
	}
	switch a.Kind {
	case KindModel, KindFile:
		want := map[string]string{KindModel: ArtifactTypeModel, KindFile: ArtifactTypeFile}[a.Kind]
		if m.ArtifactType != want || (a.ArtifactType != "" && a.ArtifactType != want) {
			return claimError("kind %s, but its manifest's artifactType is %q (want %q)", a.Kind, clip(m.ArtifactType), want)
		}
	case KindSBOM:
		mt := sbom.Format(a.SBOM.Format).MediaType()
		if mt == "" || m.ArtifactType != mt || len(m.Layers) != 1 || m.Layers[0].MediaType != mt || (a.ArtifactType != "" && a.ArtifactType != mt) {
			return claimError("an SBOM in %q, but its manifest has artifactType %q and %d layer(s); an SBOM manifest has artifactType and one layer of media type %q", clip(a.SBOM.Format), clip(m.ArtifactType), len(m.Layers), mt)
		}
	case KindAttachment:
		actual := m.ArtifactType
		if actual == "" && m.Config != nil {
			actual = m.Config.MediaType
		}
		if a.ArtifactType != "" && a.ArtifactType != actual {
			return claimError("artifactType %q, but its manifest says %q", clip(a.ArtifactType), clip(actual))
		}
		if m.Subject != nil && m.Subject.Digest != a.SubjectDigest {
			return claimError("subjectDigest %s, but its manifest's subject is %s", a.SubjectDigest, clip(m.Subject.Digest))
		}
		if a.Tag == "" {
			if m.Subject == nil {
				return malformed("a referrer attachment without a subject in its manifest (and no cosign tag)")
			}
		} else if t := cosignTagRE.FindStringSubmatch(a.Tag); t == nil || "sha256:"+t[1] != a.SubjectDigest {
			return claimError("tag %q for an attachment of %s; a cosign tag is sha256-<hex of the subject>.sig, .att or .sbom", clip(a.Tag), a.SubjectDigest)
		}
	}
	return nil
}

// installFiles lists the files artifact i (a file, a model or a directory) installs,
// from its root manifest, and checks each path with the rule every target
// obeys (internal/safepath). Install places exactly these files.
func installFiles(i int, a Artifact, g *Graph) ([]InstallFile, error) {
	root := g.Manifests[0].Data
	what := a.Kind + " " + a.Target
	switch a.Kind {
	case KindModel:
		what = "model " + a.Name
	case KindDir:
		what = "directory " + a.Target
		files, err := DirFiles(a, root)
		if err != nil {
			return nil, err
		}
		out := make([]InstallFile, 0, len(files))
		for _, f := range files {
			p := a.Target + "/" + f.Path
			if err := safepath.Check(p); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, f.Path, err)
			}
			out = append(out, InstallFile{Artifact: i, What: what, Path: p, Descriptor: f.Descriptor, Mode: f.Mode})
		}
		return out, nil
	}
	var m artifactManifest
	if r := g.decodedRoot(); r != nil {
		m = r.artifactManifest
	} else if err := json.Unmarshal(root, &m); err != nil {
		return nil, malformed("%v", err)
	}
	if a.Kind == KindFile {
		if len(m.Layers) != 1 {
			return nil, malformed("a file artifact has exactly one layer, this one has %d", len(m.Layers))
		}
		l := m.Layers[0]
		return []InstallFile{{Artifact: i, What: what, Path: a.Target, Descriptor: Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, Mode: a.Mode}}, nil
	}
	if len(m.Layers) == 0 {
		return nil, malformed("the model has no files")
	}
	out := make([]InstallFile, 0, len(m.Layers))
	for _, l := range m.Layers {
		rel, ok := l.Annotations[AnnotationFilepath]
		if !ok {
			return nil, malformed("layer %s has no %s annotation", l.Digest, AnnotationFilepath)
		}
		if err := safepath.Check(rel); err != nil {
			return nil, fmt.Errorf("%w: layer %s: %s %w", ErrMalformed, l.Digest, AnnotationFilepath, err)
		}
		p := a.Target + "/" + rel
		if err := safepath.Check(p); err != nil {
			return nil, fmt.Errorf("%w: layer %s: %w", ErrMalformed, l.Digest, err)
		}
		out = append(out, InstallFile{Artifact: i, What: what, Path: p, Descriptor: Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, Mode: "0644"})
	}
	return out, nil
}

// checkNames refuses the names a consumer builds registry paths from when no
// registry could accept them: an image ref that is not a reference, a local
// image whose layout name is not one, a model name outside the airlock.yaml
// grammar. (Where mirror places them also depends on the target prefix,
// which mirror checks.)
func checkNames(a Artifact, refName string) error {
	switch a.Kind {
	case KindImage:
		if strings.HasPrefix(a.Ref, "oci:") || strings.HasPrefix(a.Ref, "docker-archive:") {
			if _, err := name.ParseReference(refName); err != nil {
				return malformed("the layout name %q of a local image is not an image reference: %v", clip(refName), err)
			}
		} else if _, err := name.ParseReference(a.Ref); err != nil {
			return malformed("ref %q is not an image reference: %v", clip(a.Ref), err)
		}
	case KindModel:
		if !ValidName(a.Name) {
			return malformed("model name %q: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128", clip(a.Name))
		}
	}
	return nil
}
