package cosign

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Names cosign uses in signature manifests and payloads.
const (
	// MediaTypeSimpleSigning is the media type of a signature layer.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// AnnotationSignature is the layer annotation holding the base64 signature.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// TypeContainerImage is the critical.type of a container image signature.
	TypeContainerImage = "cosign container image signature"
)

// Limits. Cosign writes payloads of a few hundred bytes and one layer per
// signature; the limits leave ample room and bound what an attacker can make
// a reader hold.
const (
	// MaxManifestSize bounds the signature manifest Parse reads.
	MaxManifestSize = 4 << 20
	// MaxSignatures bounds the layers (signatures) of one signature manifest.
	MaxSignatures = 64
	// MaxPayloadSize bounds a payload: Parse refuses a layer that declares
	// more, and Verify a payload that is longer.
	MaxPayloadSize = 256 << 10
	// MaxSignatureSize bounds a decoded signature (an RSA-4096 signature is
	// 512 bytes, an ECDSA P-521 one at most 139).
	MaxSignatureSize = 4096
)

// Signature is one signature layer of a cosign signature manifest.
type Signature struct {
	// Payload is the layer: media type MediaTypeSimpleSigning, the digest
	// and size of the payload blob the caller fetches and checks.
	Payload Descriptor
	// Signature is decoded from the layer annotation AnnotationSignature.
	Signature []byte
}

// Parse reads the layers of a cosign signature manifest (exact bytes). It
// returns one Signature per layer, in layer order, or a *ParseError: the
// manifest must be strict JSON (no duplicate keys, no trailing data), an
// image manifest with 1 to MaxSignatures layers, each of media type
// MediaTypeSimpleSigning with a sha256 digest, a size from 1 to
// MaxPayloadSize and a base64 signature of at most MaxSignatureSize bytes.
// Keys are matched exactly (encoding/json would also fill "layers" from
// "LAYERS"). Other members (config, subject, annotations) are not read.
func Parse(manifest []byte) ([]Signature, error) {
	if len(manifest) > MaxManifestSize {
		return nil, &ParseError{Layer: -1, Err: fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(manifest), MaxManifestSize)}
	}
	if err := strictjson.Check(manifest); err != nil {
		return nil, &ParseError{Layer: -1, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(manifest, &top); err != nil {
		return nil, &ParseError{Layer: -1, Err: fmt.Errorf("%w: not a JSON object", ErrMalformed)}
	}
	if raw, ok := top["mediaType"]; ok {
		var mt string
		if err := json.Unmarshal(raw, &mt); err != nil || (mt != mediaTypeOCIManifest && mt != mediaTypeDockerV2) {
			return nil, &ParseError{Layer: -1, Field: "mediaType", Err: fmt.Errorf("%w: not an image manifest", ErrMalformed)}
		}
	}
	var layers []json.RawMessage
	if err := decodeMember(top, "layers", &layers); err != nil {
		return nil, &ParseError{Layer: -1, Field: "layers", Err: err}
	}
	switch {
	case len(layers) == 0:
		return nil, &ParseError{Layer: -1, Field: "layers", Err: fmt.Errorf("%w: no signature layers", ErrMalformed)}
	case len(layers) > MaxSignatures:
		return nil, &ParseError{Layer: -1, Field: "layers", Err: fmt.Errorf("%w: %d layers, more than %d", ErrTooLarge, len(layers), MaxSignatures)}
	}
	sigs := make([]Signature, 0, len(layers))
	for i, raw := range layers {
		s, err := parseLayer(raw)
		if err != nil {
			err.Layer = i
			return nil, err
		}
		sigs = append(sigs, s)
	}
	return sigs, nil
}

// parseLayer reads one signature layer descriptor.
func parseLayer(raw json.RawMessage) (Signature, *ParseError) {
	var layer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &layer); err != nil || layer == nil {
		return Signature{}, &ParseError{Err: fmt.Errorf("%w: not a JSON object", ErrMalformed)}
	}
	var d Descriptor
	if err := decodeMember(layer, "mediaType", &d.MediaType); err != nil {
		return Signature{}, &ParseError{Field: "mediaType", Err: err}
	}
	if d.MediaType != MediaTypeSimpleSigning {
		return Signature{}, &ParseError{Field: "mediaType", Err: fmt.Errorf("%w: %q, want %q", ErrMalformed, clip(d.MediaType), MediaTypeSimpleSigning)}
	}
	if err := decodeMember(layer, "digest", &d.Digest); err != nil {
		return Signature{}, &ParseError{Field: "digest", Err: err}
	}
	if !checked.ValidDigest(d.Digest) {
		return Signature{}, &ParseError{Field: "digest", Err: fmt.Errorf("%w: %q is not sha256:<64 lowercase hex>", ErrMalformed, clip(d.Digest))}
	}
	if err := decodeMember(layer, "size", &d.Size); err != nil {
		return Signature{}, &ParseError{Field: "size", Err: err}
	}
	switch {
	case d.Size <= 0:
		return Signature{}, &ParseError{Field: "size", Err: fmt.Errorf("%w: size %d", ErrMalformed, d.Size)}
	case d.Size > MaxPayloadSize:
		return Signature{}, &ParseError{Field: "size", Err: fmt.Errorf("%w: payload of %d bytes, more than %d", ErrTooLarge, d.Size, MaxPayloadSize)}
	}
	var ann map[string]string
	if err := decodeMember(layer, "annotations", &ann); err != nil {
		return Signature{}, &ParseError{Field: "annotations", Err: err}
	}
	field := "annotations." + AnnotationSignature
	b64, ok := ann[AnnotationSignature]
	if !ok || b64 == "" {
		return Signature{}, &ParseError{Field: field, Err: fmt.Errorf("%w: no signature", ErrMalformed)}
	}
	if len(b64) > base64.StdEncoding.EncodedLen(MaxSignatureSize) {
		return Signature{}, &ParseError{Field: field, Err: fmt.Errorf("%w: signature of %d base64 characters, more than %d bytes", ErrTooLarge, len(b64), MaxSignatureSize)}
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return Signature{}, &ParseError{Field: field, Err: fmt.Errorf("%w: not standard base64: %w", ErrMalformed, err)}
	}
	return Signature{Payload: d, Signature: sig}, nil
}

// decodeMember decodes the member named exactly key of obj into v; a
// missing member or one of the wrong JSON type is ErrMalformed.
func decodeMember(obj map[string]json.RawMessage, key string, v any) error {
	raw, ok := obj[key]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return fmt.Errorf("%w: missing", ErrMalformed)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// payloadDoc is the simple signing payload cosign writes. Unknown keys are
// refused everywhere but in optional, which is free-form.
type payloadDoc struct {
	Critical *critical      `json:"critical"`
	Optional map[string]any `json:"optional"`
}

type critical struct {
	Identity *identity `json:"identity"`
	Image    *image    `json:"image"`
	Type     *string   `json:"type"`
}

type identity struct {
	DockerReference string `json:"docker-reference"`
}

type image struct {
	DockerManifestDigest *string `json:"docker-manifest-digest"`
}

// Verify checks payload (the exact layer bytes, already digest-checked by
// the caller) against sig with v, and that the payload's
// critical.image.docker-manifest-digest equals subjectDigest and
// critical.type is TypeContainerImage. The signature is checked first, over
// the exact bytes; only then are those bytes parsed, strictly (see
// internal/strictjson). It returns nil or a *VerifyError wrapping one of
// ErrInvalidArgument, ErrTooLarge, ErrBadSignature, ErrBadPayload,
// ErrWrongType or ErrWrongImage.
//
// The algorithm is the verifier's: load it from the trusted key, for
// example with signature.LoadVerifier(pub, crypto.SHA256).
func Verify(payload, sig []byte, subjectDigest string, v signature.Verifier) error {
	fail := func(err error) error { return &VerifyError{Subject: subjectDigest, Err: err} }
	switch {
	case v == nil:
		return fail(fmt.Errorf("%w: no verifier", ErrInvalidArgument))
	case !checked.ValidDigest(subjectDigest):
		return fail(fmt.Errorf("%w: subject is not sha256:<64 lowercase hex>", ErrInvalidArgument))
	case len(payload) > MaxPayloadSize:
		return fail(fmt.Errorf("%w: payload of %d bytes, more than %d", ErrTooLarge, len(payload), MaxPayloadSize))
	case len(sig) > MaxSignatureSize:
		return fail(fmt.Errorf("%w: signature of %d bytes, more than %d", ErrTooLarge, len(sig), MaxSignatureSize))
	case len(sig) == 0:
		return fail(fmt.Errorf("%w: empty signature", ErrBadSignature))
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrBadSignature, err))
	}
	var doc payloadDoc
	if err := strictjson.Unmarshal(payload, &doc); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrBadPayload, err))
	}
	c := doc.Critical
	switch {
	case c == nil:
		return fail(fmt.Errorf("%w: no critical section", ErrBadPayload))
	case c.Type == nil:
		return fail(fmt.Errorf("%w: no critical.type", ErrBadPayload))
	case c.Image == nil || c.Image.DockerManifestDigest == nil:
		return fail(fmt.Errorf("%w: no critical.image.docker-manifest-digest", ErrBadPayload))
	case *c.Type != TypeContainerImage:
		return fail(fmt.Errorf("%w: critical.type is %q", ErrWrongType, clip(*c.Type)))
	case *c.Image.DockerManifestDigest != subjectDigest:
		return &VerifyError{Subject: subjectDigest, Signed: *c.Image.DockerManifestDigest, Err: ErrWrongImage}
	}
	return nil
}

// Descriptor points at a blob by digest, as in the OCI image spec. It has
// the fields of bundle.Descriptor, so the two convert into each other.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// ArtifactTypeReferrerSignature is the artifact type cosign gives a signature
// it stores as an OCI 1.1 referrer (--registry-referrers-mode=oci-1-1).
const ArtifactTypeReferrerSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"

const (
	mediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerV2    = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeOCIConfig   = "application/vnd.oci.image.config.v1+json"
)
