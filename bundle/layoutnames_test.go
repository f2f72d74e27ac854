package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/checked"
)

func TestOrasName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"registry.example.com/demo/worker:1.0":      "registry.example.com/demo/worker+1.0",
		"127.0.0.1:5000/demo/api:1.0":               "127.0.0.1+5000/demo/api+1.0",
		"worker@sha256:" + strings.Repeat("ab", 32): "worker+sha256+" + strings.Repeat("ab", 32),
		"charts/redis:20.6.2_build.1":               "charts/redis+20.6.2_build.1",
		"registry.example.com/a:sha256-" + "0f.sig": "registry.example.com/a+sha256-0f.sig",
		"models/tiny-classifier":                    "",
		"":                                          "",
	} {
		if got := OrasName(in); got != want {
			t.Errorf("OrasName(%q) = %q, want %q", in, got, want)
		}
	}
}

// aliasItems is testItems with the model and the first file given layout
// names oras cannot address (a chart's and an image's shape), so the
// writer adds an alias for each.
func aliasItems(t *testing.T) []Item {
	items := testItems(t)
	items[0].RefName = "models/m:1.0"
	items[1].RefName = "registry.example.com/app@sha256:" + strings.Repeat("0", 64)
	return items
}

func indexEntries(t *testing.T, index []byte) []ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(index, &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests
}

func TestWriterAddsOrasNames(t *testing.T) {
	t.Parallel()
	items := aliasItems(t)
	h, err := ReadHead(bytes.NewReader(writeTest(t, "aliases", "1.0.0", items)))
	if err != nil {
		t.Fatal(err)
	}
	entries := indexEntries(t, h.IndexBytes)
	n := len(h.Manifest.Artifacts)
	if len(entries) != n+2 {
		t.Fatalf("%d index entries for %d artifacts, want %d (two aliases)", len(entries), n, n+2)
	}
	for i, a := range h.Manifest.Artifacts {
		if entries[i].Digest.String() != a.Digest {
			t.Errorf("entry %d is %s, want artifact %d's %s", i, entries[i].Digest, i, a.Digest)
		}
	}
	for k, base := range []int{0, 1} {
		alias, orig := entries[n+k], entries[base]
		want := OrasName(items[base].RefName)
		if got := alias.Annotations[AnnotationRefName]; got != want {
			t.Errorf("alias %d named %q, want %q", k, got, want)
		}
		if alias.Digest != orig.Digest || alias.Size != orig.Size || alias.MediaType != orig.MediaType || alias.ArtifactType != orig.ArtifactType {
			t.Errorf("alias %d describes %+v, its artifact's entry %+v", k, alias, orig)
		}
		rest := maps.Clone(alias.Annotations)
		rest[AnnotationRefName] = orig.Annotations[AnnotationRefName]
		if !maps.Equal(rest, orig.Annotations) {
			t.Errorf("alias %d annotations %v differ from %v beyond the name", k, alias.Annotations, orig.Annotations)
		}
	}
	// Without names oras cannot address, index.json is as before: one entry per artifact.
	plain, err := ReadHead(bytes.NewReader(packTest(t)))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(indexEntries(t, plain.IndexBytes)); got != len(plain.Manifest.Artifacts) {
		t.Errorf("%d entries for %d artifacts without aliases", got, len(plain.Manifest.Artifacts))
	}
}

func TestLayoutAliasesSkipTakenNames(t *testing.T) {
	t.Parallel()
	d := func(dig byte, name string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digestOf("sha256:" + strings.Repeat(string(dig), 64)), Size: 2,
			Annotations: map[string]string{AnnotationKind: KindImage, AnnotationRefName: name}}
	}
	got := layoutAliases([]ocispec.Descriptor{
		d('a', "x/a:1"),
		d('b', "x/a+1"), // already the name x/a:1 would get: x/a:1 gets none
		d('c', "x/c:1"),
		d('d', "x/c@1"), // maps to x/c+1 like x/c:1: the first one gets it
		{MediaType: MediaTypeOCIManifest, Digest: digestOf("sha256:" + strings.Repeat("e", 64)), Size: 2, Annotations: map[string]string{AnnotationKind: KindFile}},
	})
	var names []string
	for _, a := range got {
		names = append(names, a.Digest.Encoded()[:1]+"="+a.Annotations[AnnotationRefName])
	}
	if want := "c=x/c+1"; strings.Join(names, ",") != want {
		t.Errorf("aliases %v, want [%s]", names, want)
	}
}

// TestReaderChecksOrasNames changes the entries after the artifacts' in
// index.json (and the root digest in bundle.json to match) and expects
// the head check to refuse every change.
func TestReaderChecksOrasNames(t *testing.T) {
	t.Parallel()
	h, err := ReadHead(bytes.NewReader(writeTest(t, "aliases", "1.0.0", aliasItems(t))))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(h.IndexBytes, &idx); err != nil {
		t.Fatal(err)
	}
	n := len(h.Manifest.Artifacts)
	entries := indexEntries(t, h.IndexBytes)
	recheck := func(manifests []json.RawMessage) error {
		c := idx
		c.Manifests = manifests
		raw, err := marshalNoEscape(c)
		if err != nil {
			t.Fatal(err)
		}
		again := *h
		again.IndexBytes = raw
		again.Manifest.Root = Descriptor{MediaType: MediaTypeOCIIndex, Digest: checked.Digest(raw), Size: int64(len(raw))}
		again.Body, again.Files = nil, nil
		return again.checkTree()
	}
	if err := recheck(idx.Manifests); err != nil {
		t.Fatalf("the unchanged index, re-marshalled, is refused: %v", err)
	}
	m := func(i int) []json.RawMessage { return idx.Manifests[:i:i] }
	edit := func(i int, old, new string) json.RawMessage {
		if !bytes.Contains(idx.Manifests[i], []byte(old)) {
			t.Fatalf("entry %d has no %q", i, old)
		}
		return bytes.Replace(idx.Manifests[i], []byte(old), []byte(new), 1)
	}
	for name, manifests := range map[string][]json.RawMessage{
		"alias missing":          m(n + 1),
		"no aliases":             m(n),
		"alias twice":            append(m(n+2), idx.Manifests[n+1]),
		"aliases reordered":      append(m(n), idx.Manifests[n+1], idx.Manifests[n]),
		"alias of another blob":  append(m(n+1), edit(n+1, entries[1].Digest.String(), entries[2].Digest.String())),
		"alias renamed":          append(m(n+1), edit(n+1, "+sha256+", "+sha512+")),
		"alias with a platform":  append(m(n+1), edit(n+1, `"annotations"`, `"platform":{"architecture":"amd64","os":"linux"},"annotations"`)),
		"alias of another kind":  append(m(n+1), edit(n+1, `"dev.airlock.kind":"file"`, `"dev.airlock.kind":"image"`)),
		"an extra unnamed entry": append(m(n+2), idx.Manifests[2]),
		"fewer than artifacts":   m(n - 1),
	} {
		if err := recheck(manifests); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
