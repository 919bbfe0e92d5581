package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
)

const (
	// statsEvery is how often a node tells the others its socket counts.
	statsEvery = time.Second
	// statsExpiry forgets a node not heard from for this long: a node that
	// died without a goodbye stops counting within statsExpiry plus
	// statsExpiryCheck.
	statsExpiry      = 3 * time.Second
	statsExpiryCheck = 250 * time.Millisecond
)

// peers is the table node → its last reported socket counts, and their sum
// per app, which the hub adds to its own counts. The receiver goroutine
// updates it on every stats envelope; the stats goroutine expires nodes.
type peers struct {
	mu     sync.Mutex
	nodes  map[string]*peer
	totals map[string]int64 // app id → sum over nodes; only apps ever reported
	// expired holds nodes given up on (silent for statsExpiry) and when, for
	// goneMemory: their presence is ignored in snapshots, and one that speaks
	// again makes this node resync its presence channels.
	expired map[string]time.Time
}

// goneMemory is how long an expired node is remembered.
const goneMemory = 10 * time.Minute

// vouch records that node announced presence members. A node not in the
// table yet (its first heartbeat has not arrived) is added as heard now, so
// that if it dies before its first heartbeat it still expires and takes
// its members with it. It reports false for a node given up on: its
// members come back through the resync its next heartbeat starts. Any
// goroutine.
func (p *peers) vouch(node string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.expired[node]; ok {
		return false
	}
	if p.nodes[node] == nil {
		p.nodes[node] = &peer{seen: now, counts: make(map[string]int64)}
	}
	return true
}

type peer struct {
	seen   time.Time
	counts map[string]int64 // app id (the hub's own string) → sockets
	extra  []byte           // the heartbeat's "x" object (metrics.go), copied
}

// runStats publishes this node's socket counts on the control channel every
// statsEvery and expires silent nodes. It publishes on its own connection:
// a heartbeat that cannot go out now is worthless later, so it is never
// queued behind messages or retried, and it never counts in Stats.
func (b *Broker) runStats() {
	defer close(b.statsDone)
	var buf []byte
	b.publishStats(&buf) // the first at once: the others learn of us now
	// Then every node publishes at the start of a wall-clock second, so
	// the heartbeats of a whole fleet reach each node together and are
	// read in a few wake-ups instead of one per node: 55 idle nodes on
	// two cores took 46 % of a core with scattered heartbeats, 19 %
	// aligned (README, "A million connections").
	now := time.Now()
	align := time.NewTimer(now.Truncate(statsEvery).Add(statsEvery).Sub(now))
	defer align.Stop()
	// Expiry is checked more often than reports arrive, so a silent node
	// stops counting close to statsExpiry after its last report.
	exp := time.NewTicker(statsExpiryCheck)
	defer exp.Stop()
	var pub <-chan time.Time
	for {
		select {
		case <-b.quit:
			return
		case now := <-exp.C:
			b.expirePeers(now)
		case <-align.C:
			t := time.NewTicker(statsEvery)
			defer t.Stop()
			pub = t.C
			b.publishStats(&buf)
		case <-pub:
			b.publishStats(&buf)
		}
	}
}

// publishStats sends one stats envelope, giving up after statsEvery: the
// next one is due then. Stats goroutine only; buf is its scratch.
func (b *Broker) publishStats(buf *[]byte) {
	h := b.hub.Load()
	if h == nil {
		return
	}
	*buf = appendStats((*buf)[:0], b.node, h.LocalConnections)
	*buf = b.appendExtra(*buf)
	ctx, cancel := context.WithTimeout(b.ctx, statsEvery)
	defer cancel()
	// The alive key tells sync scripts this node's presence fields are
	// current (state.go).
	_, err := b.stats.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b.aliveKey(b.node), "1", aliveTTL)
		b.names.publish(ctx, p, b.names.control(), *buf)
		return nil
	})
	if err != nil {
		b.log.Debug("cluster: stats not published", "err", err)
	}
}

// applyStats records the counts another node reported and pushes the new
// per-app sums into h. Receiver goroutine only; e.counts alias the decoder.
func (b *Broker) applyStats(h *hub.Hub, e *envelope, now time.Time) {
	p := &b.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.nodes[string(e.node)]
	if pe == nil {
		pe = &peer{counts: make(map[string]int64)}
		p.nodes[string(e.node)] = pe
		if _, back := p.expired[string(e.node)]; back {
			// Its presence was dropped here when it went silent: take the
			// cluster's state again.
			delete(p.expired, string(e.node))
			b.log.Info("cluster: silent node is back", "peer", string(e.node))
			b.resyncAll.Store(true)
			select {
			case b.kick <- struct{}{}:
			default:
			}
		}
	}
	pe.seen = now
	pe.extra = append(pe.extra[:0], e.extra...)
	for id, n := range pe.counts {
		p.totals[id] -= n
	}
	clear(pe.counts)
	apps := h.Apps()
	for _, c := range e.counts {
		app := apps.ByID(string(c.app))
		if app == nil || c.n == 0 {
			continue // an app this node does not serve
		}
		pe.counts[app.ID] += c.n
		p.totals[app.ID] += c.n
	}
	p.pushLocked(h)
}

// expirePeers forgets nodes silent for statsExpiry. Stats goroutine only.
func (b *Broker) expirePeers(now time.Time) {
	h := b.hub.Load()
	if h == nil {
		return
	}
	p := &b.peers
	p.mu.Lock()
	var gone []string
	for node, pe := range p.nodes {
		if now.Sub(pe.seen) < statsExpiry {
			continue
		}
		for id, n := range pe.counts {
			p.totals[id] -= n
		}
		delete(p.nodes, node)
		p.expired[node] = now
		gone = append(gone, node)
		b.log.Info("cluster: node silent, its sockets and members no longer count", "peer", node)
	}
	for node, at := range p.expired {
		if now.Sub(at) > goneMemory {
			delete(p.expired, node)
		}
	}
	if len(gone) > 0 {
		p.pushLocked(h)
	}
	p.mu.Unlock()
	for _, node := range gone {
		h.PresenceNodeGone(node)
		if w := b.wh.Load(); w != nil {
			w.nodeGone(node)
		}
	}
}

// pushLocked hands every app's sum to the hub (p.mu held). Apps whose sum
// fell to 0 are told so once and then forgotten.
func (p *peers) pushLocked(h *hub.Hub) {
	for id, n := range p.totals {
		h.SetRemoteConnections(id, n)
		if n == 0 {
			delete(p.totals, id)
		}
	}
}
