package bundle

// InspectDir describes the tree of one directory artifact in `airlock
// inspect`: how many files and bytes, and each file when asked.
type InspectDir struct {
	// Artifact is the index of the directory in Artifacts.
	Artifact int    `json:"artifact"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	// Files and Bytes count the regular files and the sum of their sizes
	// (a file whose content another file shares is counted too).
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// List holds every file, in path order; only with `inspect --files`.
	List []DirFile `json:"list,omitempty"`
}

// InspectDirs lists the directory artifacts of a head; withFiles adds
// each file.
func InspectDirs(h *Head, withFiles bool) []InspectDir {
	var out []InspectDir
	for i, a := range h.Manifest.Artifacts {
		if a.Kind != KindDir {
			continue
		}
		files, err := DirFiles(a, h.Blobs[a.Digest])
		if err != nil {
			continue // the reader refused such a head already
		}
		s := SummarizeDir(files)
		d := InspectDir{Artifact: i, Source: a.Source, Target: a.Target, Files: s.Files, Bytes: s.Bytes}
		if withFiles {
			d.List = files
		}
		out = append(out, d)
	}
	return out
}
