// Package registry is the OCI registry `airlock serve` runs on a site that
// has none: the CNCF distribution registry library with filesystem storage,
// plus the OCI referrers API that library lacks. It listens on loopback
// unless told otherwise, and it takes no part in deciding trust.
package registry
