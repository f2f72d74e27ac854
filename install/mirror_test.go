package install_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/mirror"
)

func newPusher(t *testing.T, host string) *mirror.Peer {
	t.Helper()
	target, err := mirror.ParseTarget(host+"/mirror", true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := mirror.NewPusher(context.Background(), mirror.MirrorOptions{
		To: target, Policy: loadPolicy(t, "default"), Now: now,
		Retry: remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &mirror.Peer{Pusher: p}
}

// TestInstallMirrorsInTheSamePass installs files and the model and pushes
// the model to a registry from the same read of the bundle; staged model
// files are uploaded from staging (BlobFile).
func TestInstallMirrorsInTheSamePass(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	root := t.TempDir()
	peer := newPusher(t, reg.Host)
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}), func(o *install.Options) { o.Mirror = peer })
	mres := peer.Result
	if mres == nil || len(mres.Mappings) != 1 || mres.Mappings[0].Kind != "model" || mres.Blobs.Pushed == 0 {
		t.Fatalf("mirror result: %+v", mres)
	}
	ref, err := name.ParseReference(strings.SplitN(mres.Mappings[0].Target, "@", 2)[0], name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 5 {
		t.Fatalf("model layers in the registry: %d %v", len(ls), err)
	}
	for _, l := range ls {
		rc, err := l.Compressed() // go-containerregistry verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		for {
			if _, err := rc.Read(buf); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("layer: %v", err)
				}
				break
			}
		}
		rc.Close()
	}
	if _, err := install.Check(context.Background(), root); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryFailureKeepsTheOldRelease: the registry fails, so nothing is
// committed: the old release stays current, exit class 1.
func TestRegistryFailureKeepsTheOldRelease(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Error(w, "storage on fire", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	root, canary := badRoot(t)
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	expectUnchanged(t, root, canary, false, mirror.ErrRegistry, func() error {
		_, err := installFile(t, root, v2, loadPolicy(t, "default"), func(o *install.Options) {
			o.Mirror = newPusher(t, strings.TrimPrefix(srv.URL, "http://"))
		})
		return err
	})
	// Without the registry the install goes through.
	mustInstall(t, root, v2)
}

// TestRefusedBundleWritesNothingToTheRegistry: a replay is refused before
// the mirror sees the head, so no write request reaches the registry.
func TestRefusedBundleWritesNothingToTheRegistry(t *testing.T) {
	t.Parallel()
	var writes atomic.Int64
	regh := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writes.Add(1)
		}
		regh.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	root, canary := badRoot(t)
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	writes.Store(0)
	old := pack(t, release{version: "1.5.0", seq: 15})
	expectUnchanged(t, root, canary, true, install.ErrReplay, func() error {
		_, err := installFile(t, root, old, loadPolicy(t, "default"), func(o *install.Options) { o.Mirror = newPusher(t, host) })
		return err
	})
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d write requests reached the registry", n)
	}
}
