package cluster

import (
	"github.com/goreverb/reverb/hub"
)

// metrics are the broker's figures for the metrics endpoint that Stats
// does not already hold.
type metrics struct {
	// latency is the cross-node latency of message envelopes: from the
	// sending node queuing it ("t") to this node's receiver handing it to
	// the hub. Across machines it includes their clock difference.
	latency hub.LatencyHistogram
}

// crossNode observes the latency of a message queued at unix µs sent (0 =
// sender too old to stamp) and received at unix ns now. Receiver goroutine.
func (m *metrics) crossNode(sent, now int64) {
	if sent > 0 {
		m.latency.Observe(now-sent*1000, 1)
	}
}

// Metrics are the broker's figures for monitoring. Counters are cumulative
// since New.
type Metrics struct {
	Stats
	// QueueLength and QueueCapacity are the envelopes waiting for Redis
	// and how many may wait before publishes are dropped (Stats.Dropped).
	QueueLength, QueueCapacity int
	// StateQueueLength and StateQueueCapacity are the presence operations
	// waiting for Redis and how many may wait before they are dropped
	// (Stats.Dropped) and every presence channel is resynchronised.
	StateQueueLength, StateQueueCapacity int
	// Reconnects counts Redis connections (publisher, pub/sub, state) that
	// were lost and came back.
	Reconnects uint64
	// Connected is false while the pub/sub connection is down.
	Connected bool
	// Latency is the cross-node latency of messages received from other
	// nodes.
	Latency hub.Histogram
}

// Metrics returns the broker's figures. Any goroutine.
func (b *Broker) Metrics() Metrics {
	return Metrics{
		Stats:              b.Stats(),
		QueueLength:        len(b.queue),
		QueueCapacity:      cap(b.queue),
		StateQueueLength:   len(b.stateQ),
		StateQueueCapacity: cap(b.stateQ),
		Reconnects:         b.pubState.restores.Load() + b.subState.restores.Load() + b.stateState.restores.Load(),
		Connected:          b.subUp.Load(),
		Latency:            b.metrics.latency.Snapshot(),
	}
}

// SetStatsExtra makes every heartbeat carry the JSON object f appends (a
// node's own figures for the other nodes' dashboards; at most once a
// second, on the stats goroutine). The broker does not look into it: the
// other nodes get it back, as last heard, from PeerExtra. f must append
// exactly one JSON object. Call before Start or at any time after.
func (b *Broker) SetStatsExtra(f func(dst []byte) []byte) { b.extra.Store(&f) }

// appendExtra turns a stats envelope into one with "x" (stats goroutine).
func (b *Broker) appendExtra(buf []byte) []byte {
	f := b.extra.Load()
	if f == nil || len(buf) == 0 {
		return buf
	}
	buf = append(buf[:len(buf)-1], `,"x":`...) // drop the closing brace
	return append((*f)(buf), '}')
}

// PeerExtra calls visit for each other node heard from with the "x" object
// of its last heartbeat (empty when it sent none). visit runs with the
// table locked and must not keep x or call back into the broker.
func (b *Broker) PeerExtra(visit func(node string, x []byte)) {
	p := &b.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	for node, pe := range p.nodes {
		visit(node, pe.extra)
	}
}

// PeerConnections calls visit for each other node heard from, with its
// last reported established sockets per app (the once-a-second stats
// heartbeat). Any goroutine; visit runs with the table locked, so it must
// not call back into the broker.
func (b *Broker) PeerConnections(visit func(node, appID string, n int64)) {
	p := &b.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	for node, pe := range p.nodes {
		if len(pe.counts) == 0 {
			visit(node, "", 0)
		}
		for app, n := range pe.counts {
			visit(node, app, n)
		}
	}
}
