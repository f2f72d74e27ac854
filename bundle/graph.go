package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// ociDescriptor is the subset of an OCI/Docker descriptor airlock reads.
type ociDescriptor struct {
	MediaType string       `json:"mediaType"`
	Digest    string       `json:"digest"`
	Size      int64        `json:"size"`
	Platform  *ociPlatform `json:"platform,omitempty"`
}

type ociPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p *ociPlatform) String() string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether p satisfies a requested "os/arch[/variant]"; a
// request without a variant matches any variant.
func (p *ociPlatform) matches(want string) bool {
	if p == nil {
		return false
	}
	parts := strings.Split(want, "/")
	if len(parts) < 2 || p.OS != parts[0] || p.Architecture != parts[1] {
		return false
	}
	return len(parts) < 3 || p.Variant == parts[2]
}

// ociNode is the subset of a manifest or index airlock reads.
type ociNode struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        *ociDescriptor  `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
	Manifests     []ociDescriptor `json:"manifests"`
}

// configPlatform is the platform part of an image config.
type configPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
}

// IsIndex reports whether mt is an image index media type airlock carries.
func IsIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// IsManifest reports whether mt is an image manifest media type airlock carries.
func IsManifest(mt string) bool { return mt == MediaTypeOCIManifest || mt == MediaTypeDockerV2 }

// PlatformMatches reports whether the platform have ("os/arch[/variant]")
// satisfies want; a want without a variant matches any variant.
func PlatformMatches(have, want string) bool {
	parts := strings.SplitN(have, "/", 3)
	if len(parts) < 2 {
		return false
	}
	p := &ociPlatform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p.matches(want)
}

// Graph is the content tree below one artifact root, as Walk read it.
type Graph struct {
	// Root is the artifact's root manifest or index (after a platform filter).
	Root Descriptor
	// Manifests holds the root first, then children depth-first, each once.
	Manifests []Blob
	// Configs holds every config blob, each once.
	Configs []Blob
	// Layers lists the layer descriptors in manifest order, possibly repeated.
	Layers []Descriptor
	// Platforms lists the platforms the root offers ("os/arch[/variant]"),
	// sorted: an index's entries, or a single image's config.
	Platforms []string

	root        *rootManifest // see decodedRoot
	rootDecoded bool
}

// ContentSource yields the manifests and configs a graph references. The
// walker checks what it parses; an implementation that reads from an
// untrusted place must check each blob against its descriptor.
type ContentSource interface {
	Manifest(ctx context.Context, d Descriptor) ([]byte, error)
	Config(ctx context.Context, d Descriptor) ([]byte, error)
}

// checkDescriptor validates a descriptor read from a manifest.
func checkDescriptor(where string, d ociDescriptor) error {
	if !validDigest(d.Digest) {
		return malformed("%s: digest %q is not sha256:<64 lowercase hex>", where, d.Digest)
	}
	if d.Size < 0 || d.Size > MaxBlobSize {
		return malformed("%s: %s: size %d out of range 0..%d", where, d.Digest, d.Size, int64(MaxBlobSize))
	}
	if d.MediaType == "" {
		return malformed("%s: %s: missing mediaType", where, d.Digest)
	}
	return nil
}

// parseNode checks raw is unambiguous JSON and decodes the fields airlock reads.
func parseNode(d Descriptor, raw []byte) (*ociNode, *rootManifest, error) {
	n, root, err := decodeNode(d, raw)
	if err != nil {
		return nil, nil, err
	}
	return n, root, checkNode(d, n)
}

// decodeNode decodes a manifest or index once, as ociNode and (when it
// decodes as one) as rootManifest; see decodeBoth.
func decodeNode(d Descriptor, raw []byte) (*ociNode, *rootManifest, error) {
	// A manifest in the plain form airlock and registries write is checked
	// and decoded in one pass; anything else is checked by strictjson.
	if u, ok := fastDecodeUnion(raw, true); ok {
		n, root := splitUnion(u)
		return n, root, nil
	}
	if err := strictjson.Check(raw); err != nil {
		return nil, nil, malformed("manifest %s: %w", d.Digest, err)
	}
	if n, root := decodeBoth(raw); n != nil {
		return n, root, nil
	}
	var n ociNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, nil, malformed("manifest %s: %v", d.Digest, err)
	}
	return &n, nil, nil
}

// checkNode checks what a manifest or index says about itself.
func checkNode(d Descriptor, n *ociNode) error {
	if n.MediaType == "" && helmManifest(d, n) {
		n.MediaType = d.MediaType // Helm writes none; see helmManifest
	}
	if n.MediaType == "" {
		return malformed("manifest %s: no mediaType member (its descriptor says %q; a manifest must state its own media type)", d.Digest, d.MediaType)
	}
	if n.MediaType != d.MediaType {
		return malformed("manifest %s: mediaType %q inside differs from %q in its descriptor", d.Digest, clip(n.MediaType), d.MediaType)
	}
	if n.SchemaVersion != 2 {
		return fmt.Errorf("manifest %s: %w: schemaVersion %d (only schema 2 is carried)", d.Digest, ErrUnsupportedMediaType, n.SchemaVersion)
	}
	if IsIndex(d.MediaType) && (n.Config != nil || len(n.Layers) > 0) || IsManifest(d.MediaType) && len(n.Manifests) > 0 {
		return malformed("manifest %s: mixes index and manifest fields", d.Digest)
	}
	return nil
}

// Walk reads and checks the tree below root, whose exact bytes are raw.
// filter, when not empty, keeps only the matching platforms of a root index
// and rewrites it (see filterIndex; docs/format.md §10).
func Walk(ctx context.Context, root Descriptor, raw []byte, src ContentSource, filter []string) (*Graph, error) {
	g := &Graph{}
	if len(filter) > 0 && IsIndex(root.MediaType) {
		var err error
		if raw, err = filterIndex(root, raw, filter); err != nil {
			return nil, err
		}
		root = Descriptor{MediaType: root.MediaType, Digest: checked.Digest(raw), Size: int64(len(raw))}
	}
	g.Root = root
	seen := map[string]bool{}
	plats := map[string]bool{}
	// A node met again is not walked again, so that a graph that names
	// the same child many times costs its size, not the number of paths
	// to each node: an index again at the same depth is skipped (at
	// another depth it is walked, the depth limit applying there); a
	// manifest again only has its config checked against the platform
	// its new parent entry claims.
	indexAt := map[string]bool{}    // media type, digest and depth of the indexes walked
	configOf := map[string][]byte{} // media type and digest of the manifests walked -> config
	// plat is the platform the parent index claims for d, nil for none.
	var visit func(d Descriptor, raw []byte, depth int, plat *ociPlatform) error
	visit = func(d Descriptor, raw []byte, depth int, plat *ociPlatform) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if depth > MaxIndexDepth {
			return overLimit("manifest %s: indexes nested deeper than %d", d.Digest, MaxIndexDepth)
		}
		if cfg, ok := configOf[d.MediaType+" "+d.Digest]; ok && depth > 0 {
			return samePlatform(d.Digest, plat, cfg)
		}
		if key := fmt.Sprintf("%s %s@%d", d.MediaType, d.Digest, depth); IsIndex(d.MediaType) && depth > 0 {
			if indexAt[key] {
				return nil
			}
			indexAt[key] = true
		}
		n, root, err := parseNode(d, raw)
		if err != nil {
			return err
		}
		if depth == 0 && root != nil {
			g.root, g.rootDecoded = root, true
		}
		if !seen[d.Digest] {
			seen[d.Digest] = true
			g.Manifests = append(g.Manifests, Blob{Descriptor: d, Data: raw})
		}
		switch {
		case IsIndex(d.MediaType):
			if len(n.Manifests) > MaxFanOut {
				return overLimit("index %s: %d children exceed %d", d.Digest, len(n.Manifests), MaxFanOut)
			}
			for _, c := range n.Manifests {
				if err := checkDescriptor("index "+d.Digest, c); err != nil {
					return err
				}
				if !IsIndex(c.MediaType) && !IsManifest(c.MediaType) {
					return fmt.Errorf("index %s: child %s: %w %q", d.Digest, c.Digest, ErrUnsupportedMediaType, c.MediaType)
				}
				if c.Size > MaxManifestSize {
					return overLimit("manifest %s: %d bytes exceed %d", c.Digest, c.Size, MaxManifestSize)
				}
				if c.Platform != nil && depth == 0 {
					plats[c.Platform.String()] = true
				}
				cd := Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: c.Size}
				child, err := src.Manifest(ctx, cd)
				if err != nil {
					return err
				}
				if err := visit(cd, child, depth+1, c.Platform); err != nil {
					return err
				}
			}
		case IsManifest(d.MediaType):
			if n.Config == nil {
				return malformed("manifest %s: no config", d.Digest)
			}
			if err := checkDescriptor("manifest "+d.Digest, *n.Config); err != nil {
				return err
			}
			if n.Config.Size > MaxConfigSize {
				return overLimit("manifest %s: config %s: %d bytes exceed %d", d.Digest, n.Config.Digest, n.Config.Size, MaxConfigSize)
			}
			if len(n.Layers) > MaxFanOut {
				return overLimit("manifest %s: %d layers exceed %d", d.Digest, len(n.Layers), MaxFanOut)
			}
			cd := Descriptor{MediaType: n.Config.MediaType, Digest: n.Config.Digest, Size: n.Config.Size}
			cfg, err := src.Config(ctx, cd)
			if err != nil {
				return err
			}
			if !seen[cd.Digest] {
				seen[cd.Digest] = true
				g.Configs = append(g.Configs, Blob{Descriptor: cd, Data: cfg})
			}
			configOf[d.MediaType+" "+d.Digest] = cfg
			if err := samePlatform(d.Digest, plat, cfg); err != nil {
				return err
			}
			if depth == 0 {
				if p := imagePlatform(cfg); p != "" {
					plats[p] = true
				}
			}
			for _, l := range n.Layers {
				if err := checkDescriptor("manifest "+d.Digest, l); err != nil {
					return err
				}
				g.Layers = append(g.Layers, Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
			}
		default:
			return fmt.Errorf("%s: %w %q", d.Digest, ErrUnsupportedMediaType, d.MediaType)
		}
		return nil
	}
	if err := visit(root, raw, 0, nil); err != nil {
		return nil, err
	}
	for p := range plats {
		if p != "unknown/unknown" {
			g.Platforms = append(g.Platforms, p)
		}
	}
	sort.Strings(g.Platforms)
	return g, nil
}

// samePlatform refuses a manifest whose image config names another
// platform than the index entry that points at it: the platform an index
// offers is a fact about the content, not a label. A config without os and
// architecture (an attestation, a non-image artifact) is not compared; a
// variant is compared when both name one.
func samePlatform(digest string, claimed *ociPlatform, cfg []byte) error {
	if claimed == nil {
		return nil
	}
	var p configPlatform
	if json.Unmarshal(cfg, &p) != nil || p.OS == "" || p.Architecture == "" {
		return nil
	}
	if p.OS != claimed.OS || p.Architecture != claimed.Architecture || (p.Variant != "" && claimed.Variant != "" && p.Variant != claimed.Variant) {
		return malformed("manifest %s: its index entry says platform %s, its image config says %s", digest, claimed, (&ociPlatform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}).String())
	}
	return nil
}

// imagePlatform reads os/arch[/variant] from an image config, "" when absent.
func imagePlatform(cfg []byte) string {
	var p configPlatform
	if json.Unmarshal(cfg, &p) != nil || p.OS == "" || p.Architecture == "" {
		return ""
	}
	return (&ociPlatform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}).String()
}

// filterIndex returns a new index that keeps only the entries matching one of
// the wanted platforms. Every other field and every kept entry is carried
// unchanged; the result is compact JSON with sorted top-level keys. Each wanted
// platform must be offered.
func filterIndex(root Descriptor, raw []byte, want []string) ([]byte, error) {
	if err := strictjson.Check(raw); err != nil {
		return nil, malformed("index %s: %v", root.Digest, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, malformed("index %s: %v", root.Digest, err)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(top["manifests"], &entries); err != nil {
		return nil, malformed("index %s: manifests: %v", root.Digest, err)
	}
	var kept []json.RawMessage
	found := map[string]bool{}
	var offered []string
	for _, e := range entries {
		var d ociDescriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, malformed("index %s: %v", root.Digest, err)
		}
		if d.Platform != nil {
			offered = append(offered, d.Platform.String())
		}
		for _, w := range want {
			if d.Platform.matches(w) {
				kept = append(kept, e)
				found[w] = true
				break
			}
		}
	}
	for _, w := range want {
		if !found[w] {
			return nil, fmt.Errorf("platform %s is not offered by index %s (it offers %s); fix platforms: in airlock.yaml", w, root.Digest, strings.Join(offered, ", "))
		}
	}
	if len(kept) == len(entries) {
		return raw, nil // nothing dropped: keep the index and its digest
	}
	list, err := marshalNoEscape(kept)
	if err != nil {
		return nil, err
	}
	top["manifests"] = list
	return marshalNoEscape(top)
}

// marshalNoEscape is json.Marshal without HTML escaping and without the trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// helmManifest reports whether n is a Helm chart manifest as Helm itself
// pushes it: an OCI image manifest (by its descriptor) whose config is
// Helm's chart config and that lists no manifests. Helm omits the
// manifest's own mediaType, and a chart is carried byte for byte (its digest
// is pinned), so for this one shape the descriptor's media type stands in
// for the missing member; every other manifest must state its own.
func helmManifest(d Descriptor, n *ociNode) bool {
	return d.MediaType == MediaTypeOCIManifest && n.Config != nil && n.Config.MediaType == MediaTypeHelmConfig && len(n.Manifests) == 0
}
