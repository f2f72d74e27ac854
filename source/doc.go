// Package source is where `airlock pack` gets images from: registries
// (go-containerregistry's remote), OCI image layouts and `docker save`
// archives, with the signatures, attestations and SBOMs attached to them
// upstream (cosign tags and OCI 1.1 referrers). It implements
// pack.ImageResolver and pack.ImageVerifier (images[].verify, with package
// cosign). It is connected-side only: nothing on the isolated side imports it.
package source
