// Package startgc holds the garbage collector off while the program's
// packages are initialized. Go initializes packages in the order of their
// import paths among those whose imports are done, and this one imports
// only runtime/debug, so it runs before the heavy initializers of the
// libraries airlock links (Helm's JSON Schema compiler and Kubernetes
// schemes among them), which allocate some megabytes and would otherwise
// trigger several collections of a heap that is still all live. Release,
// from the main package's init (the last to run), restores the collector
// as GOGC set it.
package startgc

import "runtime/debug"

// percent is the collector setting in force before init turned it off:
// 100, or what GOGC says.
var percent = debug.SetGCPercent(-1)

// Release turns the collector back on with the setting it had.
func Release() {
	debug.SetGCPercent(percent)
}
