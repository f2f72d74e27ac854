package bundle

import "github.com/airlock-dev/airlock/internal/checked"

func validDigest(d string) bool { return checked.ValidDigest(d) }

// blobName is the tar entry name of a blob, from a validated digest.
func blobName(d string) string { return "blobs/sha256/" + d[len("sha256:"):] }
