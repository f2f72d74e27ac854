// Package attest makes the signed verification record airlock writes with
// --attest: an in-toto Statement (v1) carrying the SLSA Verification
// Summary predicate (https://slsa.dev/verification_summary/v1), whose
// subject is the bundle's root digest, in a DSSE envelope signed with a
// site key. Stock `cosign verify-blob-attestation --key site.pub --type
// https://slsa.dev/verification_summary/v1` checks it.
//
// It builds the record from a verify.Report and never touches the network.
package attest
