package pack

import (
	"context"
	"io"

	"github.com/airlock-dev/airlock/bundle"
)

// ImageResolver turns an image reference from airlock.yaml into an
// ImageSource. Package source implements it for registries, OCI layouts and
// docker-archive files; pack itself never touches the network.
type ImageResolver interface {
	Resolve(ctx context.Context, ref string) (ImageSource, error)
}

// ImageSource is one resolved image or index and access to what it references.
// Implementations must be safe for concurrent use.
type ImageSource interface {
	// Root returns the descriptor and exact bytes of the manifest or index the
	// reference resolved to. The bundle re-hashes the bytes.
	Root() (bundle.Descriptor, []byte)
	// Repository names where the image came from, e.g.
	// "registry.example.com/payments/api" or "oci:./images/worker".
	Repository() string
	// Manifest returns the exact bytes of a child manifest or index.
	Manifest(ctx context.Context, d bundle.Descriptor) ([]byte, error)
	// Blob opens a config or layer blob. The caller checks the bytes
	// against d; Blob need not.
	Blob(ctx context.Context, d bundle.Descriptor) (io.ReadCloser, error)
	// Staged reports whether blobs are expensive to read (network, on-the-fly
	// compression): Pack then pulls them ahead of the writer, in write
	// order, into memory and (beyond Options.PrefetchMemory) a spool file.
	// Blob need not check the bytes it returns: the writer checks every
	// layer's digest once as it writes it.
	Staged() bool
}

// AttachmentSource is an optional extension of ImageSource: sources that can
// find what is attached to an image (cosign signature tags, OCI 1.1
// referrers such as signatures, attestations and SBOMs) implement it, and
// Pack carries what it returns into the bundle next to the image.
type AttachmentSource interface {
	// Attachments lists what is attached to each of subjects (the image's
	// root and child manifests). It returns an empty list, not an error,
	// when there is nothing attached.
	Attachments(ctx context.Context, subjects []bundle.Descriptor) ([]Attachment, error)
}

// Attachment kinds.
const (
	// AttachCosignTag is a cosign signature, attestation or SBOM manifest
	// found under the tag "sha256-<hex>.sig", ".att" or ".sbom" of the
	// subject's repository.
	AttachCosignTag = "cosign-tag"
	// AttachReferrer is an OCI 1.1 referrer: a manifest whose subject is the image.
	AttachReferrer = "referrer"
)

// Attachment is one manifest attached to an image.
type Attachment struct {
	Kind    string            // AttachCosignTag or AttachReferrer
	Subject bundle.Descriptor // the manifest or index it is attached to
	Root    bundle.Descriptor // the attachment's own manifest
	Raw     []byte            // exact bytes of that manifest
	// ArtifactType is the referrer's artifact type (or its config media
	// type when it has none); empty for cosign signature tags.
	ArtifactType string
	// Tag is the tag the attachment was found under ("sha256-<hex>.sig",
	// ".att" or ".sbom"), empty for referrers.
	Tag string
}
