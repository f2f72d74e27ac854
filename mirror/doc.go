// Package mirror pushes a verified bundle into a site registry for `airlock
// mirror` and `airlock install --registry`: placement of each artifact
// (Target), blobs children-first and read back, manifests byte for byte,
// tags last, upstream signatures and referrers next to their images, site
// signatures (package cosign), the node configuration --emit-config writes
// ([EmitConfig]: containerd hosts.toml, containers-registries.conf), and
// the credentials of a run ([Keychain], read once per registry). It
// consumes one verification pass ([Pusher], [Peer]); the registry `airlock
// serve` runs is package registry.
package mirror
