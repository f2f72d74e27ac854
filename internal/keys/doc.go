// Package keys reads, checks and creates the signing keys airlock uses: PEM
// files in the format cosign writes, so a key made by one tool works in the
// other. It decides which key types are acceptable and, from the key type
// alone, which signature algorithm a key verifies with.
package keys
