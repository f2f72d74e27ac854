package keyless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// MaxUpstreamBytes bounds the signature blobs read for one bundle (16 MiB).
const MaxUpstreamBytes = 16 << 20

// Checker re-verifies on the isolated side the upstream signatures a
// policy rule requires (bundles[].images), offline, from the attachments
// the bundle carries: keyless ones against the trusted root the policy
// pins, and key-based cosign signatures (keys entries) with the policy's
// keys. Its Check method is a verify.UpstreamVerifier. The identity, the
// keys and the root are the policy's, never the packer's.
type Checker struct {
	// Path is the bundle file. The signature manifests are in the signed
	// head; the few small signature blobs (Sigstore bundles, cosign
	// payloads) are in the body, so Check reads the file once up to the
	// last of them, taking each only by the digest the head lists.
	Path string
}

// image is one image a rule applies to.
type image struct {
	art  bundle.Artifact
	rule *policy.ImageRule
	atts []Attachment
}

// Check implements verify.UpstreamVerifier.
func (c *Checker) Check(ctx context.Context, h *bundle.Head, rule *policy.Rule) ([]verify.UpstreamCheck, error) {
	var imgs []image
	want := map[string]int64{}
	var total int64
	for _, a := range h.Manifest.Artifacts {
		if a.Kind != bundle.KindImage {
			continue
		}
		ir := rule.ImageRuleFor(a.Ref)
		if ir == nil {
			continue
		}
		im := image{art: a, rule: ir}
		if k := ir.Keyless; k != nil && k.Root == nil {
			// A root the bundle carries, taken only by the pinned digest.
			for _, d := range h.Body {
				if d.Digest == k.RootDigest && d.Size > 0 && d.Size <= MaxRootSize && want[d.Digest] == 0 {
					if total += d.Size; total > MaxUpstreamBytes {
						return nil, fmt.Errorf("upstream signature blobs exceed %d bytes", MaxUpstreamBytes)
					}
					want[d.Digest] = d.Size
				}
			}
		}
		for _, at := range h.Manifest.Artifacts {
			if at.Kind != bundle.KindAttachment || at.SubjectDigest != a.Digest {
				continue
			}
			raw, ok := h.Blobs[at.Digest]
			if !ok {
				continue
			}
			im.atts = append(im.atts, Attachment{Subject: at.SubjectDigest, Root: at.Descriptor, Raw: raw, ArtifactType: at.ArtifactType, Tag: at.Tag})
			for _, l := range signatureLayers(at, raw) {
				if _, inHead := h.Blobs[l.Digest]; inHead || want[l.Digest] != 0 {
					continue
				}
				if total += l.Size; total > MaxUpstreamBytes {
					return nil, fmt.Errorf("upstream signature blobs exceed %d bytes", MaxUpstreamBytes)
				}
				want[l.Digest] = l.Size
			}
		}
		imgs = append(imgs, im)
	}
	blobs, err := c.read(ctx, h, want)
	if err != nil {
		return nil, err
	}
	get := func(_ context.Context, d bundle.Descriptor) ([]byte, error) {
		if b, ok := h.Blobs[d.Digest]; ok {
			return b, nil
		}
		if b, ok := blobs[d.Digest]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("blob %s is not in the bundle", d.Digest)
	}
	out := make([]verify.UpstreamCheck, 0, len(imgs))
	for _, im := range imgs {
		out = append(out, c.checkImage(ctx, im, get, blobs))
	}
	return out, nil
}

func (c *Checker) checkImage(ctx context.Context, im image, get BlobFunc, blobs map[string][]byte) verify.UpstreamCheck {
	res := verify.UpstreamCheck{Image: im.art.Ref, Digest: im.art.Digest, Rule: im.rule.Index, Match: im.rule.Match}
	k := im.rule.Keyless
	if im.art.Filtered {
		res.Reason = "the image was packed with a platform filter, so the bundle lacks the source index its upstream signature covers; pack it without platforms: to re-verify it here"
		return res
	}
	if k == nil {
		return checkKeys(ctx, im, get, res)
	}
	source, rootBytes := k.RootFile, k.Root
	if rootBytes == nil {
		source = "carried in the bundle as " + k.RootDigest
		if rootBytes = blobs[k.RootDigest]; rootBytes == nil {
			res.Reason = fmt.Sprintf("the policy pins trusted root %s (trustedRootSHA256), and the bundle carries no trusted root with that digest", k.RootDigest)
			return res
		}
	}
	r, err := ParseRoot(source, rootBytes, k.RootDigest)
	if err != nil {
		res.Reason = err.Error()
		return res
	}
	id := Identity{Issuer: k.Issuer, Subject: k.Subject, SubjectRegExp: k.SubjectRegExp}
	m, err := VerifyImage(ctx, r, id, im.art.Ref, im.art.Digest, im.atts, get)
	if err != nil {
		var ie *ImageError
		if errors.As(err, &ie) {
			res.Reason = fmt.Sprintf("%v for %s: ", ie.Err, ie.Identity)
			if len(ie.Reasons) == 0 {
				res.Reason += "the bundle carries no Sigstore bundle referrer and no cosign signature tag with a certificate for it"
			} else {
				res.Reason += strings.Join(ie.Reasons, "; ")
			}
		} else {
			res.Reason = err.Error()
		}
		return res
	}
	res.OK = true
	res.Form, res.Attachment, res.Issuer, res.Subject = m.Form, m.Attachment, m.Issuer, m.Subject
	res.TrustedRoot, res.LogIndex, res.IntegratedTime = m.TrustedRoot, m.LogIndex, m.IntegratedTime
	return res
}

// signatureLayers lists the blobs a keyless check may read from an
// attachment: Sigstore bundle layers of a referrer, payload layers of a
// cosign signature tag; each bounded.
func signatureLayers(at bundle.Artifact, raw []byte) []bundle.Descriptor {
	var out []bundle.Descriptor
	switch {
	case at.Tag != "" && strings.HasSuffix(at.Tag, ".sig"):
		sigs, err := cosign.Parse(raw)
		if err != nil {
			return nil
		}
		for _, s := range sigs {
			out = append(out, bundle.Descriptor(s.Payload))
		}
	case at.Tag == "" && at.ArtifactType == cosign.ArtifactTypeReferrerSignature:
		sigs, err := cosign.Parse(raw)
		if err != nil {
			return nil
		}
		for _, s := range sigs {
			out = append(out, bundle.Descriptor(s.Payload))
		}
	case at.Tag == "" && strings.HasPrefix(at.ArtifactType, mediaTypeBundlePrefix):
		m, err := parseManifest(raw)
		if err != nil {
			return nil
		}
		for _, l := range m.Layers {
			if strings.HasPrefix(l.MediaType, mediaTypeBundlePrefix) && l.Size > 0 && l.Size <= MaxBundleSize {
				out = append(out, l)
			}
		}
	}
	return out
}

// read takes the wanted blobs from the bundle body, each checked against
// its digest, and stops after the last one. The head it reads must be the
// head trust was decided on.
func (c *Checker) read(ctx context.Context, h *bundle.Head, want map[string]int64) (map[string][]byte, error) {
	got := map[string][]byte{}
	if len(want) == 0 {
		return got, nil
	}
	if c.Path == "" || c.Path == "-" {
		return nil, errors.New("the policy's images rules read the upstream signatures in a second pass over the bundle, so it must be a file, not standard input")
	}
	if got, ok, err := c.readFrames(ctx, h, want); ok {
		return got, err
	}
	f, err := bundle.OpenPath(c.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br, err := bundle.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading the upstream signatures from %s: %w", c.Path, err)
	}
	defer br.Close()
	if br.Head().ManifestDigest != h.ManifestDigest {
		return nil, fmt.Errorf("%s changed while it was being verified", c.Path)
	}
	for len(got) < len(want) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the upstream signatures from %s: %w", c.Path, err)
		}
		if size, ok := want[e.Digest]; !ok || size != e.Size {
			continue // not wanted, or not the size its descriptor says (reported by the check that needs it)
		}
		b, err := io.ReadAll(io.LimitReader(e, e.Size+1))
		if err != nil {
			return nil, err
		}
		if err := e.Verify(); err != nil {
			return nil, err
		}
		got[e.Digest] = b
	}
	return got, nil
}

// readFrames reads the wanted blobs of a format v2 bundle (file, volume or
// directory of volumes) by random access: only the frames that hold them
// are read and decompressed, each checked against its signed sha256, and
// each blob against its digest. ok is false for a bundle without a frame
// index (format v1), which read then streams.
func (c *Checker) readFrames(ctx context.Context, h *bundle.Head, want map[string]int64) (got map[string][]byte, ok bool, err error) {
	set, err := bundle.OpenSet(c.Path)
	if err != nil || set.Head.Frames == nil {
		return nil, false, nil
	}
	a, err := bundle.NewArchive(set)
	if err != nil {
		return nil, false, nil
	}
	defer a.Close()
	if a.Head().ManifestDigest != h.ManifestDigest {
		return nil, true, fmt.Errorf("%s changed while it was being verified", c.Path)
	}
	got = map[string][]byte{}
	for d, size := range want {
		if bd, ok := a.Lookup(d); !ok || bd.Size != size {
			continue // not in the bundle as its descriptor says: reported by the check that needs it
		}
		r, err := a.Open(ctx, d, 0, -1)
		if err != nil {
			return nil, true, fmt.Errorf("reading the upstream signatures from %s: %w", c.Path, err)
		}
		b, err := io.ReadAll(io.LimitReader(r, size+1))
		r.Close()
		if err != nil {
			return nil, true, fmt.Errorf("reading the upstream signature blob %s from %s: %w", d, c.Path, err)
		}
		got[d] = b
	}
	return got, true, nil
}

// checkKeys accepts the image when a cosign signature attached to it (a
// .sig tag or a cosign signature referrer) verifies with one of the rule's
// policy keys and its payload names the image digest (cosign.Verify).
func checkKeys(ctx context.Context, im image, get BlobFunc, res verify.UpstreamCheck) verify.UpstreamCheck {
	sigTag := cosign.SignatureTag(im.art.Digest)
	var reasons []string
	for _, at := range im.atts {
		if at.Tag != sigTag && !(at.Tag == "" && at.ArtifactType == cosign.ArtifactTypeReferrerSignature) {
			continue
		}
		sigs, err := cosign.Parse(at.Raw)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("attachment %s: %v", at.Root.Digest, err))
			continue
		}
		for i, s := range sigs {
			payload, err := get(ctx, bundle.Descriptor(s.Payload))
			if err != nil {
				reasons = append(reasons, fmt.Sprintf("attachment %s layer %d: %v", at.Root.Digest, i, err))
				continue
			}
			for n, pk := range im.rule.PublicKeys {
				v, err := pk.Verifier()
				if err != nil {
					continue
				}
				if err := cosign.Verify(payload, s.Signature, im.art.Digest, v); err != nil {
					reasons = append(reasons, fmt.Sprintf("attachment %s layer %d, key %s: %v", at.Root.Digest, i, im.rule.Keys[n], err))
					continue
				}
				res.OK, res.Form, res.Attachment, res.Subject = true, "cosign-key", at.Root.Digest, "key "+im.rule.Keys[n]+" ("+pk.Fingerprint+")"
				return res
			}
		}
	}
	res.Reason = fmt.Sprintf("no cosign signature by %s: ", strings.Join(im.rule.Keys, ", "))
	if len(reasons) == 0 {
		res.Reason += "the bundle carries no cosign signature (.sig tag or signature referrer) for it"
	} else {
		res.Reason += strings.Join(reasons, "; ")
	}
	return res
}
