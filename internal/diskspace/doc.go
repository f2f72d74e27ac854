// Package diskspace turns "no space left on device" into an error that
// says where the space ran out and how much the operation needed.
package diskspace
