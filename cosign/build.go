package cosign

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/internal/checked"
)

// SignatureTag is the tag cosign stores an image's signatures under:
// "sha256-<hex>.sig" for the image digest "sha256:<hex>".
func SignatureTag(imageDigest string) string {
	return "sha256-" + strings.TrimPrefix(imageDigest, "sha256:") + ".sig"
}

// simpleSigning is the payload cosign signs for a container image.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]string `json:"optional"`
}

// NewPayload builds the simple-signing payload for the image at
// dockerReference (a repository) with digest imageDigest.
func NewPayload(dockerReference, imageDigest string) ([]byte, error) {
	var p simpleSigning
	p.Critical.Identity.DockerReference = dockerReference
	p.Critical.Image.DockerManifestDigest = imageDigest
	p.Critical.Type = TypeContainerImage
	return json.Marshal(p)
}

// Layer is one signature layer of a signature manifest.
type Layer struct {
	MediaType   string            `json:"mediaType"`
	Size        int64             `json:"size"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Layers reads the layers of a signature manifest without judging them
// (Parse judges); it is for rebuilding a manifest with one more layer.
func Layers(manifest []byte) ([]Layer, error) {
	var m struct {
		Layers []Layer `json:"layers"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m.Layers, nil
}

// Built is a signature manifest ready to push: the manifest, and the blobs
// it references that must be pushed first.
type Built struct {
	Manifest []byte
	// Payload and Config are the new payload blob and the config blob.
	Payload, Config         []byte
	PayloadDesc, ConfigDesc Descriptor
}

// AppendSignature returns the signature manifest existing (nil for none)
// with one more layer: payload signed by sig, annotated with extra. Every
// other member and layer of existing is kept; the config is rebuilt to list
// the layers, as cosign does.
func AppendSignature(existing, payload, sig []byte, extra map[string]string) (*Built, error) {
	manifest := map[string]json.RawMessage{}
	var layers []Layer
	if existing != nil {
		if err := json.Unmarshal(existing, &manifest); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		var err error
		if layers, err = Layers(existing); err != nil {
			return nil, err
		}
	} else {
		manifest["schemaVersion"] = json.RawMessage(`2`)
		manifest["mediaType"] = json.RawMessage(`"` + mediaTypeOCIManifest + `"`)
	}
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	for k, v := range extra {
		ann[k] = v
	}
	b := &Built{Payload: payload, PayloadDesc: Descriptor{MediaType: MediaTypeSimpleSigning, Digest: checked.Digest(payload), Size: int64(len(payload))}}
	layers = append(layers, Layer{MediaType: MediaTypeSimpleSigning, Size: b.PayloadDesc.Size, Digest: b.PayloadDesc.Digest, Annotations: ann})
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, err
	}
	b.Config = cfg
	b.ConfigDesc = Descriptor{MediaType: mediaTypeOCIConfig, Digest: checked.Digest(cfg), Size: int64(len(cfg))}
	if manifest["config"], err = json.Marshal(b.ConfigDesc); err != nil {
		return nil, err
	}
	if manifest["layers"], err = json.Marshal(layers); err != nil {
		return nil, err
	}
	if b.Manifest, err = json.Marshal(manifest); err != nil {
		return nil, err
	}
	return b, nil
}
