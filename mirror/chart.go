package mirror

import (
	"fmt"

	"github.com/airlock-dev/airlock/bundle"
)

// placeChart maps a chart to PREFIX/charts/NAME, tagged with the chart
// version ("+" written "_", as Helm does), so that
// `helm pull oci://SITE/PREFIX/charts/NAME --version VERSION` finds it.
func (t Target) placeChart(a bundle.Artifact) (placement, error) {
	repo, err := t.repo("charts", a.Name)
	if err != nil {
		return placement{}, fmt.Errorf("chart %s: target repository: %w", a.Name, err)
	}
	tag := bundle.ChartTag(a.Version)
	if !validTag.MatchString(tag) {
		return placement{}, fmt.Errorf("chart %s: version %q makes no valid tag", a.Name, a.Version)
	}
	return placement{repo: repo, tag: tag, source: "chart " + a.Name + " " + a.Version}, nil
}
