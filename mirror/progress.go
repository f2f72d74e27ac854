package mirror

import (
	"io"
	"sync"

	"github.com/airlock-dev/airlock/bundle"
)

// planProgress announces the bytes of every blob the registry is to get
// (each once, however many repositories need it) to an overall progress.
func (m *mirrorer) planProgress() {
	ov := bundle.OverallOf(m.opts.Progress)
	if ov == nil {
		return
	}
	seen := map[string]bool{}
	var total int64
	add := func(d bundle.Descriptor) {
		if !seen[d.Digest] && len(m.repos[d.Digest]) > 0 {
			seen[d.Digest] = true
			total += d.Size
		}
	}
	for _, j := range m.jobs {
		for _, l := range j.content.Layers {
			add(l)
		}
		for _, c := range j.content.Configs {
			add(c.Descriptor)
		}
	}
	ov.Plan(total, 0)
}

// uploadMeter reports one blob's upload: a bar while it is in flight, and
// its bytes settled once in the overall view, whether they were sent, sent
// again by a retry, or spared because the registry had the blob or mounted
// it.
type uploadMeter struct {
	p       bundle.Progress
	ov      bundle.Overall
	id      string
	size    int64
	mu      sync.Mutex
	settled int64
}

// meterUpload starts the bar of one blob's upload; nil without progress.
func (m *mirrorer) meterUpload(d bundle.Descriptor) *uploadMeter {
	if m.opts.Progress == nil {
		return nil
	}
	u := &uploadMeter{p: m.opts.Progress, ov: bundle.OverallOf(m.opts.Progress), id: "push " + d.Digest, size: d.Size}
	label := d.Digest
	if len(label) > 19 {
		label = label[:19]
	}
	u.p.Start(u.id, "push "+label, d.Size)
	return u
}

// wrap reports the bytes read from what open returns.
func (u *uploadMeter) wrap(open opener) opener {
	if u == nil {
		return open
	}
	return func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		return &meteredReadCloser{ReadCloser: rc, u: u}, nil
	}
}

func (u *uploadMeter) add(n int64) {
	u.p.Add(u.id, n)
	u.settle(n)
}

func (u *uploadMeter) settle(n int64) {
	if u.ov == nil {
		return
	}
	u.mu.Lock()
	n = min(n, u.size-u.settled)
	u.settled += n
	u.mu.Unlock()
	if n > 0 {
		u.ov.Moved(n)
	}
}

// done settles what is left and ends the bar.
func (u *uploadMeter) done() {
	if u == nil {
		return
	}
	u.settle(u.size)
	u.p.Done(u.id)
}

type meteredReadCloser struct {
	io.ReadCloser
	u *uploadMeter
}

func (r *meteredReadCloser) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.u.add(int64(n))
	}
	return n, err
}
