// Package mirror does airlock's registry and image-source I/O with
// go-containerregistry: it resolves the images a release lists (registries,
// OCI layouts, docker-archive files) for `airlock pack`. Pushing into a site
// registry comes in later. [Server] is the registry `airlock serve` runs on a
// site that has none: the CNCF distribution registry with filesystem storage,
// plus the OCI referrers API that library lacks.
package mirror
