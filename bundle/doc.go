// Package bundle is the airlock bundle format and nothing else: entry names,
// media types, the table of artifact kinds, limits, the deterministic
// Writer, the streaming Reader every consumer uses, the zstd frames, the
// signed statement, in-place signing and the inspect model.
//
// A bundle is a tar stream, zstd-compressed, holding an OCI image layout. The
// first zstd frame (the head) carries only small metadata: the format marker,
// the signatures, the bundle manifest, oci-layout, index.json and every
// manifest and config. The body frame carries the large blobs.
// docs/format.md is the normative description.
//
// A bundle can be written from Go without an airlock.yaml: build Items
// (NewModelItem, NewFileItem, NewSBOMItem, or a Graph from Walk for images),
// then NewWriter, Sign and WriteFile. Package pack does that for airlock.yaml.
// The package never touches the network (a test proves it).
package bundle
