// Package sample builds the deterministic sample content used by tests,
// benchmarks and `make demo`: three container images (a multi-arch OCI
// index, a single OCI image and a Docker schema 2 image) and a release source
// tree with models, files, SBOMs and an airlock.yaml that refers to them.
//
// Every byte is derived from fixed seeds and the fixed [Timestamp], so two
// calls produce identical digests. Nothing here touches the network except
// [Push], which writes to the registry it is given.
package sample
