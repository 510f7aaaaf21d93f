package sim

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// agentReport is what the reports scenario sends.
type agentReport = proto.ComplianceReport

// currentReport is a true report of d's current state.
func currentReport(d *device) agentReport {
	s, _ := d.enf.Observe(context.Background())
	d.mu.Lock()
	v := d.reported
	d.mu.Unlock()
	return agentReport{AppliedPolicyVersion: v, Compliant: true, Settings: s}
}

// progress prints one line, rewritten every second: phase, done/total,
// rate and elapsed time.
type progress struct {
	w     io.Writer
	mu    sync.Mutex
	phase string
	total int
	since time.Time
	done  atomic.Int64
	quit  chan struct{}
	ended sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, quit: make(chan struct{}), since: time.Now()}
	if w == io.Discard {
		return p
	}
	p.ended.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				p.print()
				fmt.Fprintln(p.w)
				return
			case <-t.C:
				p.print()
			}
		}
	})
	return p
}

func (p *progress) print() {
	p.mu.Lock()
	phase, total, since := p.phase, p.total, p.since
	p.mu.Unlock()
	done := p.done.Load()
	el := time.Since(since).Seconds()
	of := ""
	if total > 0 {
		of = fmt.Sprintf("/%d", total)
	}
	fmt.Fprintf(p.w, "\r%-16s %d%s  %.0f/s  %.1fs      ", phase, done, of, float64(done)/max(el, 0.001), el)
}

func (p *progress) set(phase string, total int, done int64) {
	p.mu.Lock()
	p.phase, p.total, p.since = phase, total, time.Now()
	p.mu.Unlock()
	p.done.Store(done)
}

func (p *progress) add(n int64) { p.done.Add(n) }

func (p *progress) close() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.ended.Wait()
}
