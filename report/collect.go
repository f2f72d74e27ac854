package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/sbom"
)

// Collector keeps the SBOM documents of a bundle as the one verification
// pass reads them, for the report's component lists. It plugs into
// verify.Options (Trusted and Blob), so it sees content only after trust
// was decided, and only bytes that matched their signed digests. Each
// document is kept in memory up to sbom.MaxSize; larger ones are checked
// and dropped (the report says so).
type Collector struct {
	// Progress receives the bytes of every body blob; nil reports nothing.
	Progress bundle.Progress

	docs   []*doc
	byBlob map[string][]*doc
}

// doc is one SBOM document of the bundle.
type doc struct {
	artifact int
	a        bundle.Artifact
	layer    bundle.Descriptor
	path     string
	data     []byte
	note     string // why data is missing
}

// Trusted is the verify.Options.Trusted hook: it lists the SBOM documents
// (SBOM artifacts, and upstream attachments typed as SPDX or CycloneDX)
// and takes those the head stores.
func (c *Collector) Trusted(_ context.Context, h *bundle.Head) error {
	c.byBlob = map[string][]*doc{}
	for i, a := range h.Manifest.Artifacts {
		if !a.IsSBOM() || a.MediaType != bundle.MediaTypeOCIManifest {
			continue
		}
		raw, ok := h.Blobs[a.Digest]
		if !ok {
			continue
		}
		var m struct {
			Layers []struct {
				bundle.Descriptor
				Annotations map[string]string `json:"annotations"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			continue // the reader walked this manifest; it parses
		}
		for _, l := range m.Layers {
			if !checked.ValidDigest(l.Digest) {
				continue
			}
			if a.Kind == bundle.KindAttachment && !sbomMediaType(l.MediaType) && !sbomMediaType(a.ArtifactType) {
				continue
			}
			d := &doc{artifact: i, a: a, layer: l.Descriptor, path: l.Annotations[bundle.AnnotationTitle]}
			switch {
			case l.Size > sbom.MaxSize:
				d.note = fmt.Sprintf("the document is %d bytes, more than the %d bytes the report reads", l.Size, sbom.MaxSize)
			case h.Blobs[l.Digest] != nil:
				d.data = h.Blobs[l.Digest]
			default:
				c.byBlob[l.Digest] = append(c.byBlob[l.Digest], d)
				d.note = "the body was not read (head only)"
			}
			c.docs = append(c.docs, d)
		}
	}
	return nil
}

// Blob is the verify.Options.Blob hook: it keeps the SBOM documents and
// reads every other blob to its end (which checks it).
func (c *Collector) Blob(ctx context.Context, e *bundle.BodyEntry) error {
	r := bundle.WithProgress(e, c.Progress, e.Digest)
	want := c.byBlob[e.Digest]
	if len(want) == 0 {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(r, sbom.MaxSize+1)); err != nil {
		for _, d := range want {
			d.note = "the document did not match its signed digest"
		}
		return err
	}
	if buf.Len() > sbom.MaxSize {
		for _, d := range want {
			d.note = "the document is larger than the report reads"
		}
		_, err := io.Copy(io.Discard, r)
		return err
	}
	// Reading to the end checked the digest: the bytes are the signed ones.
	for _, d := range want {
		d.data, d.note = buf.Bytes(), ""
	}
	return ctx.Err()
}

// sboms parses the collected documents, in bundle order.
func (c *Collector) sboms() []SBOM {
	out := []SBOM{}
	if c == nil {
		return out
	}
	for _, d := range c.docs {
		s := SBOM{
			Artifact: d.artifact, Name: d.a.Describe(), Kind: d.a.Kind, Subject: d.a.Subject, SubjectDigest: d.a.SubjectDigest,
			Path: d.path, Digest: d.layer.Digest, Size: d.layer.Size, MediaType: d.layer.MediaType, Recorded: d.a.SBOM,
		}
		if d.data == nil {
			s.NotListed = d.note
		} else if inv, err := sbom.List(d.path, d.data); err != nil {
			s.NotListed = err.Error()
		} else {
			sort.SliceStable(inv.Components, func(i, j int) bool {
				return strings.ToLower(inv.Components[i].Name) < strings.ToLower(inv.Components[j].Name)
			})
			s.Inventory = inv
		}
		out = append(out, s)
	}
	return out
}

func sbomMediaType(t string) bool {
	return strings.Contains(t, "spdx") || strings.Contains(t, "cyclonedx")
}
