package bundle

// checkKindContent runs the checks that are particular to a kind, on the
// artifact's walked content (head data only): the files of a directory,
// the layout of a chart.
func checkKindContent(a Artifact, g *Graph) error {
	switch a.Kind {
	case KindDir:
		if a.Ref != "" || a.Name != "" || a.Version != "" || a.Resolved != "" {
			return malformed("a directory records no ref, name, version or resolved")
		}
		return checkDir(a, g.Manifests[0].Data)
	case KindChart:
		if a.Ref != "" || a.Target != "" || a.Mode != "" || len(a.Platforms) > 0 || a.Filtered {
			return malformed("a chart records no ref, target, mode or platforms")
		}
		if len(g.Manifests) != 1 || len(g.Configs) != 1 {
			return malformed("a chart is one manifest with one config")
		}
		_, err := ChartContent(a, g.Manifests[0].Data, g.Configs[0].Data)
		return err
	}
	return nil
}
