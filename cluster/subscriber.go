package cluster

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
)

// maxInterned bounds the receiver's cache of channel-name strings.
const maxInterned = 4096

var errSilent = errors.New("cluster: pub/sub connection answered no PING")

// runReceiver is the only reader of the pub/sub connection. It reads with
// Receive in its own goroutine (go-redis's Channel() drops messages when its
// buffer stays full) and calls the hub in arrival order. go-redis redials and
// resubscribes every recorded channel after a read error; this loop only
// paces the attempts.
func (b *Broker) runReceiver() {
	defer close(b.rcvDone)
	r := receiver{b: b, intern: make(map[string]string)}
	delay := backoffMin
	for {
		ps := b.ps.Load()
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			select {
			case <-b.quit:
				return
			default:
			}
			if ps != b.ps.Load() {
				continue // the manager replaced a silent connection
			}
			b.subUp.Store(false)
			b.subState.lost(b.log, "pub/sub", err)
			if !b.sleep(delay) {
				return
			}
			delay = min(2*delay, backoffMax)
			continue
		}
		delay = backoffMin
		// One clock read per message serves the liveness check and the
		// latency metric.
		now := time.Now().UnixNano()
		b.lastSeen.Store(now)
		if !b.subUp.Swap(true) {
			b.subState.restored(b.log, "pub/sub")
		}
		b.onPubSub(&r, msg, now)
	}
}

// onPubSub handles one message read from a pub/sub connection (the plain
// receiver, or a shard's in cluster mode) at now (unix ns).
func (b *Broker) onPubSub(r *receiver, msg any, now int64) {
	switch m := msg.(type) {
	case *redis.Message:
		r.handle(m.Payload, now)
	case *redis.Subscription:
		// The SUBSCRIBE took effect: events other nodes publish from
		// now on reach this node, so held acknowledgements can go.
		if (m.Kind == "subscribe" || m.Kind == "ssubscribe") && m.Channel != b.names.control() && m.Channel != b.replyChannel() {
			b.ready(m.Channel)
		}
	}
}

// receiver is the receiver goroutine's private state.
type receiver struct {
	b      *Broker
	dec    decoder
	env    envelope
	intern map[string]string
}

// handle decodes one pub/sub message, read at now (unix ns), and passes it
// on. A message's payload goes to the hub as a slice of msg: the hub copies
// it once, into the frame it shares among the subscribers.
func (r *receiver) handle(msg string, now int64) {
	b, e := r.b, &r.env
	if err := r.dec.decode(msg, e); err != nil {
		b.ignored.Add(1)
		return
	}
	if e.kind == kindStats {
		// Heartbeats stay out of Received/Own/Ignored, which count traffic.
		if h := b.hub.Load(); h != nil && string(e.node) != b.node {
			b.heartbeats.Add(1)
			b.applyStats(h, e, time.Now())
		}
		return
	}
	switch e.kind {
	case kindPresence, kindSnapshot, kindCached:
		r.handleState(e)
		return
	case kindQuery:
		if h := b.hub.Load(); h != nil && string(e.node) != b.node {
			b.reply(h, e)
		}
		return
	case kindAnswer:
		b.answer(e)
		return
	}
	if string(e.node) == b.node {
		b.own.Add(1) // our own publish, already delivered locally
		return
	}
	if e.kind == kindRestart {
		b.received.Add(1)
		b.fireRestart()
		return
	}
	h := b.hub.Load()
	if h == nil {
		b.ignored.Add(1)
		return
	}
	app := h.Apps().ByID(string(e.app))
	if app == nil {
		b.ignored.Add(1) // an app this node is not configured for
		return
	}
	b.received.Add(1)
	switch e.kind {
	case kindMessage:
		b.metrics.crossNode(e.sent, now)
		var except string
		if len(e.except) > 0 {
			except = string(e.except)
		}
		h.PublishRemote(app.ID, r.name(e.channel), e.payload, except)
	case kindTerminate:
		h.TerminateRemote(app.ID, string(e.user))
	}
}

// handleState applies a presence change of another node, or the answer to
// one of this node's sync requests (state.go).
func (r *receiver) handleState(e *envelope) {
	b := r.b
	h := b.hub.Load()
	own := string(e.node) == b.node
	if h == nil || (e.kind == kindPresence) == own {
		// Our own changes are applied locally already; snapshots and
		// cached answers sent to other nodes' reply channels are theirs.
		return
	}
	app := h.Apps().ByID(string(e.app))
	if app == nil {
		b.ignored.Add(1)
		return
	}
	b.stateMsgs.Add(1)
	channel := r.name(e.channel)
	switch e.kind {
	case kindPresence:
		if e.on && !b.peers.vouch(r.name(e.node), time.Now()) {
			return
		}
		rm := hub.RemoteMember{Node: r.name(e.node), Key: string(e.user)}
		if e.on {
			rm.ID = append([]byte(nil), e.id...)
			rm.Info = append([]byte(nil), e.info...)
		}
		h.PresenceRemote(app.ID, channel, rm, e.on)
	case kindSnapshot:
		ms := make([]hub.RemoteMember, 0, len(e.members))
		for _, m := range e.members {
			node := r.name(m.node)
			if !b.peers.vouch(node, time.Now()) {
				continue // given up on; its fields go when its alive key does
			}
			ms = append(ms, hub.RemoteMember{
				Node: node,
				Key:  string(m.user),
				ID:   append([]byte(nil), m.id...),
				Info: append([]byte(nil), m.info...),
			})
		}
		sure := make([]string, 0, len(e.sure))
		for _, n := range e.sure {
			sure = append(sure, r.name(n))
		}
		h.PresenceSnapshot(app.ID, channel, ms, sure)
	case kindCached:
		var payload []byte
		if e.cached {
			payload = e.payload
		}
		h.CacheSnapshot(app.ID, channel, payload)
	}
}

// name returns channel as a string, reusing one string per hot channel; the
// hub may keep it (cache channels), so it must not alias parser memory.
func (r *receiver) name(channel []byte) string {
	if s, ok := r.intern[string(channel)]; ok {
		return s
	}
	if len(r.intern) >= maxInterned {
		clear(r.intern)
	}
	s := string(channel)
	r.intern[s] = s
	return s
}

func (b *Broker) fireRestart() {
	f := b.onRestart.Load()
	if f == nil || *f == nil {
		b.log.Warn("cluster: restart command received, but this node has no restart handler")
		return
	}
	if b.restarted.CompareAndSwap(false, true) {
		b.log.Warn("cluster: restart command received")
		go (*f)()
	}
}

// pingEvery is how long the pub/sub connection may be quiet before the
// manager sends a PING.
func (b *Broker) pingEvery() time.Duration {
	return min(max(b.cfg.Liveness/3, 100*time.Millisecond), time.Second)
}

// runManager turns Interest changes into SUBSCRIBE/UNSUBSCRIBE and keeps
// the pub/sub connection honest: a connection that answers no PING within
// Config.Timeout (a half-open TCP connection, a frozen Redis) is replaced.
func (b *Broker) runManager() {
	defer close(b.mgrDone)
	m := manager{b: b, refs: make(map[string]int), applied: make(map[chanKey]string)}
	// go-redis records channels even when the SUBSCRIBE fails and sends
	// them again on every reconnect, so errors here need no retry.
	if b.shards != nil {
		b.shards.subscribe([]string{b.names.control(), b.replyChannel()})
	} else {
		_ = b.ps.Load().Subscribe(b.ctx, b.names.control(), b.replyChannel())
	}
	// Checked twice per PING period, so a silent connection is noticed
	// within half a period of its deadline.
	tick := time.NewTicker(b.pingEvery() / 2)
	defer tick.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-b.kick:
			m.apply()
			if b.shards != nil && b.shards.reroute.Load() {
				b.shards.check()
			}
			if b.resyncAll.Load() && b.subUp.Load() {
				b.resyncAll.Store(false)
				m.resync()
			}
		case <-tick.C:
			m.check()
			if b.resyncAll.Load() && b.subUp.Load() {
				b.resyncAll.Store(false)
				m.resync()
			}
		}
	}
}

// manager is the manager goroutine's private state.
type manager struct {
	b       *Broker
	changes []change
	applied map[chanKey]string // channels with interest → Redis name
	refs    map[string]int     // Redis name → channels using it
	subs    []string
	unsubs  []string
}

type change struct {
	key chanKey
	on  bool
}

func (m *manager) apply() {
	b := m.b
	b.mu.Lock()
	for k, on := range b.want {
		m.changes = append(m.changes, change{k, on})
	}
	clear(b.want)
	b.mu.Unlock()

	m.subs, m.unsubs = m.subs[:0], m.unsubs[:0]
	var readyNow []chanKey
	for _, c := range m.changes {
		name, have := m.applied[c.key]
		switch {
		case c.on && !have:
			name = b.redisName(c.key)
			m.applied[c.key] = name
			b.nameKey(name, c.key, true)
			if m.refs[name]++; m.refs[name] == 1 {
				m.subs = append(m.subs, name)
			} else {
				readyNow = append(readyNow, c.key) // already subscribed
			}
		case c.on && have:
			// Interest dropped and came back before it was applied: the
			// subscription never lapsed.
			readyNow = append(readyNow, c.key)
		case !c.on && have:
			delete(m.applied, c.key)
			b.nameKey(name, c.key, false)
			if m.refs[name]--; m.refs[name] == 0 {
				delete(m.refs, name)
				m.unsubs = append(m.unsubs, name)
			}
		}
	}
	if !b.subUp.Load() {
		// Redis is away: nothing to wait for (the hub's timeout would
		// release these too, later).
		for _, name := range m.subs {
			b.namesMu.Lock()
			readyNow = append(readyNow, b.byName[name]...)
			b.namesMu.Unlock()
		}
	}
	b.readyKeys(readyNow...)
	clear(m.changes)
	m.changes = m.changes[:0]
	if b.shards != nil {
		if len(m.subs) > 0 {
			b.shards.subscribe(m.subs)
		}
		if len(m.unsubs) > 0 {
			b.shards.unsubscribe(m.unsubs)
		}
		return
	}
	ps := b.ps.Load()
	if len(m.subs) > 0 {
		if err := ps.Subscribe(b.ctx, m.subs...); err != nil {
			b.log.Debug("cluster: SUBSCRIBE deferred until Redis is back", "err", err)
		}
	}
	if len(m.unsubs) > 0 { // never empty: UNSUBSCRIBE without names drops all
		if err := ps.Unsubscribe(b.ctx, m.unsubs...); err != nil {
			b.log.Debug("cluster: UNSUBSCRIBE deferred until Redis is back", "err", err)
		}
	}
}

// resync syncs every presence and cache channel this node follows again.
func (m *manager) resync() {
	h := m.b.hub.Load()
	if h == nil {
		return
	}
	for k := range m.applied {
		if typ := pusher.ClassifyChannel(k.channel); typ.IsPresence() || typ.IsCache() {
			m.b.channelReady(h, k)
		}
	}
}

func (m *manager) check() {
	b := m.b
	if b.shards != nil {
		b.shards.check()
		return
	}
	idle := time.Duration(time.Now().UnixNano() - b.lastSeen.Load())
	ping := b.pingEvery()
	if idle < ping {
		return
	}
	if !b.subUp.Load() || idle < ping+b.cfg.Liveness {
		_ = b.ps.Load().Ping(b.ctx)
		return
	}
	select {
	case <-b.quit:
		return
	default:
	}
	b.subUp.Store(false)
	b.silent(b.log, "pub/sub")
	b.lastSeen.Store(time.Now().UnixNano())
	old := b.ps.Load()
	ps := b.sub.Subscribe(b.ctx) // no I/O yet
	b.ps.Store(ps)
	_ = old.Close() // wakes the receiver, which moves to ps
	names := make([]string, 0, len(m.refs)+2)
	names = append(names, b.names.control(), b.replyChannel())
	for n := range m.refs {
		names = append(names, n)
	}
	_ = ps.Subscribe(b.ctx, names...)
}
