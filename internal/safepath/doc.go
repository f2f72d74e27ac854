// Package safepath validates the relative install paths ("targets") that a
// bundle carries, so that nothing a bundle names can land outside its root.
package safepath
