// Package atomicfile writes a file so that readers see either the old content
// or the complete new content, never a partial write: a temporary file in the
// same directory, fsync, rename, then fsync of the directory.
package atomicfile
