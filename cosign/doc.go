// Package cosign is cosign's key-based signature format, in process: it
// parses and verifies signature manifests and their simple-signing
// payloads, and builds them (for the site signatures `airlock mirror
// --sign-key` adds). It imports no other airlock package but leaf helpers.
//
// Reading: read the signature layers of a cosign signature manifest (the
// manifest cosign pushes under the tag "sha256-<hex>.sig", or as an OCI 1.1
// referrer of the image) and decide whether one layer's payload is signed by
// a given key for a given image digest. It never shells out to cosign and
// never touches the network: the caller fetches the manifest and the payload
// blob, checks the payload against its layer descriptor, and brings the key.
//
// A cosign payload is a small JSON document:
//
//	{"critical":{"identity":{"docker-reference":"..."},
//	             "image":{"docker-manifest-digest":"sha256:..."},
//	             "type":"cosign container image signature"},
//	 "optional":{...}}
//
// Verify checks the signature over the exact payload bytes first, and only
// then parses those same bytes, strictly (duplicate keys, unknown keys in the
// critical section and trailing data are refused), and compares the signed
// digest with the image's. The docker-reference is not compared: images keep
// their digest but change repository when they are mirrored. Signatures from
// keyless signing (certificates, transparency log bundles) are out of scope:
// only the key passed in is trusted.
package cosign
