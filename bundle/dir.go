package bundle

import (
	"encoding/json"
	"fmt"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
)

// ArtifactTypeDir is the artifactType of a directory artifact's manifest.
const ArtifactTypeDir = "application/vnd.airlock.directory.v1"

// DirFile is one regular file of a directory artifact.
type DirFile struct {
	// Path is the file's slash-separated path relative to the directory's
	// target (the layer's org.opencontainers.image.title).
	Path string `json:"path"`
	// Mode is the file's four-digit octal mode (the layer's dev.airlock.mode).
	Mode string `json:"mode"`
	Descriptor
}

// NewDirItem builds a directory artifact (docs/format.md §9, Directories):
// one raw layer per regular file, sorted by path, each carrying its relative
// path and mode in annotations. mode is the one mode airlock.yaml gave for
// every file, "" when each file keeps its own. Open and Verified are left
// for the caller.
func NewDirItem(source, target, mode string, files []LocalLayer) (*Item, error) {
	for i := range files {
		if files[i].MediaType == "" {
			files[i].MediaType = MediaTypeOctetStream
		}
	}
	rec := Artifact{Kind: KindDir, Source: source, Target: target, Mode: mode}
	ann := map[string]string{AnnotationKind: KindDir, AnnotationTarget: target}
	if mode != "" {
		ann[AnnotationMode] = mode
	}
	it, err := localItem(rec, ArtifactTypeDir, emptyConfig(), emptyJSON, files, ann, nil)
	if err != nil {
		return nil, err
	}
	if _, err := DirFiles(it.Record, it.Graph.Manifests[0].Data); err != nil {
		return nil, err
	}
	return it, nil
}

// DirFiles returns the files of directory artifact a from the exact bytes
// of its manifest, checking every rule a reader enforces for the kind: the
// artifact type, at least one layer, each layer's path (a safe relative
// path, strictly ascending, none inside another) and mode (octal, no
// setuid, setgid or sticky bit, equal to the artifact's mode when it has
// one). The returned paths are relative to a.Target.
func DirFiles(a Artifact, raw []byte) ([]DirFile, error) {
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Size        int64             `json:"size"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, malformed("directory manifest: %v", err)
	}
	if m.ArtifactType != ArtifactTypeDir {
		return nil, malformed("directory manifest: artifactType %q, want %s", clip(m.ArtifactType), ArtifactTypeDir)
	}
	if len(m.Layers) == 0 {
		return nil, malformed("directory holds no files")
	}
	if len(m.Layers) > MaxFanOut {
		return nil, overLimit("directory: %d files exceed %d", len(m.Layers), MaxFanOut)
	}
	out := make([]DirFile, 0, len(m.Layers))
	seen := make(map[string]bool, len(m.Layers))
	for i, l := range m.Layers {
		p, mode := l.Annotations[AnnotationTitle], l.Annotations[AnnotationMode]
		if err := safepath.Check(p); err != nil {
			return nil, fmt.Errorf("%w: directory file %d: %w", ErrMalformed, i, err)
		}
		if err := safepath.Check(a.Target + "/" + p); err != nil {
			return nil, fmt.Errorf("%w: directory file %d: %w", ErrMalformed, i, err)
		}
		if i > 0 && p <= out[i-1].Path {
			return nil, malformed("directory file %q: paths must be strictly ascending (after %q)", clip(p), clip(out[i-1].Path))
		}
		if !ValidMode(mode) || (a.Mode != "" && mode != a.Mode) {
			return nil, malformed("directory file %q: mode %q", clip(p), clip(mode))
		}
		if !checked.ValidDigest(l.Digest) || l.Size < 0 {
			return nil, malformed("directory file %q: bad digest or size", clip(p))
		}
		seen[p] = true
		out = append(out, DirFile{Path: p, Mode: mode, Descriptor: Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}})
	}
	// No file may lie inside another (a file "a" and a file "a/b").
	for _, f := range out {
		for d := parentOf(f.Path); d != ""; d = parentOf(d) {
			if seen[d] {
				return nil, malformed("directory file %q lies inside the file %q", clip(f.Path), clip(d))
			}
		}
	}
	return out, nil
}

// DirSummary counts the files and bytes of a directory artifact.
type DirSummary struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// SummarizeDir counts files and bytes (each file counted, duplicates too).
func SummarizeDir(files []DirFile) DirSummary {
	s := DirSummary{Files: len(files)}
	for _, f := range files {
		s.Bytes += f.Size
	}
	return s
}

func parentOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// checkDir is the reader's check of a directory artifact's manifest.
func checkDir(a Artifact, raw []byte) error {
	_, err := DirFiles(a, raw)
	return err
}
