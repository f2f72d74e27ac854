package startgc

import (
	"runtime/debug"
	"testing"
)

// TestRelease: the collector is off after init and back at its earlier
// setting after Release.
func TestRelease(t *testing.T) {
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Fatalf("after init the collector is at %d, want off (-1)", got)
	}
	Release()
	if got := debug.SetGCPercent(percent); got != percent || percent == -1 {
		t.Fatalf("after Release the collector is at %d, want %d (not off)", got, percent)
	}
}
