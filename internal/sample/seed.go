package sample

import (
	"crypto/sha256"
	"math/rand/v2"
	"time"
)

// Timestamp is the fixed time stamped into every tar header, image config,
// history entry and SBOM: 2026-01-01T00:00:00Z.
var Timestamp = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// seeded returns n pseudo-random bytes that depend only on label. The
// generator is ChaCha8 seeded with SHA-256("airlock/sample/" + label); its
// output stream is specified, so the bytes are the same on every platform
// and Go release.
func seeded(label string, n int) []byte {
	r := rand.NewChaCha8(sha256.Sum256([]byte("airlock/sample/" + label)))
	b := make([]byte, n)
	_, _ = r.Read(b) // ChaCha8.Read never fails.
	return b
}
