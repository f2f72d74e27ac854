package report

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/meter"
)

// view is what the HTML and Markdown templates render: the document plus
// rows worked out in Go, so the templates only lay them out.
type view struct {
	*Document
	Title       string
	VerdictCSS  string
	Artifacts   []artifactRow
	Signers     []signerRow
	ChartKinds  template.HTML
	ChartImages template.HTML
	TotalBytes  int64
}

type artifactRow struct {
	Index     int
	Kind      string
	Name      string
	Digest    string
	Size      string
	Platforms string
	Install   string
	Details   string
}

type signerRow struct {
	Name, KeyID, Algorithm, Verified, Counted, Note string
}

func newView(d *Document) *view {
	r := d.Verification
	v := &view{Document: d}
	b := r.Bundle
	if b.Name != "" {
		v.Title = fmt.Sprintf("%s %s", b.Name, b.Version)
	} else {
		v.Title = b.Path
	}
	switch d.Verdict {
	case Verified:
		v.VerdictCSS = "ok"
	case HeadOnly:
		v.VerdictCSS = "warn"
	default:
		v.VerdictCSS = "bad"
	}
	for i, a := range r.Artifacts {
		row := artifactRow{Index: i + 1, Kind: a.Kind, Name: artifactName(a), Digest: a.Digest, Size: meter.Bytes(a.Bytes)}
		if len(a.Platforms) > 0 {
			row.Platforms = strings.Join(a.Platforms, ", ")
		}
		if a.Target != "" {
			row.Install = a.Target
			if a.Mode != "" {
				row.Install += " (mode " + a.Mode + ")"
			}
		}
		switch a.Kind {
		case bundle.KindImage:
			if a.Resolved != "" {
				row.Details = "from " + a.Resolved
				if a.Filtered {
					row.Details = "platforms filtered from " + a.Resolved
				}
			}
		case bundle.KindAttachment:
			row.Details = fmt.Sprintf("upstream %s of %s (%s)", AttachmentWhat(a), a.Subject, a.SubjectDigest)
		case bundle.KindSBOM:
			if a.SBOM != nil {
				row.Details = fmt.Sprintf("%s %s, %d packages", a.SBOM.Format, a.SBOM.SpecVersion, a.SBOM.Packages)
			}
			if a.Subject != "" {
				row.Details += "; describes " + a.Subject
			}
		case bundle.KindModel:
			row.Details = "source " + a.Source
		}
		v.Artifacts = append(v.Artifacts, row)
		v.TotalBytes += a.Bytes
	}
	for _, s := range r.Signers {
		row := signerRow{Name: s.Name, KeyID: s.KeyID, Algorithm: s.Algorithm, Verified: yesNo(s.Verified), Counted: yesNo(s.Counted), Note: s.Note}
		if row.Name == "" {
			row.Name = "(key not in the policy)"
		}
		if row.Algorithm == "" {
			row.Algorithm = "-"
		}
		v.Signers = append(v.Signers, row)
	}
	v.ChartKinds = bars(d.Sizes.ByKind)
	v.ChartImages = bars(d.Sizes.ByImage)
	return v
}

func artifactName(a bundle.Artifact) string {
	switch a.Kind {
	case bundle.KindImage:
		return a.Ref
	case bundle.KindModel:
		return a.Name
	case bundle.KindFile, bundle.KindSBOM:
		return a.Source
	case bundle.KindAttachment:
		if a.Tag != "" {
			return a.Tag
		}
		return "referrer " + a.ArtifactType
	}
	return a.Describe()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// bars draws a horizontal bar chart as inline SVG: one labelled bar per
// entry, scaled to the largest.
func bars(bs []Bar) template.HTML {
	if len(bs) == 0 {
		return ""
	}
	const (
		width  = 720
		labelW = 300
		valueW = 90
		rowH   = 26
		barH   = 16
	)
	var max int64 = 1
	for _, b := range bs {
		if b.Bytes > max {
			max = b.Bytes
		}
	}
	palette := []string{"#2563eb", "#0d9488", "#7c3aed", "#d97706", "#db2777", "#4b5563"}
	var sb strings.Builder
	h := len(bs)*rowH + 4
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, width, h, width, h)
	for i, b := range bs {
		y := i*rowH + 4
		w := int(float64(width-labelW-valueW-10) * float64(b.Bytes) / float64(max))
		if w < 2 && b.Bytes > 0 {
			w = 2
		}
		label := b.Label
		if len(label) > 44 {
			label = "…" + label[len(label)-43:]
		}
		fmt.Fprintf(&sb, `<title>%s</title>`, template.HTMLEscapeString(b.Label))
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end" class="lbl">%s</text>`, labelW-8, y+barH-3, template.HTMLEscapeString(label))
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s"/>`, labelW, y, w, barH, palette[i%len(palette)])
		fmt.Fprintf(&sb, `<text x="%d" y="%d" class="val">%s</text>`, labelW+w+6, y+barH-3, template.HTMLEscapeString(meter.Bytes(b.Bytes)))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // every text above is escaped
}
