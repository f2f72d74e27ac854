// Package testkit is the one test kit every package's tests use: it starts
// container registries (the real CNCF distribution registry, the
// docker-registry binary, for integration tests, and go-containerregistry's
// in-process registry for fast unit tests), runs the real cosign and
// skopeo, and decides whether a test that needs an external tool runs,
// skips or fails (CI=true makes a missing tool a failure). Sample content
// lives in internal/sample.
//
// Import it only from _test.go files.
package testkit
