package bundle

import "encoding/json"

// Reading a head with thousands of artifacts decoded each artifact's root
// manifest four times (Walk, checkClaims, installFiles, checkAnnotations),
// which was most of the time the reader took. decodeBoth decodes it once
// into the union of the fields the four read. Decoding the same bytes into
// a struct with a subset of the same fields (same names, same types)
// succeeds whenever decoding into the union does, with the same values; the
// manifest has passed strictjson.Check, so no key is repeated. When the
// union does not decode (a member of the wrong JSON type), each reader
// decodes just what it needs as before, and so keeps its own error.

// rootManifest is what checkClaims, installFiles and checkAnnotations read
// from an artifact's root manifest.
type rootManifest struct {
	artifactManifest
	Annotations map[string]string `json:"annotations"`
}

// nodeUnion holds the fields of ociNode and of rootManifest.
type nodeUnion struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *ociDescriptor    `json:"config"`
	Subject       *ociDescriptor    `json:"subject"`
	Layers        []unionLayer      `json:"layers"`
	Manifests     []ociDescriptor   `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

type unionLayer struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations"`
}

// decodeBoth decodes raw as an ociNode and a rootManifest at once, or
// returns nil, nil when raw does not decode as their union.
func decodeBoth(raw []byte) (*ociNode, *rootManifest) {
	u, ok := fastDecodeUnion(raw, false)
	if !ok {
		u = &nodeUnion{}
		if json.Unmarshal(raw, u) != nil {
			return nil, nil
		}
	}
	return splitUnion(u)
}

// splitUnion gives the two decodings of a manifest decoded as nodeUnion.
func splitUnion(u *nodeUnion) (*ociNode, *rootManifest) {
	n := &ociNode{SchemaVersion: u.SchemaVersion, MediaType: u.MediaType, Config: u.Config, Manifests: u.Manifests}
	r := &rootManifest{Annotations: u.Annotations}
	r.ArtifactType, r.Subject = u.ArtifactType, u.Subject
	if u.Config != nil {
		c := *u.Config // two copies, as two decodings would give
		r.Config = &c
	}
	if u.Layers != nil {
		n.Layers = make([]ociDescriptor, len(u.Layers))
		r.Layers = make([]artifactLayer, len(u.Layers))
		for i, l := range u.Layers {
			n.Layers[i] = ociDescriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, Platform: l.Platform}
			r.Layers[i] = artifactLayer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, Annotations: l.Annotations}
		}
	}
	return n, r
}

// decodedRoot returns g's root manifest decoded as a rootManifest, or nil
// when it does not decode as one. Walk fills it in from decodeBoth; when
// that failed, it is decoded here, once per graph.
func (g *Graph) decodedRoot() *rootManifest {
	if !g.rootDecoded && len(g.Manifests) > 0 {
		g.rootDecoded = true
		var m rootManifest
		if json.Unmarshal(g.Manifests[0].Data, &m) == nil {
			g.root = &m
		}
	}
	return g.root
}
