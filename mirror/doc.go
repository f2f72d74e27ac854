// Package mirror does airlock's registry and image-source I/O with
// go-containerregistry: it resolves the images a release lists (registries,
// OCI layouts, docker-archive files) for `airlock pack`; it pushes a verified
// bundle into a site registry for `airlock mirror` and `airlock install
// --registry` ([Mirror], [Pusher]); and [Server] is the registry `airlock serve` runs on a
// site that has none: the CNCF distribution registry with filesystem storage,
// plus the OCI referrers API that library lacks.
package mirror
