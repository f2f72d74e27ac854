package bundle

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/internal/strictjson"
)

// sameAsSeparateDecodes fails t when decodeBoth accepts raw (which passed
// strictjson.Check) but decoding it as ociNode or as rootManifest alone
// fails or gives other values.
func sameAsSeparateDecodes(t *testing.T, raw []byte) bool {
	t.Helper()
	n, r := decodeBoth(raw)
	if n == nil {
		return false
	}
	var n2 ociNode
	var r2 rootManifest
	if err := json.Unmarshal(raw, &n2); err != nil {
		t.Fatalf("%s: decodeBoth accepts it, decoding as ociNode fails: %v", raw, err)
	}
	if err := json.Unmarshal(raw, &r2); err != nil {
		t.Fatalf("%s: decodeBoth accepts it, decoding as rootManifest fails: %v", raw, err)
	}
	if !reflect.DeepEqual(*n, n2) || !reflect.DeepEqual(*r, r2) {
		t.Fatalf("%s: decodeBoth gives %+v and %+v, separate decodes %+v and %+v", raw, *n, *r, n2, r2)
	}
	return true
}

var rootManifestSeeds = []string{
	`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.airlock.file.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:4bd6c22976f2d19c66bf76fc28b24799786238787226fd32ca091f869088557c","size":54,"annotations":{"org.opencontainers.image.title":"app.yaml"}}],"annotations":{"dev.airlock.kind":"file","dev.airlock.mode":"0644","dev.airlock.target":"etc/app.yaml"}}`,
	`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":7,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`,
	`{"schemaVersion":2,"subject":{"mediaType":"m","digest":"sha256:bb","size":1},"layers":[],"annotations":null,"config":null}`,
	`{"SchemaVersion":2,"Layers":[{"Digest":"sha256:cc","Platform":{"os":"x"},"Annotations":{"a":"b"}}],"ANNOTATIONS":{}}`,
	`{"layers":null,"manifests":[],"unknown":{"x":[1,2]}}`,
	`{"annotations":5}`,
	`{"layers":[{"size":"7"}]}`,
	`{"manifests":[{"platform":[]}]}`,
	`{"schemaVersion":2.5}`,
	`[]`,
}

// TestDecodeBothMatchesSeparateDecodes: what decodeBoth decodes equals what
// decoding as ociNode and as rootManifest alone gives; members of the wrong
// type make it fail, so that each reader reports its own error.
func TestDecodeBothMatchesSeparateDecodes(t *testing.T) {
	t.Parallel()
	accepted := 0
	for _, s := range rootManifestSeeds {
		if strictjson.Check([]byte(s)) != nil {
			t.Fatalf("seed %s is not strict JSON", s)
		}
		if sameAsSeparateDecodes(t, []byte(s)) {
			accepted++
		}
	}
	if accepted != 5 {
		t.Fatalf("decodeBoth accepted %d of the seeds, want the first 5", accepted)
	}
}

// FuzzDecodeBoth: on any strict JSON, decodeBoth agrees with the separate
// decodes whenever it accepts.
func FuzzDecodeBoth(f *testing.F) {
	for _, s := range rootManifestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if strictjson.Check(raw) != nil {
			return
		}
		sameAsSeparateDecodes(t, raw)
	})
}

// TestContentFilesSameWithoutDecodedRoots: the content files listed from
// the manifests the reader decoded equal those listed by decoding each
// manifest again (a Head built without the reader).
func TestContentFilesSameWithoutDecodedRoots(t *testing.T) {
	t.Parallel()
	h, err := ReadHead(bytes.NewReader(packTest(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.roots) != len(h.Manifest.Artifacts) {
		t.Fatalf("%d decoded roots for %d artifacts", len(h.roots), len(h.Manifest.Artifacts))
	}
	got := h.ContentFiles()
	h.roots = nil
	want := h.ContentFiles()
	if len(got) < 5 || !reflect.DeepEqual(got, want) {
		t.Fatalf("with decoded roots: %+v\nwithout: %+v", got, want)
	}
}
