package bundle

import (
	"errors"
	"reflect"
	"testing"
)

func TestLocations(t *testing.T) {
	t.Parallel()
	d := func(n byte) Descriptor {
		return Descriptor{Digest: "sha256:" + hex64(n)}
	}
	img := Artifact{Kind: KindImage, Ref: "registry.example.com:5000/payments/api:1.4.2", Descriptor: d(1)}
	local := Artifact{Kind: KindImage, Ref: "oci:./layout:worker", Descriptor: d(2)}
	sig := Artifact{Kind: KindAttachment, Subject: img.Ref, Tag: "sha256-" + hex64(1) + ".sig", Descriptor: d(3)}
	sbom := Artifact{Kind: KindSBOM, Subject: img.Ref, Descriptor: d(4)}
	loose := Artifact{Kind: KindSBOM, Descriptor: d(5)}
	model := Artifact{Kind: KindModel, Name: "llm", Descriptor: d(6)}
	chart := Artifact{Kind: KindChart, Name: "web", Version: "1.0.0+g1", Source: "oci://charts.example.com/web", Descriptor: d(7)}
	file := Artifact{Kind: KindFile, Source: "app.yaml", Descriptor: d(8)}
	h := &Head{
		Manifest:   Manifest{Version: "2.0+build.7", Artifacts: []Artifact{img, local, sig, sbom, loose, model, chart, file}},
		IndexBytes: []byte(`{"manifests":[{},{"annotations":{"org.opencontainers.image.ref.name":"demo/worker:1.0"}},{},{},{},{},{},{}]}`),
	}
	got, err := h.Locations(LocateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Location{
		{Artifact: 0, Repo: "payments/api", Tag: "1.4.2", Source: img.Ref},
		{Artifact: 1, Repo: "demo/worker", Tag: "1.0", Source: local.Ref},
		{Artifact: 2, Repo: "payments/api", Tag: sig.Tag, Source: img.Ref},
		{Artifact: 3, Repo: "payments/api", Source: img.Ref},
		{Artifact: 5, Repo: "models/llm", Tag: "2.0_build.7", Source: "model llm"},
		{Artifact: 6, Repo: "charts/web", Tag: "1.0.0_g1", Source: "chart web 1.0.0+g1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Locations:\n got %+v\nwant %+v", got, want)
	}

	got, err = h.Locations(LocateOptions{KeepRegistryHost: true, ImagesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Repo != "registry.example.com_5000/payments/api" || got[2].Repo != got[0].Repo {
		t.Errorf("KeepRegistryHost: %+v", got)
	}
	for _, l := range got {
		if l.Repo == "models/llm" {
			t.Errorf("ImagesOnly placed the model: %+v", l)
		}
	}

	// Two images that would share a repository and tag with different content.
	other := Artifact{Kind: KindImage, Ref: "mirror.example.org/payments/api:1.4.2", Descriptor: d(9)}
	h.Manifest.Artifacts = []Artifact{img, other}
	var le *LocationError
	if _, err := h.Locations(LocateOptions{}); !errors.As(err, &le) || le.Repo != "payments/api" || le.Tag != "1.4.2" {
		t.Errorf("collision: %v", err)
	}
	if _, err := h.Locations(LocateOptions{KeepRegistryHost: true}); err != nil {
		t.Errorf("collision with KeepRegistryHost: %v", err)
	}
}

// hex64 is 64 hex digits made of n.
func hex64(n byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 64)
	for i := range b {
		b[i] = digits[(int(n)+i)%16]
	}
	return string(b)
}
