package pack

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
)

// ChartSpec names one Helm chart to carry. Exactly one of Source and Repo
// is set.
type ChartSpec struct {
	// Source is "oci://HOST/REPO/NAME:VERSION" (or @sha256:... ) for a chart
	// in an OCI registry, or a local chart directory or .tgz archive
	// relative to airlock.yaml.
	Source string `yaml:"source"`
	// Repo is the URL of a classic chart repository (one serving
	// index.yaml); Name and Version then pick the chart.
	Repo string `yaml:"repo"`
	// Name and Version pick the chart in Repo; with Source they are
	// optional and, when given, must match the chart's Chart.yaml.
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Images lists images the chart needs.
	Images *ChartImages `yaml:"images"`
}

// ChartImages says which images of a chart to carry.
type ChartImages struct {
	// FromChart renders the chart's templates with Helm's engine (default
	// values, then Values in order) and carries every image the rendered
	// pod specs name. Default false.
	FromChart bool `yaml:"fromChart"`
	// Values are values files relative to airlock.yaml, merged over the
	// chart's defaults in order (as helm -f does).
	Values []string `yaml:"values"`
}

// ociChart reports whether s names a chart in an OCI registry.
func ociChart(s string) bool { return strings.HasPrefix(s, "oci://") }

// describe names a chart entry in messages.
func (c ChartSpec) describe() string {
	if c.Repo != "" {
		return fmt.Sprintf("chart %s %s from %s", c.Name, c.Version, c.Repo)
	}
	return "chart " + c.Source
}

// charts validates the charts: list.
func (v *specValidator) charts(s *Spec) {
	seen := map[string]bool{}
	for i, c := range s.Charts {
		field := fmt.Sprintf("charts[%d]", i)
		switch {
		case c.Source == "" && c.Repo == "":
			v.fail(field+".source", "required: source (oci://HOST/REPO/NAME:VERSION, or a chart directory or .tgz) or repo with name and version")
		case c.Source != "" && c.Repo != "":
			v.fail(field+".repo", "give either source or repo, not both")
		case c.Repo != "":
			u, err := url.Parse(c.Repo)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				v.fail(field+".repo", "%q is not a chart repository URL like https://charts.example.com", c.Repo)
			}
			if c.Name == "" {
				v.fail(field+".name", "required with repo: the chart's name in the repository's index.yaml")
			}
			if c.Version == "" {
				v.fail(field+".version", "required with repo: an exact chart version like 1.2.3")
			}
		case ociChart(c.Source):
			ref := strings.TrimPrefix(c.Source, "oci://")
			r, err := name.ParseReference(ref, name.StrictValidation)
			if err != nil {
				v.fail(field+".source", "%q is not an OCI chart reference like oci://registry.example.com/charts/payments:1.2.3: %v", c.Source, err)
				break
			}
			if _, ok := r.(name.Tag); ok && !strings.Contains(strings.TrimPrefix(ref, r.Context().RegistryStr()), ":") {
				v.fail(field+".source", "%q names no version; add :VERSION (the chart version tag) or @sha256:...", c.Source)
			}
		}
		if c.Name != "" && !bundle.ValidChartName(c.Name) {
			v.fail(field+".name", "%q is not a chart name airlock can mirror (lowercase letters, digits, and ., _ or - between them)", c.Name)
		}
		if c.Version != "" && !bundle.ValidVersion(c.Version) {
			v.fail(field+".version", "%q is not a semantic version like 1.2.3", c.Version)
		}
		key := c.Source + "|" + c.Repo + "|" + c.Name + "|" + c.Version
		if seen[key] {
			v.fail(field, "this chart is listed twice")
		}
		seen[key] = true
		if c.Images != nil {
			for j, p := range c.Images.Values {
				if p == "" {
					v.fail(fmt.Sprintf("%s.images.values[%d]", field, j), "empty path")
				}
			}
			if len(c.Images.Values) > 0 && !c.Images.FromChart {
				v.fail(field+".images.values", "values are used only with fromChart: true")
			}
		}
	}
}
