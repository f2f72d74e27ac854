package bundle

import (
	"encoding/json"
	"regexp"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Helm's own media types for charts stored in OCI registries
// (helm.sh/helm/v4/pkg/registry). A chart artifact is an OCI image manifest
// whose config has MediaTypeHelmConfig, with one MediaTypeHelmChart layer
// and at most one MediaTypeHelmProvenance layer.
const (
	MediaTypeHelmConfig     = "application/vnd.cncf.helm.config.v1+json"
	MediaTypeHelmChart      = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	MediaTypeHelmProvenance = "application/vnd.cncf.helm.chart.provenance.v1.prov"
)

// chartNameRE is a chart name that is also one path component of an OCI
// repository name (charts/NAME).
var chartNameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ValidChartName reports whether s can name a chart airlock carries: a
// lowercase OCI repository path component, at most MaxNameLength bytes.
func ValidChartName(s string) bool { return len(s) <= MaxNameLength && chartNameRE.MatchString(s) }

// ChartTag is the OCI tag of a chart version: the version with "+" written
// "_", as Helm does (OCI tags may not contain "+").
func ChartTag(version string) string { return strings.ReplaceAll(version, "+", "_") }

// ChartRefName is a chart's org.opencontainers.image.ref.name in the layout
// and its place under a mirror: charts/NAME:TAG.
func ChartRefName(name, version string) string { return "charts/" + name + ":" + ChartTag(version) }

// NewChartItem builds a chart artifact the way `helm push` lays one out:
// config (Helm's Chart.yaml metadata as JSON), the chart archive layer and,
// when prov is not nil, the provenance layer, with the manifest annotations
// given. rec names the chart (Name, Version, Source, Resolved). Open and
// Verified are left for the caller.
func NewChartItem(rec Artifact, config []byte, chart LocalLayer, prov *LocalLayer, annotations map[string]string) (*Item, error) {
	rec.Kind = KindChart
	chart.MediaType, chart.Path = MediaTypeHelmChart, ""
	layers := []LocalLayer{chart}
	if prov != nil {
		p := *prov
		p.MediaType, p.Path = MediaTypeHelmProvenance, ""
		layers = append(layers, p)
	}
	cd := ocispec.Descriptor{MediaType: MediaTypeHelmConfig, Digest: digestOf(checked.Digest(config)), Size: int64(len(config))}
	it, err := localItem(rec, "", cd, config, layers, annotations, nil)
	if err != nil {
		return nil, err
	}
	if _, err := ChartContent(rec, it.Graph.Manifests[0].Data, config); err != nil {
		return nil, err
	}
	it.RefName = ChartRefName(rec.Name, rec.Version)
	return it, nil
}

// ChartLayers are the layers of a chart artifact.
type ChartLayers struct {
	Chart      Descriptor
	Provenance *Descriptor // nil when the chart carries none
}

// ChartContent checks a chart artifact from the exact bytes of its manifest
// and config, as a reader does: a valid chart name and version in the
// record; an OCI image manifest whose config has Helm's config media type
// and names the same chart and version; one chart archive layer and at most
// one provenance layer, nothing else.
func ChartContent(a Artifact, manifest, config []byte) (*ChartLayers, error) {
	if !ValidChartName(a.Name) {
		return nil, malformed("chart name %q is not a lowercase OCI repository name component", clip(a.Name))
	}
	if !ValidVersion(a.Version) {
		return nil, malformed("chart version %q is not a semantic version", clip(a.Version))
	}
	var m struct {
		MediaType string       `json:"mediaType"`
		Config    Descriptor   `json:"config"`
		Layers    []Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, malformed("chart manifest: %v", err)
	}
	if a.MediaType != "" && a.MediaType != MediaTypeOCIManifest {
		return nil, malformed("chart: root is %s, not an OCI image manifest", clip(a.MediaType))
	}
	if m.Config.MediaType != MediaTypeHelmConfig {
		return nil, malformed("chart: config media type %q, want %s", clip(m.Config.MediaType), MediaTypeHelmConfig)
	}
	out := &ChartLayers{}
	charts := 0
	for _, l := range m.Layers {
		switch l.MediaType {
		case MediaTypeHelmChart:
			charts++
			out.Chart = l
		case MediaTypeHelmProvenance:
			if out.Provenance != nil {
				return nil, malformed("chart: more than one provenance layer")
			}
			d := l
			out.Provenance = &d
		default:
			return nil, malformed("chart: layer media type %q is not a Helm chart or provenance", clip(l.MediaType))
		}
	}
	if charts != 1 {
		return nil, malformed("chart: %d chart archive layers, want exactly 1", charts)
	}
	if err := strictjson.Check(config); err != nil {
		return nil, malformed("chart config: %v", err)
	}
	var c struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, malformed("chart config: %v", err)
	}
	if c.Name != a.Name || c.Version != a.Version {
		return nil, malformed("chart config names %q %q, the record %q %q", clip(c.Name), clip(c.Version), a.Name, a.Version)
	}
	return out, nil
}
