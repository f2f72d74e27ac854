package install

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
)

// planFile is one file to install.
type planFile struct {
	artifact string // for messages: "file etc/app.yaml", "model m"
	target   string // relative to the release directory
	digest   string
	size     int64
	mode     fs.FileMode
	head     []byte // the verified bytes when the blob is stored in the head
}

// plan is everything a bundle installs, worked out from the verified head
// before a body byte is read.
type plan struct {
	name, version string
	files         []planFile       // sorted by target
	byDigest      map[string][]int // body digest -> files with that content
	bytes         int64            // sum of file sizes (the signed sizes)
}

// makePlan lists the files of every file and model artifact and checks
// every install path: relative, clean, inside the release directory, and
// no path equal to or inside another. The bundle reader already checks
// artifact targets; model file paths come from layer annotations and are
// checked here.
func makePlan(h *bundle.Head) (*plan, error) {
	m := &h.Manifest
	if !validName(m.Name) || !validVersion(m.Version) {
		return nil, &TargetError{Artifact: "bundle", Target: m.Name + "/" + m.Version, Reason: "name or version cannot name a release directory"}
	}
	p := &plan{name: m.Name, version: m.Version, byDigest: map[string][]int{}}
	inBody := make(map[string]bool, len(h.Body))
	for _, d := range h.Body {
		inBody[d.Digest] = true
	}
	for i, a := range m.Artifacts {
		if a.Kind != bundle.KindFile && a.Kind != bundle.KindModel {
			continue
		}
		what := a.Kind + " " + a.Target
		if a.Kind == bundle.KindModel {
			what = "model " + a.Name
		}
		if err := safepath.Check(a.Target); err != nil {
			return nil, &TargetError{Artifact: what, Target: a.Target, Reason: err.Error()}
		}
		raw, ok := h.Blobs[a.Digest]
		if !ok || a.MediaType != bundle.MediaTypeOCIManifest {
			return nil, &TargetError{Artifact: what, Target: a.Target, Reason: "the artifact is not a single OCI manifest"}
		}
		var man struct {
			Layers []struct {
				Digest      string            `json:"digest"`
				Size        int64             `json:"size"`
				Annotations map[string]string `json:"annotations"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(raw, &man); err != nil {
			return nil, &TargetError{Artifact: what, Target: a.Target, Reason: fmt.Sprintf("artifact %d manifest: %v", i, err)}
		}
		if a.Kind == bundle.KindFile && len(man.Layers) != 1 {
			return nil, &TargetError{Artifact: what, Target: a.Target, Reason: fmt.Sprintf("a file artifact has exactly one layer, this one has %d", len(man.Layers))}
		}
		if len(man.Layers) == 0 {
			return nil, &TargetError{Artifact: what, Target: a.Target, Reason: "the model has no files"}
		}
		mode := fs.FileMode(0o644)
		if a.Kind == bundle.KindFile {
			v, err := strconv.ParseUint(a.Mode, 8, 32)
			if err != nil || v > 0o777 {
				return nil, &TargetError{Artifact: what, Target: a.Target, Reason: fmt.Sprintf("mode %q is not an octal permission without setuid, setgid or sticky bits", a.Mode)}
			}
			mode = fs.FileMode(v)
		}
		for _, l := range man.Layers {
			if !checked.ValidDigest(l.Digest) || l.Size < 0 {
				return nil, &TargetError{Artifact: what, Target: a.Target, Reason: "a layer has an invalid digest or size"}
			}
			target := a.Target
			if a.Kind == bundle.KindModel {
				rel, ok := l.Annotations[bundle.AnnotationFilepath]
				if !ok {
					return nil, &TargetError{Artifact: what, Target: a.Target, Reason: "layer " + l.Digest + " has no " + bundle.AnnotationFilepath + " annotation"}
				}
				if err := safepath.Check(rel); err != nil {
					return nil, &TargetError{Artifact: what, Target: rel, Reason: err.Error()}
				}
				target = a.Target + "/" + rel
				if err := safepath.Check(target); err != nil {
					return nil, &TargetError{Artifact: what, Target: target, Reason: err.Error()}
				}
			}
			f := planFile{artifact: what, target: target, digest: l.Digest, size: l.Size, mode: mode}
			if !inBody[l.Digest] {
				data, ok := h.Blobs[l.Digest]
				if !ok || int64(len(data)) != l.Size {
					return nil, &TargetError{Artifact: what, Target: target, Reason: "layer " + l.Digest + " is neither in the body nor in the head"}
				}
				f.head = data
			}
			p.files = append(p.files, f)
			p.bytes += l.Size
		}
	}
	sort.Slice(p.files, func(i, j int) bool { return p.files[i].target < p.files[j].target })
	if err := checkOverlaps(p.files); err != nil {
		return nil, err
	}
	for i, f := range p.files {
		if f.head == nil {
			p.byDigest[f.digest] = append(p.byDigest[f.digest], i)
		}
	}
	return p, nil
}

// checkOverlaps refuses two files with the same path and a file whose path
// is a directory of another (a target that is a file in one artifact and a
// directory in another).
func checkOverlaps(files []planFile) error {
	owner := make(map[string]string, len(files))
	for _, f := range files {
		if prev, dup := owner[f.target]; dup {
			return &TargetError{Artifact: f.artifact, Target: f.target, Reason: "also installed by " + prev}
		}
		owner[f.target] = f.artifact
	}
	for _, f := range files {
		for d := parentDir(f.target); d != ""; d = parentDir(d) {
			if prev, ok := owner[d]; ok {
				return &TargetError{Artifact: f.artifact, Target: f.target, Reason: "lies inside " + d + ", a file installed by " + prev}
			}
		}
	}
	return nil
}

// stateFiles is the plan's file list as recorded in the state.
func (p *plan) stateFiles() []File {
	out := make([]File, len(p.files))
	for i, f := range p.files {
		out[i] = File{Target: f.target, Digest: f.digest, Size: f.size, Mode: formatMode(f.mode)}
	}
	return out
}
