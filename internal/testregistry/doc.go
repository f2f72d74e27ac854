// Package testregistry starts container registries for tests: the real CNCF
// distribution registry (the docker-registry binary) for integration tests
// and go-containerregistry's in-process registry for fast unit tests. It
// also decides whether a test that needs an external tool runs, skips or
// fails.
//
// Import it only from _test.go files.
package testregistry
