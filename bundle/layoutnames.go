package bundle

import (
	"bytes"
	"encoding/json"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// orasSeparators are the characters oras cannot take in the NAME of an
// `--oci-layout DIR:NAME` reference: it ends DIR at the last '@' when there
// is one, otherwise at the last ':' (oras v1.3.6, option.Target).
const orasSeparators = ":@"

// OrasName returns the second layout name an index.json entry named
// refName gets, for oras: refName with every ':' and '@' written '+'. It
// returns "" when refName has neither (oras finds it under refName itself)
// or is empty. '+' appears in no image reference and no chart tag, so
// the name cannot be mistaken for another artifact's ref.name.
func OrasName(refName string) string {
	if !strings.ContainsAny(refName, orasSeparators) {
		return ""
	}
	return strings.NewReplacer(":", "+", "@", "+").Replace(refName)
}

// layoutAliases returns the index.json entries that follow the artifacts'
// own: for each entry in order whose ref.name oras cannot address
// (OrasName is not ""), a copy of it named OrasName(ref.name), unless that
// name is already a ref.name of an artifact or of an earlier alias (then
// that entry gets none). Aliases change no content: each names a
// descriptor that an artifact's entry already names.
func layoutAliases(entries []ocispec.Descriptor) []ocispec.Descriptor {
	taken := map[string]bool{}
	for _, e := range entries {
		if n := e.Annotations[AnnotationRefName]; n != "" {
			taken[n] = true
		}
	}
	var out []ocispec.Descriptor
	for _, e := range entries {
		alias := OrasName(e.Annotations[AnnotationRefName])
		if alias == "" || taken[alias] {
			continue
		}
		taken[alias] = true
		ann := make(map[string]string, len(e.Annotations))
		for k, v := range e.Annotations {
			ann[k] = v
		}
		ann[AnnotationRefName] = alias
		a := e
		a.Annotations = ann
		out = append(out, a)
	}
	return out
}

// checkLayoutAliases checks that the entries of index (the exact bytes of
// index.json) after the first n, one per artifact, are exactly the
// aliases layoutAliases makes of those n, byte for byte as the writer
// writes them.
func checkLayoutAliases(index []byte, n int) error {
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return malformed("%v", err)
	}
	if len(idx.Manifests) < n {
		return malformed("%d entries for %d artifacts", len(idx.Manifests), n)
	}
	base := make([]ocispec.Descriptor, n)
	for i := range base {
		if err := json.Unmarshal(idx.Manifests[i], &base[i]); err != nil {
			return malformed("entry %d: %v", i, err)
		}
	}
	want := layoutAliases(base)
	tail := idx.Manifests[n:]
	if len(tail) != len(want) {
		return malformed("%d entries after the %d of the artifacts, expected %d (one for each name oras cannot address)", len(tail), n, len(want))
	}
	for i, w := range want {
		raw, err := marshalNoEscape(w)
		if err != nil {
			return err
		}
		if !bytes.Equal(raw, tail[i]) {
			return malformed("entry %d is not the oras name %q of an artifact's entry", n+i, clip(w.Annotations[AnnotationRefName]))
		}
	}
	return nil
}
