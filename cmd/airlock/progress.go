package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/airlock-dev/airlock/bundle"
)

// defaultProgressEvery is how often a progress line is written when
// standard error is not a terminal.
const defaultProgressEvery = 10 * time.Second

// progress shows a long run on standard error: on a terminal, one bar per
// blob in flight and an overall bar (bytes, artifacts, time left);
// otherwise one line every 10 s, the first after 10 s, so short runs print
// none. Quiet shows nothing.
type progress struct {
	silent bool
	// overall view, fed by the libraries through bundle.Overall
	planned, moved      atomic.Int64
	artifacts, artsDone atomic.Int64
	read                atomic.Int64 // every byte any bar reported
	start               time.Time
	planned0            atomic.Int64 // unix nanoseconds of the first Plan

	// terminal
	p       *mpb.Progress
	mu      sync.Mutex
	bars    map[string]*mpb.Bar
	overall *mpb.Bar

	// not a terminal
	out      io.Writer
	label    string
	stop     chan struct{}
	finished chan struct{}
	ended    sync.Once
}

var _ bundle.Overall = (*progress)(nil)

func newProgress(e *env, quiet bool, command string) *progress {
	if quiet {
		return &progress{silent: true}
	}
	pr := &progress{start: time.Now(), label: "airlock " + command}
	if e.stderrTTY {
		pr.p = mpb.New(mpb.WithOutput(e.stderr), mpb.WithWidth(40), mpb.WithAutoRefresh())
		pr.bars = map[string]*mpb.Bar{}
		return pr
	}
	every := e.progressEvery
	if every <= 0 {
		every = defaultProgressEvery
	}
	pr.out, pr.stop, pr.finished = e.stderr, make(chan struct{}), make(chan struct{})
	go pr.ticker(every)
	return pr
}

// bundleProgress returns the bundle.Progress to hand to the library, nil when silent.
func (pr *progress) bundleProgress() bundle.Progress {
	if pr.silent {
		return nil
	}
	return pr
}

func (pr *progress) ticker(every time.Duration) {
	defer close(pr.finished)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-t.C:
			fmt.Fprintln(pr.out, pr.line())
		}
	}
}

// line is the overall state in words.
func (pr *progress) line() string {
	moved, planned := pr.moved.Load(), pr.planned.Load()
	el := time.Since(pr.start)
	if planned == 0 && moved == 0 {
		// Nothing planned yet (pack resolving images and hashing files).
		return fmt.Sprintf("%s: preparing, %s read (%s elapsed)", pr.label, humanBytes(pr.read.Load()), el.Round(time.Second))
	}
	s := fmt.Sprintf("%s: %s", pr.label, humanBytes(moved))
	if planned > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", humanBytes(planned), moved*100/planned)
	}
	if n := pr.artifacts.Load(); n > 0 {
		s += fmt.Sprintf(", %d of %s done", pr.artsDone.Load(), plural(int(n), "artifact"))
	}
	since := el // rate and time left count from the first plan
	if t := pr.planned0.Load(); t != 0 {
		since = time.Since(time.Unix(0, t))
	}
	if secs := since.Seconds(); secs > 0 {
		s += fmt.Sprintf(", %s/s", humanBytes(int64(float64(moved)/secs)))
	}
	if moved > 0 && planned > moved {
		left := time.Duration(float64(since) * float64(planned-moved) / float64(moved))
		s += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	return s + fmt.Sprintf(" (%s elapsed)", el.Round(time.Second))
}

// Plan implements bundle.Overall.
func (pr *progress) Plan(bytes int64, artifacts int) {
	pr.planned0.CompareAndSwap(0, time.Now().UnixNano())
	total := pr.planned.Add(bytes)
	pr.artifacts.Add(int64(artifacts))
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.overall == nil {
		// Total 0: the bar never completes by itself (mpb would stop at the
		// first total); SetTotal shows the total, wait completes it.
		pr.overall = pr.p.AddBar(0,
			mpb.BarPriority(-1), // above the blob bars
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("total: %d/%d artifacts", pr.artsDone.Load(), pr.artifacts.Load())
			}, decor.WC{W: 40, C: decor.DindentRight})),
			mpb.AppendDecorators(byteCounters(), decor.Name(" "), byteSpeed(time.Now()),
				decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)),
		)
		pr.overall.SetCurrent(pr.moved.Load())
	}
	pr.overall.SetTotal(total, false)
}

// Moved implements bundle.Overall.
func (pr *progress) Moved(n int64) {
	pr.moved.Add(n)
	pr.mu.Lock()
	ob := pr.overall
	pr.mu.Unlock()
	if ob != nil {
		ob.IncrInt64(n)
	}
}

// ArtifactDone implements bundle.Overall.
func (pr *progress) ArtifactDone() { pr.artsDone.Add(1) }

func (pr *progress) Start(id, label string, total int64) {
	if pr.p == nil {
		return
	}
	bar := pr.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(label, decor.WC{W: 40, C: decor.DindentRight})),
		mpb.AppendDecorators(byteCounters(), decor.Name(" "), byteSpeed(time.Now())),
		mpb.BarRemoveOnComplete(),
	)
	pr.mu.Lock()
	if old := pr.bars[id]; old != nil {
		old.Abort(true)
	}
	pr.bars[id] = bar
	pr.mu.Unlock()
}

func (pr *progress) Add(id string, n int64) {
	pr.read.Add(n)
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	bar := pr.bars[id]
	pr.mu.Unlock()
	if bar != nil {
		bar.IncrInt64(n)
	}
}

func (pr *progress) Done(id string) {
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	bar := pr.bars[id]
	delete(pr.bars, id)
	pr.mu.Unlock()
	if bar != nil {
		bar.Abort(true)
	}
}

// wait ends the display: the bars finish drawing, the ticker stops. Calls
// after the first do nothing.
func (pr *progress) wait() { pr.ended.Do(pr.end) }

func (pr *progress) end() {
	if pr.stop != nil {
		close(pr.stop)
		<-pr.finished
	}
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	for id, b := range pr.bars {
		b.Abort(true)
		delete(pr.bars, id)
	}
	if pr.overall != nil {
		pr.overall.SetTotal(-1, true) // complete at what moved, and stay on screen
	}
	pr.mu.Unlock()
	pr.p.Wait()
}

// byteCounters shows "done / total" in the units people write (B, KiB,
// MiB), as every other airlock output does.
func byteCounters() decor.Decorator {
	return decor.Any(func(s decor.Statistics) string { return humanBytes(s.Current) + " / " + humanBytes(s.Total) })
}

// byteSpeed shows the average rate since start ("12.3 MiB/s").
func byteSpeed(start time.Time) decor.Decorator {
	return decor.Any(func(s decor.Statistics) string {
		el := time.Since(start).Seconds()
		if el <= 0 {
			return ""
		}
		return humanBytes(int64(float64(s.Current)/el)) + "/s"
	})
}
