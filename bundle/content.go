package bundle

import "context"

// Blob is a manifest or config held in the head, with its exact bytes.
type Blob struct {
	Descriptor
	Data []byte
}

// Content is what one artifact consists of, as consumers need it to copy
// the artifact elsewhere (a registry, an install root).
type Content struct {
	// Manifests are the artifact's manifests and indexes, children before
	// the parents that reference them; the last one is the root.
	Manifests []Blob
	// Configs are the config blobs, all stored in the head.
	Configs []Blob
	// Layers are the layer blobs in manifest order (repeats removed). Those
	// not stored in the head arrive in the body.
	Layers []Descriptor
}

// Content returns the content tree of artifact i of the bundle manifest,
// from the head's verified blobs.
func (h *Head) Content(i int) (*Content, error) {
	if i < 0 || i >= len(h.Manifest.Artifacts) {
		return nil, malformed("no artifact %d", i)
	}
	a := h.Manifest.Artifacts[i]
	raw, ok := h.Blobs[a.Digest]
	if !ok {
		return nil, malformed("artifact %d: manifest %s is not in the head", i, a.Digest)
	}
	g, err := Walk(context.Background(), a.Descriptor, raw, headContent(h.Blobs), nil)
	if err != nil {
		return nil, err
	}
	c := &Content{}
	// walk lists the root first and children depth-first after their
	// parent; reversed, every child precedes its parent.
	for j := len(g.Manifests) - 1; j >= 0; j-- {
		c.Manifests = append(c.Manifests, Blob{Descriptor: g.Manifests[j].Descriptor, Data: g.Manifests[j].Data})
	}
	for _, cf := range g.Configs {
		c.Configs = append(c.Configs, Blob{Descriptor: cf.Descriptor, Data: cf.Data})
	}
	seen := map[string]bool{}
	for _, l := range g.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			c.Layers = append(c.Layers, l)
		}
	}
	return c, nil
}
