// Package pack is the connected side's job: it reads and validates
// airlock.yaml (Spec), hashes the local sources it lists (models, files,
// SBOMs), resolves images through an ImageResolver (package source), and
// writes one bundle with bundle.Writer. It never touches the network
// itself and is not imported by any isolated-side package.
package pack
