// Package mirror does airlock's registry and image-source I/O with
// go-containerregistry: it resolves the images a release lists (registries,
// OCI layouts, docker-archive files) for `airlock pack`. Pushing into a site
// registry and serving one come in later.
package mirror
