// Package bundle owns the airlock bundle format: the release description
// (airlock.yaml), the deterministic writer behind `airlock pack`, the streaming
// reader every consumer uses, and the limits that bound both.
//
// A bundle is a tar stream, zstd-compressed, holding an OCI image layout. The
// first zstd frame (the head) carries only small metadata: the format marker,
// the bundle manifest, oci-layout, index.json and every manifest and config.
// The second frame (the body) carries the large blobs. docs/format.md is the
// normative description.
//
// The package never touches the network: images come in through the
// ImageResolver interface, which package mirror implements.
package bundle
