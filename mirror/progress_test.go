package mirror

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// recordingProgress records what a run reports to a bundle.Overall.
type recordingProgress struct {
	mu                  sync.Mutex
	started, done       map[string]int
	added               map[string]int64 // by id prefix: "push", "verify"
	planned, moved      int64
	artifacts, artsDone int
}

func newRecordingProgress() *recordingProgress {
	return &recordingProgress{started: map[string]int{}, done: map[string]int{}, added: map[string]int64{}}
}

func (r *recordingProgress) Start(id, label string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started[id]++
}

func (r *recordingProgress) Add(id string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind, _, _ := strings.Cut(id, " ")
	if strings.HasPrefix(id, "sha256:") {
		kind = "verify"
	}
	r.added[kind] += n
}

func (r *recordingProgress) Done(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[id]++
}

func (r *recordingProgress) Plan(bytes int64, artifacts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.planned += bytes
	r.artifacts += artifacts
}

func (r *recordingProgress) Moved(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moved += n
}

func (r *recordingProgress) ArtifactDone() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.artsDone++
}

// TestMirrorProgressMoves: a mirror reports the upload of every blob it
// sends (a bar per blob, bytes as they go) and an overall view that ends
// complete: all planned bytes moved, all artifacts done (finding 4 of
// issue 9: the bars of mirror stayed at 0 B). A rerun that sends nothing
// still completes its overall view.
func TestMirrorProgressMoves(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t)
	reg := testkit.StartInProcess(t)
	to, err := ParseTarget(reg.Host+"/p", true)
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		rec := newRecordingProgress()
		r, err := os.Open(f.bundle)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Mirror(context.Background(), r, MirrorOptions{To: to, Policy: f.policy, TempDir: t.TempDir(), Progress: rec})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		var body int64
		for _, d := range f.head.Body {
			body += d.Size
		}
		if rec.added["verify"] != body {
			t.Errorf("run %d: verify bars got %d bytes, the body has %d", run, rec.added["verify"], body)
		}
		if run == 0 && (rec.added["push"] < res.Blobs.BytesPushed || res.Blobs.BytesPushed == 0) {
			t.Errorf("run %d: push bars got %d bytes, %d were pushed", run, rec.added["push"], res.Blobs.BytesPushed)
		}
		if rec.planned <= body || rec.moved != rec.planned {
			t.Errorf("run %d: overall moved %d of %d planned (body %d)", run, rec.moved, rec.planned, body)
		}
		if rec.artifacts != len(f.head.Manifest.Artifacts) || rec.artsDone != rec.artifacts {
			t.Errorf("run %d: %d of %d artifacts done, the bundle has %d", run, rec.artsDone, rec.artifacts, len(f.head.Manifest.Artifacts))
		}
		for id, n := range rec.started {
			if rec.done[id] != n {
				t.Errorf("run %d: %s started %d times, done %d", run, id, n, rec.done[id])
			}
		}
	}
}
