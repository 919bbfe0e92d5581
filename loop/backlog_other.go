//go:build !linux || reverb_timerpoll

package loop

import (
	"sync/atomic"
	"time"
)

// pollerOS, where epoll is missing (macOS, for development; on Linux with
// -tags reverb_timerpoll, to test it): a timer asks
// the loop to try every backlog it has every few milliseconds while any
// exists. Correct, if not as cheap as being told; production runs on
// Linux.
type pollerOS struct {
	started bool
	active  atomic.Int64 // backlogs of the loop
}

const retryEvery = 5 * time.Millisecond

func (p *outPoller) add(lc *loopCtx, _ *conn) {
	p.active.Add(1)
	if !p.started {
		p.started = true
		p.task.lc = lc
		go p.run(lc)
	}
}

func (p *outPoller) arm(*loopCtx, *conn) {}

func (p *outPoller) del(*conn) { p.active.Add(-1) }

func (p *outPoller) run(lc *loopCtx) {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	all := []uint32{allBacklogs}
	for range t.C {
		if p.stopped.Load() {
			return
		}
		if p.active.Load() > 0 {
			p.post(lc, all)
		}
	}
}
