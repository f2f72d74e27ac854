// Package referrer reads what the OCI referrers API needs from a manifest:
// its subject and the descriptor a referrers list shows for it (the
// artifactType, or the config media type of an image manifest). The
// registry airlock serves and the mirror that maintains the referrers tag
// on registries without the API read manifests the same way.
package referrer

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// HeaderSubject is the response header by which a registry tells a
	// client that pushed a manifest with a subject that it indexed it for
	// the referrers API.
	HeaderSubject = "OCI-Subject"
	// MaxManifestSize is the largest manifest Parse reads (the limit
	// registries use).
	MaxManifestSize = 4 << 20
)

// Info is what a referrers list needs from one manifest. A zero Subject
// means the manifest refers to nothing.
type Info struct {
	Subject digest.Digest
	Desc    v1.Descriptor
}

// fields are the manifest fields the referrers API reports.
type fields struct {
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
	Annotations map[string]string `json:"annotations"`
}

// Parse reads the subject and the referrers descriptor of the
// manifest payload whose digest is d. storedType is the media type the
// registry reported for it. The artifact type is the manifest's
// artifactType, or else (image manifests only) its config media type.
func Parse(d digest.Digest, storedType string, payload []byte) (Info, error) {
	if len(payload) > MaxManifestSize {
		return Info{}, fmt.Errorf("manifest of %d bytes is larger than %d", len(payload), MaxManifestSize)
	}
	var f fields
	if err := json.Unmarshal(payload, &f); err != nil {
		return Info{}, err
	}
	if f.Subject == nil {
		return Info{}, nil
	}
	subject, err := digest.Parse(f.Subject.Digest)
	if err != nil {
		return Info{}, nil // a subject we cannot match is no subject
	}
	mediaType := f.MediaType
	if mediaType == "" {
		mediaType = storedType
	}
	artifactType := f.ArtifactType
	if artifactType == "" && f.Config != nil && mediaType != v1.MediaTypeImageIndex {
		artifactType = f.Config.MediaType
	}
	return Info{
		Subject: subject,
		Desc: v1.Descriptor{
			MediaType:    mediaType,
			Digest:       d,
			Size:         int64(len(payload)),
			ArtifactType: artifactType,
			Annotations:  f.Annotations,
		},
	}, nil
}

// SubjectOf returns the subject digest of a manifest body, or "" when it
// has none (or is not JSON).
func SubjectOf(body []byte) string {
	var f struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if json.Unmarshal(body, &f) != nil || f.Subject == nil {
		return ""
	}
	d, err := digest.Parse(f.Subject.Digest)
	if err != nil {
		return ""
	}
	return d.String()
}
