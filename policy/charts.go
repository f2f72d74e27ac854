package policy

import (
	"fmt"
	"strings"
)

// Checks on the Helm charts of a bundle (require.charts).
const (
	CheckChartProvenance = "chartProvenance" // every chart carries a Helm provenance file
	CheckChartSignature  = "chartSignature"  // every chart carries a cosign signature
)

// ChartRequire lists what every chart of a bundle must carry. The zero
// value requires nothing. A bundle without charts passes both.
type ChartRequire struct {
	// Provenance requires a Helm provenance (.prov) layer. Default false.
	Provenance bool
	// Signature requires a cosign signature attached to the chart in its
	// OCI registry and carried with it (a sha256-<hex>.sig tag or an OCI
	// 1.1 signature referrer). Default false.
	Signature bool
}

// fileChartRequire is require.charts as written.
type fileChartRequire struct {
	Provenance bool `yaml:"provenance"`
	Signature  bool `yaml:"signature"`
}

// ChartFacts describes one Helm chart of the bundle.
type ChartFacts struct {
	Name, Version string
	HasProvenance bool // a .prov layer is in the chart's manifest
	HasSignature  bool // a cosign signature of the chart's manifest is carried
}

func (c ChartFacts) String() string { return c.Name + " " + c.Version }

// evaluateCharts adds the require.charts checks. Charts are not images:
// the platform and SBOM requirements never apply to them.
func evaluateCharts(req ChartRequire, charts []ChartFacts, add func(name string, ok bool, format string, args ...any)) {
	check := func(name, what string, has func(ChartFacts) bool) {
		var without []string
		for _, c := range charts {
			if !has(c) {
				without = append(without, c.String())
			}
		}
		if len(without) == 0 {
			add(name, true, "all %d charts carry a %s", len(charts), what)
			return
		}
		add(name, false, "%s", fmt.Sprintf("%d of %d charts carry no %s: %s", len(without), len(charts), what, strings.Join(without, ", ")))
	}
	if req.Provenance {
		check(CheckChartProvenance, "provenance file", func(c ChartFacts) bool { return c.HasProvenance })
	}
	if req.Signature {
		check(CheckChartSignature, "cosign signature", func(c ChartFacts) bool { return c.HasSignature })
	}
}
