package testkit_test

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestStopRestart: a stopped registry refuses connections; restarted, it
// serves on the same address what it stored before.
func TestStopRestart(t *testing.T) {
	t.Parallel()
	reg := testkit.Start(t)
	pushAndCheck(t, reg)
	if err := reg.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", reg.Host, time.Second); err == nil {
		c.Close()
		t.Fatal("a stopped registry accepts connections")
	}
	if err := reg.Restart(); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(reg.Host + "/demo/api:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if err := testkit.StartInProcess(t).Stop(); err == nil {
		t.Error("Stop of an in-process registry did not fail")
	}
}
