// Package mirror pushes a verified bundle into a site registry for `airlock
// mirror` and `airlock install --registry`: placement of each artifact
// (Target), blobs children-first and read back, manifests byte for byte,
// tags last, upstream signatures and referrers next to their images, site
// signatures (package cosign), and the node configuration --emit-config
// writes. It consumes one verification pass ([Pusher], [Peer]); the
// registry `airlock serve` runs is package registry.
package mirror
