package hub

import "sync/atomic"

// Counters are the node's counts of events that bounds and limits cause
// (slow consumers closed, subscriptions refused, …). They are cold-path
// events, so each is one atomic; the metrics endpoint and --debug read them.
// The hot path (frame in -> fan-out out) never touches them per receiver:
// per-loop figures are folded in per batch by their owner.
//
// Any goroutine may read or add. Add a field here, with a comment saying
// what is counted, rather than keeping counters elsewhere.
type Counters struct {
	// SlowConsumerCloses counts sockets closed with 4100 because what they
	// had not yet taken passed the per-socket bound.
	SlowConsumerCloses atomic.Uint64
}

// Counters returns the node's counters.
func (h *Hub) Counters() *Counters { return &h.counters }
