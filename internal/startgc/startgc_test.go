package startgc

import (
	"os"
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
	if got := debug.SetGCPercent(percent); got != percent {
		t.Fatalf("after Release the collector is at %d, want %d", got, percent)
	}
	if percent == -1 && os.Getenv("GOGC") != "off" {
		t.Fatal("Release left the collector off, which GOGC did not ask for")
	}
}
