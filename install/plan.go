package install

import (
	"io/fs"
	"sort"

	"github.com/airlock-dev/airlock/bundle"
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

// makePlan lists the files of every file and model artifact. The bundle
// reader derived them from the verified manifests and checked every path
// (safe, inside the release directory, unique after case folding and
// Unicode normalisation, no path inside another) and every mode, so verify
// refuses whatever install would; install only takes the list.
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
	for _, hf := range h.Files {
		mode, err := parseMode(hf.Mode)
		if err != nil {
			return nil, &TargetError{Artifact: hf.What, Target: hf.Path, Reason: err.Error()}
		}
		f := planFile{artifact: hf.What, target: hf.Path, digest: hf.Digest, size: hf.Size, mode: mode}
		if !inBody[hf.Digest] {
			data, ok := h.Blobs[hf.Digest]
			if !ok || int64(len(data)) != hf.Size {
				return nil, &TargetError{Artifact: hf.What, Target: hf.Path, Reason: "layer " + hf.Digest + " is neither in the body nor in the head"}
			}
			f.head = data
		}
		p.files = append(p.files, f)
		p.bytes += hf.Size
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
// is a directory of another. The bundle reader refuses both already (and
// more); this keeps the install's own invariant local.
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
