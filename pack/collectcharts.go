package pack

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"
)

// collectCharts fetches or packages every chart, concurrently, and
// returns the chart artifacts (each followed by its attachments) in spec
// order, and the spec as it is packed: the images its charts name
// (images.fromChart) added after its own images, once each, and the
// top-level platforms (or opts.Platforms) given to every image without
// its own.
func collectCharts(ctx context.Context, spec *Spec, opts Options, created time.Time) ([]*packArtifact, *Spec, error) {
	packed := make([]*packedChart, len(spec.Charts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for i, c := range spec.Charts {
		g.Go(func() (err error) {
			packed[i], err = packChart(gctx, spec, opts, c, created)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	eff := *spec
	eff.Images = append([]ImageSpec(nil), spec.Images...)
	listed := map[string]bool{}
	for _, im := range spec.Images {
		listed[im.Ref] = true
	}
	var arts []*packArtifact
	for _, p := range packed {
		arts = append(arts, p.arts...)
		for _, ref := range p.images {
			if !listed[ref] {
				listed[ref] = true
				eff.Images = append(eff.Images, ImageSpec{Ref: ref})
			}
		}
	}
	if len(eff.Images) > 0 && opts.Images == nil {
		return nil, nil, errors.New("the release lists images but no image resolver was given")
	}
	plats := spec.Platforms
	if len(opts.Platforms) > 0 {
		plats = opts.Platforms
	}
	if len(plats) > 0 {
		for i := range eff.Images {
			if len(eff.Images[i].Platforms) == 0 {
				eff.Images[i].Platforms = append([]string(nil), plats...)
			}
		}
	}
	return arts, &eff, nil
}
