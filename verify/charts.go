package verify

import (
	"strings"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
)

// ArtifactTypeCosignSignature is the artifact type of a cosign signature
// stored as an OCI 1.1 referrer.
const artifactTypeCosignSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"

// chartFacts lists every Helm chart with whether it carries a provenance
// layer (from its manifest in the head) and a cosign signature (an
// attachment of the chart: a sha256-<hex>.sig tag or a signature referrer).
func chartFacts(h *bundle.Head) []policy.ChartFacts {
	signed := map[string]bool{} // chart source + digest
	for _, a := range h.Manifest.Artifacts {
		if a.Kind == bundle.KindAttachment && (strings.HasSuffix(a.Tag, ".sig") || a.ArtifactType == artifactTypeCosignSignature) {
			signed[a.Subject+"@"+a.SubjectDigest] = true
		}
	}
	var out []policy.ChartFacts
	for i, a := range h.Manifest.Artifacts {
		if a.Kind != bundle.KindChart {
			continue
		}
		f := policy.ChartFacts{Name: a.Name, Version: a.Version, HasSignature: signed[a.Source+"@"+a.Digest]}
		if c, err := h.Content(i); err == nil && len(c.Configs) == 1 {
			if l, err := bundle.ChartContent(a, c.Manifests[0].Data, c.Configs[0].Data); err == nil {
				f.HasProvenance = l.Provenance != nil
			}
		}
		out = append(out, f)
	}
	return out
}
