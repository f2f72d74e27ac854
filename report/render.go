package report

import (
	_ "embed"
	htmltemplate "html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/airlock-dev/airlock/internal/meter"
)

//go:embed report.html.tmpl
var htmlText string

//go:embed report.md.tmpl
var mdText string

var funcs = map[string]any{
	"bytes": meter.Bytes,
	"join":  strings.Join,
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"md": mdEscape,
}

var (
	htmlTmpl = htmltemplate.Must(htmltemplate.New("report.html").Funcs(funcs).Parse(htmlText))
	mdTmpl   = texttemplate.Must(texttemplate.New("report.md").Funcs(funcs).Parse(mdText))
)

// HTML writes the report as one self-contained HTML file: inline CSS, inline
// SVG charts and a small inline script that filters the component lists;
// nothing is loaded from anywhere else, so it works from file:// on an
// isolated workstation. Print styles make "Print to PDF" a clean document.
func (d *Document) HTML(w io.Writer) error { return htmlTmpl.Execute(w, newView(d)) }

// Markdown writes the same content as Markdown (GitHub-flavoured tables).
func (d *Document) Markdown(w io.Writer) error { return mdTmpl.Execute(w, newView(d)) }

// mdEscape makes text safe inside a Markdown table cell: no pipes, no line
// breaks, no HTML.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;", "`", "'")
	return r.Replace(s)
}
