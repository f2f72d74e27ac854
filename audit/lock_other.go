//go:build !unix

package audit

import "os"

// lock is a no-op where flock does not exist; appends stay single writes.
func lock(*os.File) error { return nil }

func unlock(*os.File) {}
