// Package registry is the OCI registry `airlock serve` runs on a site that
// has none: the CNCF distribution registry library with filesystem storage,
// plus the OCI referrers API that library lacks; or, with Options.Bundle, a
// read-only registry answered straight from a v2 bundle's frames
// (bundle.go). It listens on loopback unless told otherwise, and it takes
// no part in deciding trust: the caller verifies a bundle's head first.
package registry
