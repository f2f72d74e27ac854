package pack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
)

const (
	// MaxChartArchiveSize bounds a chart archive (32 MiB), wherever it comes from.
	MaxChartArchiveSize = 32 << 20
	// MaxProvenanceSize bounds a chart's provenance file (1 MiB).
	MaxProvenanceSize = 1 << 20
)

// ChartRepository fetches charts from classic Helm chart repositories (an
// index.yaml and archives over HTTP). Package source implements it; pack
// itself never touches the network.
type ChartRepository interface {
	// FetchChart finds name at exactly version in the index.yaml of the
	// repository at repoURL, downloads the archive (at most
	// MaxChartArchiveSize bytes) and checks it against the digest the index
	// lists; an index entry without a digest is an error. It also fetches
	// the provenance file (ARCHIVE_URL.prov) when the repository serves one.
	FetchChart(ctx context.Context, repoURL, name, version string) (*ChartDownload, error)
}

// ChartDownload is a chart archive fetched from a classic repository.
type ChartDownload struct {
	URL        string // where the archive was downloaded from
	Digest     string // "sha256:<hex>", as the index lists it and the bytes hash to
	Archive    []byte
	Provenance []byte // nil when the repository serves none
}

// packedChart is a chart on its way into the bundle.
type packedChart struct {
	arts   []*packArtifact // the chart, then what is attached to it
	images []string        // images its templates name (images.fromChart)
}

// packChart fetches or packages one chart and, when asked, lists the
// images its templates name.
func packChart(ctx context.Context, spec *Spec, opts Options, c ChartSpec, created time.Time) (*packedChart, error) {
	what := c.describe()
	fail := func(err error) (*packedChart, error) { return nil, &SourceError{Artifact: what, Err: err} }
	var (
		out     = &packedChart{}
		ch      *chart.Chart
		archive []byte
		prov    []byte
		rec     = bundle.Artifact{Kind: bundle.KindChart, Source: c.Source}
	)
	switch {
	case ociChart(c.Source):
		a, loaded, err := pullChart(ctx, opts, c)
		if err != nil {
			return nil, err
		}
		ch = loaded
		out.arts = append(out.arts, a)
		atts, err := packAttachments(ctx, spec, opts, ImageSpec{Ref: strings.TrimPrefix(c.Source, "oci://")}, c.Source, a)
		if err != nil {
			return nil, err
		}
		out.arts = append(out.arts, atts...)
	case c.Repo != "":
		if opts.Charts == nil {
			return fail(errors.New("the release lists a chart repository but no chart repository client was given"))
		}
		dl, err := opts.Charts.FetchChart(ctx, c.Repo, c.Name, c.Version)
		if err != nil {
			return fail(err)
		}
		archive, prov = dl.Archive, dl.Provenance
		rec.Source, rec.Resolved = c.Repo, dl.URL+"@"+dl.Digest
	default:
		var err error
		if archive, prov, err = localChart(spec.resolve(c.Source), created); err != nil {
			return fail(err)
		}
	}
	if ch == nil {
		var err error
		if ch, err = loader.LoadArchive(bytes.NewReader(archive)); err != nil {
			return fail(fmt.Errorf("not a Helm chart archive: %w", err))
		}
		if err := checkChartMeta(c, ch); err != nil {
			return fail(err)
		}
		rec.Name, rec.Version = ch.Metadata.Name, ch.Metadata.Version
		a, err := chartItem(rec, ch.Metadata, archive, prov, created)
		if err != nil {
			return fail(err)
		}
		out.arts = append(out.arts, a)
	}
	if c.Images != nil && c.Images.FromChart {
		imgs, err := chartImages(spec, ch, c.Images.Values)
		if err != nil {
			return fail(err)
		}
		out.images = imgs
	}
	return out, nil
}

// checkChartMeta checks the chart against the name and version airlock.yaml
// gives, and that it can be mirrored as charts/NAME:VERSION.
func checkChartMeta(c ChartSpec, ch *chart.Chart) error {
	if ch.Metadata == nil {
		return errors.New("the chart has no Chart.yaml")
	}
	n, v := ch.Metadata.Name, ch.Metadata.Version
	if c.Name != "" && n != c.Name {
		return fmt.Errorf("the chart is named %q, airlock.yaml says %q", n, c.Name)
	}
	if c.Version != "" && v != c.Version {
		return fmt.Errorf("the chart's version is %q, airlock.yaml says %q", v, c.Version)
	}
	if !bundle.ValidChartName(n) {
		return fmt.Errorf("chart name %q cannot name an OCI repository (lowercase letters, digits, and ., _ or - between them)", n)
	}
	if !bundle.ValidVersion(v) {
		return fmt.Errorf("chart version %q is not a semantic version", v)
	}
	return checkChartDependencies(ch)
}

// checkChartDependencies refuses a chart whose Chart.yaml lists a
// dependency that is not inside it (charts/): on the isolated side nothing
// could fetch it, and `helm install` would fail there.
func checkChartDependencies(ch *chart.Chart) error {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		if d.Metadata != nil {
			have[d.Metadata.Name] = true
		}
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if d != nil && !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the chart depends on %s, which it does not contain; run helm dependency build (so charts/ holds them) and pack again", strings.Join(missing, ", "))
	}
	for _, d := range ch.Dependencies() {
		if err := checkChartDependencies(d); err != nil {
			return fmt.Errorf("subchart %s: %w", d.Name(), err)
		}
	}
	return nil
}

// chartItem builds a chart artifact from an archive, as `helm push` lays it
// out: the metadata as JSON config, the archive, the provenance file.
func chartItem(rec bundle.Artifact, meta *chart.Metadata, archive, prov []byte, created time.Time) (*packArtifact, error) {
	cfg, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	blobs := map[string][]byte{}
	layer := func(b []byte) bundle.LocalLayer {
		d := checked.Digest(b)
		blobs[d] = b
		return bundle.LocalLayer{Descriptor: bundle.Descriptor{Digest: d, Size: int64(len(b))}}
	}
	cl := layer(archive)
	var pl *bundle.LocalLayer
	if prov != nil {
		l := layer(prov)
		pl = &l
	}
	it, err := bundle.NewChartItem(rec, cfg, cl, pl, chartAnnotations(meta, created))
	if err != nil {
		return nil, err
	}
	it.Verified = true
	it.Open = func(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
		b, ok := blobs[d.Digest]
		if !ok {
			return nil, fmt.Errorf("internal error: chart blob %s has no source", d.Digest)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return &packArtifact{Item: *it}, nil
}

// chartAnnotations are the manifest annotations `helm push` writes, with
// the bundle's creation time as the creation time (so packing is
// reproducible).
func chartAnnotations(meta *chart.Metadata, created time.Time) map[string]string {
	ann := map[string]string{}
	for k, v := range meta.Annotations {
		ann[k] = v
	}
	set := func(k, v string) {
		if strings.TrimSpace(v) != "" {
			ann[k] = v
		}
	}
	set("org.opencontainers.image.description", meta.Description)
	set("org.opencontainers.image.title", meta.Name)
	set("org.opencontainers.image.version", meta.Version)
	set("org.opencontainers.image.url", meta.Home)
	set("org.opencontainers.image.created", created.UTC().Format(time.RFC3339))
	if len(meta.Sources) > 0 {
		set("org.opencontainers.image.source", meta.Sources[0])
	}
	var authors []string
	for _, m := range meta.Maintainers {
		a := m.Name
		if m.Email != "" {
			a += " (" + m.Email + ")"
		}
		authors = append(authors, a)
	}
	set("org.opencontainers.image.authors", strings.Join(authors, ", "))
	return ann
}

// localChart reads a chart archive (.tgz, with PATH.prov when present) or
// packages a chart directory with Helm's own packager, every file stamped
// with the bundle's creation time so the archive is reproducible.
func localChart(p string, created time.Time) (archive, prov []byte, err error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (check charts[].source in airlock.yaml)", err)
	}
	if !st.IsDir() {
		if archive, err = readBounded(p, MaxChartArchiveSize); err != nil {
			return nil, nil, err
		}
		if _, err := os.Lstat(p + ".prov"); err == nil {
			if prov, err = readBounded(p+".prov", MaxProvenanceSize); err != nil {
				return nil, nil, err
			}
		}
		return archive, prov, nil
	}
	ch, err := loader.LoadDir(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not a Helm chart directory: %w", p, err)
	}
	stampChart(ch, created)
	tmp, err := os.MkdirTemp("", "airlock-chart-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	out, err := chartutil.Save(ch, tmp)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %w", p, err)
	}
	archive, err = readBounded(out, MaxChartArchiveSize)
	return archive, nil, err
}

// stampChart gives every file of a chart and its subcharts the time t.
func stampChart(ch *chart.Chart, t time.Time) {
	ch.ModTime, ch.SchemaModTime = t, t
	for _, list := range [][]*common.File{ch.Raw, ch.Templates, ch.Files} {
		for _, f := range list {
			f.ModTime = t
		}
	}
	for _, d := range ch.Dependencies() {
		stampChart(d, t)
	}
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file", p, safepath.Kind(st.Mode()))
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return b, nil
}

// pullChart resolves a chart in an OCI registry and carries it byte for
// byte, digest unchanged.
func pullChart(ctx context.Context, opts Options, c ChartSpec) (*packArtifact, *chart.Chart, error) {
	what := c.describe()
	fail := func(err error) (*packArtifact, *chart.Chart, error) {
		return nil, nil, &SourceError{Artifact: what, Err: err}
	}
	if opts.Images == nil {
		return fail(errors.New("no registry client was given"))
	}
	ref := strings.TrimPrefix(c.Source, "oci://")
	src, err := opts.Images.Resolve(ctx, ref)
	if err != nil {
		return fail(err)
	}
	root, raw := src.Root()
	if got := checked.Digest(raw); got != root.Digest || int64(len(raw)) != root.Size {
		return fail(fmt.Errorf("%w: the registry said %s but served bytes hashing to %s", bundle.ErrIntegrity, root.Digest, got))
	}
	if root.MediaType != bundle.MediaTypeOCIManifest {
		return fail(fmt.Errorf("%w %q: a Helm chart in a registry is an OCI image manifest", bundle.ErrUnsupportedMediaType, root.MediaType))
	}
	g, err := bundle.Walk(ctx, root, raw, &sourceContent{src: src, ref: what}, nil)
	if err != nil {
		return fail(err)
	}
	if len(g.Configs) != 1 {
		return fail(errors.New("a chart manifest has exactly one config"))
	}
	var meta struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	_ = json.Unmarshal(g.Configs[0].Data, &meta)
	rec := bundle.Artifact{Kind: bundle.KindChart, Name: meta.Name, Version: meta.Version, Source: c.Source, Resolved: src.Repository() + "@" + root.Digest}
	layers, err := bundle.ChartContent(rec, raw, g.Configs[0].Data)
	if err != nil {
		return fail(fmt.Errorf("%s is not a Helm chart airlock carries: %w", ref, err))
	}
	if r, err := name.ParseReference(ref); err == nil {
		if t, ok := r.(name.Tag); ok && t.TagStr() != bundle.ChartTag(meta.Version) {
			return fail(fmt.Errorf("tag %s holds chart version %s", t.TagStr(), meta.Version))
		}
	}
	if layers.Chart.Size > MaxChartArchiveSize {
		return fail(fmt.Errorf("%w: chart archive of %d bytes exceeds %d", bundle.ErrLimit, layers.Chart.Size, MaxChartArchiveSize))
	}
	rc, err := src.Blob(ctx, layers.Chart)
	if err != nil {
		return fail(fmt.Errorf("chart archive %s: %w", layers.Chart.Digest, err))
	}
	archive, err := checked.ReadAll(rc, layers.Chart.Digest, layers.Chart.Size)
	rc.Close()
	if err != nil {
		return fail(fmt.Errorf("%w: chart archive %s: %w", bundle.ErrIntegrity, layers.Chart.Digest, err))
	}
	ch, err := loader.LoadArchive(bytes.NewReader(archive))
	if err != nil {
		return fail(fmt.Errorf("not a Helm chart archive: %w", err))
	}
	if err := checkChartMeta(c, ch); err != nil {
		return fail(err)
	}
	if ch.Metadata.Name != meta.Name || ch.Metadata.Version != meta.Version {
		return fail(fmt.Errorf("the manifest's config names %s %s, the archive's Chart.yaml %s %s", meta.Name, meta.Version, ch.Metadata.Name, ch.Metadata.Version))
	}
	a := imageItem(src, g, rec)
	a.RefName = bundle.ChartRefName(meta.Name, meta.Version)
	return a, ch, nil
}
