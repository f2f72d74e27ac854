package bundle

// subjectIndex holds, for checkSubject, the images (ref and manifest
// digest) and the charts from a registry (source and manifest digest) of a
// bundle, so that finding an SBOM's or an attachment's subject is one map
// look-up instead of a pass over every artifact (which made reading a head
// with many signatures quadratic).
type subjectIndex struct {
	images map[subjectKey]bool
	charts map[subjectKey]bool
}

type subjectKey struct{ name, digest string }

func newSubjectIndex(all []Artifact) subjectIndex {
	s := subjectIndex{images: map[subjectKey]bool{}, charts: map[subjectKey]bool{}}
	for _, o := range all {
		switch {
		case o.Kind == KindImage:
			s.images[subjectKey{o.Ref, o.Digest}] = true
		case o.Kind == KindChart && o.Source != "":
			s.charts[subjectKey{o.Source, o.Digest}] = true
		}
	}
	return s
}

// has reports whether a's subject is an image of the bundle (by ref and
// digest) or, for an attachment, a chart it is attached to: a cosign
// signature of a chart from an OCI registry names the chart's source as
// written and its manifest digest.
func (s subjectIndex) has(a Artifact) bool {
	k := subjectKey{a.Subject, a.SubjectDigest}
	return s.images[k] || a.Kind == KindAttachment && s.charts[k]
}
