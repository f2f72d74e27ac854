package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
)

// MaxValuesSize bounds one values file of images.values (1 MiB).
const MaxValuesSize = 1 << 20

// chartImages renders the chart's templates with Helm's own engine (the
// chart's default values, then each values file in order, as helm -f
// does; release name "release", namespace "default", Helm's default
// capabilities; no cluster) and returns every image the rendered pod
// specs name (containers, initContainers, ephemeralContainers), sorted and
// once each.
func chartImages(spec *Spec, ch *chart.Chart, valueFiles []string) ([]string, error) {
	vals := map[string]any{}
	for _, f := range valueFiles {
		b, err := readBounded(spec.resolve(f), MaxValuesSize)
		if err != nil {
			return nil, fmt.Errorf("images.values %s: %w", f, err)
		}
		v, err := loader.LoadValues(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("images.values %s: %w", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return nil, fmt.Errorf("chart dependencies: %w", err)
	}
	top, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "release", Namespace: "default", Revision: 1, IsInstall: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	rendered, err := engine.Render(ch, top)
	if err != nil {
		return nil, fmt.Errorf("rendering the chart's templates: %w", err)
	}
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	found := map[string]bool{}
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml") {
			continue // NOTES.txt, helpers
		}
		if err := imagesIn(rendered[n], found); err != nil {
			return nil, fmt.Errorf("rendered %s: %w", n, err)
		}
	}
	out := make([]string, 0, len(found))
	for ref := range found {
		if _, err := name.ParseReference(ref); err != nil {
			return nil, fmt.Errorf("the chart names image %q, which is not a valid reference: %v", ref, err)
		}
		out = append(out, ref)
	}
	sort.Strings(out)
	return out, nil
}

// imagesIn adds the images named by the pod specs of every YAML document
// in doc to found.
func imagesIn(doc string, found map[string]bool) error {
	dec := yaml.NewDecoder(strings.NewReader(doc))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		walkImages(&n, found)
	}
}

var containerKeys = map[string]bool{"containers": true, "initContainers": true, "ephemeralContainers": true}

func walkImages(n *yaml.Node, found map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			walkImages(c, found)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if containerKeys[k.Value] && v.Kind == yaml.SequenceNode {
				for _, c := range v.Content {
					if img := mappingValue(c, "image"); img != nil && img.Kind == yaml.ScalarNode && strings.TrimSpace(img.Value) != "" {
						found[strings.TrimSpace(img.Value)] = true
					}
				}
			}
			walkImages(v, found)
		}
	}
}
