package main

import (
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/airlock-dev/airlock/bundle"
)

// progress draws bars on stderr when it is a terminal and not silenced.
type progress struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*mpb.Bar
}

func newProgress(e *env, quiet bool) *progress {
	if quiet || !e.stderrTTY {
		return &progress{}
	}
	return &progress{p: mpb.New(mpb.WithOutput(e.stderr), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}}
}

// bundleProgress returns the bundle.Progress to hand to the library, nil when silent.
func (pr *progress) bundleProgress() bundle.Progress {
	if pr.p == nil {
		return nil
	}
	return pr
}

func (pr *progress) Start(id, label string, total int64) {
	bar := pr.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(label, decor.WC{W: 40, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")),
		mpb.BarRemoveOnComplete(),
	)
	pr.mu.Lock()
	pr.bars[id] = bar
	pr.mu.Unlock()
}

func (pr *progress) Add(id string, n int64) {
	pr.mu.Lock()
	bar := pr.bars[id]
	pr.mu.Unlock()
	if bar != nil {
		bar.IncrInt64(n)
	}
}

func (pr *progress) Done(id string) {
	pr.mu.Lock()
	bar := pr.bars[id]
	delete(pr.bars, id)
	pr.mu.Unlock()
	if bar != nil {
		bar.Abort(true)
	}
}

// wait lets the bars finish drawing.
func (pr *progress) wait() {
	if pr.p != nil {
		pr.p.Wait()
	}
}
