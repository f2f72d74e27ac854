package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/verify"
)

// TestHostileText: names from the bundle cannot inject markup into the
// HTML (charts included) or break a Markdown table.
func TestHostileText(t *testing.T) {
	evil := `<script>alert(1)</script>|x`
	rep := &verify.Report{
		Verified: true, Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Bundle:    verify.BundleInfo{Name: evil, Version: "1", Root: "sha256:" + strings.Repeat("0", 64)},
		Artifacts: []bundle.Artifact{{Kind: bundle.KindImage, Ref: evil, Bytes: 10}},
		Signers:   []verify.SignerInfo{{Name: evil, KeyID: "k", Verified: true, Counted: true}},
	}
	d := Build(rep, nil, Options{Airlock: "test"})
	if d.Verdict != Verified || len(d.Sizes.ByImage) != 1 {
		t.Fatalf("document: %+v", d)
	}
	var h, m bytes.Buffer
	if err := d.HTML(&h); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h.String(), "<script>alert") {
		t.Fatal("a name from the bundle reached the HTML unescaped")
	}
	if err := d.Markdown(&m); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(m.String(), "\n") {
		if strings.Contains(line, "alert") && (strings.Contains(line, "<script>") || strings.Contains(line, "</script>|x")) {
			t.Fatalf("Markdown line not escaped: %s", line)
		}
	}
}

func TestVerdicts(t *testing.T) {
	for _, c := range []struct {
		rep  verify.Report
		want string
	}{
		{verify.Report{Verified: true, Trusted: true}, Verified},
		{verify.Report{Trusted: true, HeadOnly: true}, HeadOnly},
		{verify.Report{Trusted: true, Error: "body"}, Rejected},
		{verify.Report{HeadOnly: true, Error: "untrusted"}, Rejected},
	} {
		if got := Build(&c.rep, nil, Options{}).Verdict; got != c.want {
			t.Errorf("%+v: verdict %s, want %s", c.rep, got, c.want)
		}
	}
}
