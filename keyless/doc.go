// Package keyless checks keyless (Sigstore) signatures on container images
// offline: a short-lived Fulcio certificate naming a CI or user identity,
// chaining to a Fulcio CA of a pinned Sigstore trusted root
// (trusted_root.json), with a Rekor log entry (inclusion proof or signed
// entry timestamp) whose time falls inside the certificate's validity. The
// verification itself is sigstore-go's; this package finds the evidence in
// what is attached to an image — a Sigstore bundle stored as an OCI
// referrer, or a cosign ".sig" tag whose layers carry the certificate and
// the Rekor bundle as annotations — and says which signature satisfied
// which identity, or why none did.
//
// Nothing here reaches the network. sigstore-go links net/http (its TUF and
// log clients), so bundle, policy and verify do not import this package; the
// CLI composes it.
package keyless
