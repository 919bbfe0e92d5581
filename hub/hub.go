package hub

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goreverb/reverb/pusher"
)

// Framer appends a complete server WebSocket text frame holding payload to
// dst. The loop package supplies it so the hub needs no WebSocket code.
type Framer func(dst, payload []byte) []byte

// Poster wakes one loop: after Wake the loop must call Local.Drain on its
// own goroutine soon. Wake is called from any goroutine, possibly with a
// shard mutex held, so it must not block.
type Poster interface {
	Wake()
}

// Options configure a Hub.
type Options struct {
	// Apps is the set of configured apps. Required.
	Apps *pusher.AppSet
	// Loops is the number of event loops that will call NewLocal. Required.
	Loops int
	// Frame builds WebSocket frames. Required.
	Frame Framer
	// Broker reaches other nodes; nil means a single node.
	Broker Broker
	// Hooks receives the events webhooks are made of; nil means none.
	Hooks Hooks
	// Logger, when set, logs refused subscriptions (--debug).
	Logger *slog.Logger
}

const numShards = 64

// Hub is the node-wide registry. Its exported methods are safe for
// concurrent use unless stated otherwise.
type Hub struct {
	apps   map[*pusher.App]*appState
	byID   *pusher.AppSet
	frame  Framer
	broker Broker
	hooks  Hooks     // nil without webhooks
	dir    Directory // nil on a single node
	// clustered is set when a real broker is configured: subscriptions
	// then wait for their channel to be ready (InterestReady).
	clustered bool
	locals    []*Local

	notReadyMu sync.Mutex
	notReady   map[*Channel]struct{} // channels waiting for InterestReady

	// clock is the coarse unix time in seconds, advanced by Tick.
	clock atomic.Int64
	// epoch is the clock at start; per-socket times are kept as int32
	// seconds since then.
	epoch int64

	idHigh uint64
	idSeq  atomic.Uint64

	counters Counters
	log      *slog.Logger
}

type appState struct {
	hub   *Hub
	app   *pusher.App
	idx   int          // position in Apps().All(), for per-app metrics
	conns atomic.Int64 // established sockets on this node
	// remote is the app's established sockets on the other nodes, as last
	// reported by the broker; 0 on a single node.
	remote atomic.Int64
	shards [numShards]shard
}

type shard struct {
	mu    sync.Mutex
	chans map[string]*Channel
}

// New builds a hub with one Local per loop.
func New(o Options) *Hub {
	h := &Hub{
		apps:   make(map[*pusher.App]*appState),
		byID:   o.Apps,
		frame:  o.Frame,
		broker: o.Broker,
		hooks:  o.Hooks,
		log:    o.Logger,
	}
	if h.broker == nil {
		h.broker = NoBroker{}
	}
	h.dir, _ = h.broker.(Directory)
	_, single := h.broker.(NoBroker)
	h.clustered = !single
	h.notReady = make(map[*Channel]struct{})
	for i, a := range o.Apps.All() {
		as := &appState{hub: h, app: a, idx: i}
		for i := range as.shards {
			as.shards[i].chans = make(map[string]*Channel)
		}
		h.apps[a] = as
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	// Socket ids are "<node>.<seq>": a random node part in 1..1e9 keeps ids
	// of different nodes apart, the counter keeps this node's ids unique.
	h.idHigh = binary.LittleEndian.Uint64(seed[:8])%1_000_000_000 + 1
	h.idSeq.Store(binary.LittleEndian.Uint64(seed[8:]) % 1_000_000_000)
	h.clock.Store(time.Now().Unix())
	h.epoch = h.clock.Load()
	h.locals = make([]*Local, o.Loops)
	for i := range h.locals {
		h.locals[i] = newLocal(h, i)
	}
	return h
}

// Local returns the per-loop state of loop i (0 ≤ i < Options.Loops).
func (h *Hub) Local(i int) *Local { return h.locals[i] }

// Apps returns the configured apps.
func (h *Hub) Apps() *pusher.AppSet { return h.byID }

// Tick advances the hub's coarse clock to now, releases subscriptions that
// waited too long for their channel (readyTimeout) and evicts expired cache
// entries. Call it about once a second from one goroutine.
func (h *Hub) Tick(now time.Time) {
	sec := now.Unix()
	prev := h.clock.Swap(sec)
	if h.clustered {
		h.expireNotReady(sec)
	}
	if sec/60 != prev/60 {
		h.evictCaches(sec)
	}
}

// readyTimeout bounds how long a subscription waits for the broker to
// confirm its channel (Redis away or frozen): then it is acknowledged
// anyway and only this node's events are guaranteed.
const readyTimeout = 2

// awaitReady marks ch not ready after the node's first subscriber joined
// it on a clustered node (shard held).
func (h *Hub) awaitReady(ch *Channel) {
	ch.ready = false
	ch.notReadySince = h.Now()
	h.notReadyMu.Lock()
	h.notReady[ch] = struct{}{}
	h.notReadyMu.Unlock()
}

// markReady releases the acknowledgements waiting for ch (shard held).
func (h *Hub) markReady(ch *Channel) {
	ch.ready = true
	if ch.waiters != nil {
		for i, l := range h.locals {
			if ch.waiters[i/64]&(1<<uint(i%64)) != 0 {
				l.post(delivery{kind: deliverReady, ch: ch})
			}
		}
		clear(ch.waiters)
	}
	h.notReadyMu.Lock()
	delete(h.notReady, ch)
	h.notReadyMu.Unlock()
}

// InterestReady is the broker's confirmation that this node now receives
// channel from the other nodes (its SUBSCRIBE took effect, or it cannot
// wait). Subscriptions to the channel held back since are acknowledged.
// Any goroutine.
func (h *Hub) InterestReady(appID, channel string) {
	if ch, sh := h.lockChannel(appID, channel); ch != nil {
		if !ch.ready {
			h.markReady(ch)
		}
		sh.mu.Unlock()
	}
}

func (h *Hub) expireNotReady(now int64) {
	var late []*Channel
	h.notReadyMu.Lock()
	for ch := range h.notReady {
		late = append(late, ch)
	}
	h.notReadyMu.Unlock()
	for _, ch := range late {
		sh := ch.as.shard(ch.name)
		sh.mu.Lock()
		if !ch.ready && now-ch.notReadySince >= readyTimeout {
			h.markReady(ch)
		} else if ch.ready {
			h.notReadyMu.Lock()
			delete(h.notReady, ch)
			h.notReadyMu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// Now returns the coarse clock in unix seconds.
func (h *Hub) Now() int64 { return h.clock.Load() }

// newSocketSeq returns the local part of a new socket id.
func (h *Hub) newSocketSeq() uint64 {
	for {
		if n := h.idSeq.Add(1) % 1_000_000_000_000; n != 0 {
			return n
		}
	}
}

func appendSocketID(dst []byte, node, seq uint64) []byte {
	dst = strconv.AppendUint(dst, node, 10)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, seq, 10)
}

// localSeq maps a socket id to the seq of a socket of this node, or 0 when
// it is empty, malformed or another node's.
func (h *Hub) localSeq(id string) uint64 {
	node, seq, ok := strings.Cut(id, ".")
	if !ok {
		return 0
	}
	n, err1 := strconv.ParseUint(node, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || n != h.idHigh {
		return 0
	}
	return q
}

func (as *appState) shard(name string) *shard {
	// FNV-1a: no allocation, good enough spread for 64 shards.
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return &as.shards[h%numShards]
}

// state returns the app's state; app must come from the hub's AppSet.
func (h *Hub) state(app *pusher.App) *appState { return h.apps[app] }

// Publish implements pusher.Backend: one frame per channel, encoded once and
// shared by every receiver on every loop.
func (h *Hub) Publish(app *pusher.App, channels []string, event string, data []byte, except string) {
	as := h.state(app)
	if as == nil {
		return
	}
	var buf []byte
	for _, name := range channels {
		if name == "" {
			continue
		}
		buf = pusher.AppendChannelEvent(buf[:0], event, name, data)
		h.publish(as, name, buf, h.localSeq(except), true)
		h.broker.Publish(app.ID, name, buf, except)
	}
}

// PublishRemote delivers a payload that arrived from another node to this
// node's subscribers. payload is only read, during the call: the frame is
// a copy of it, so a broker may pass a view of memory it must not change
// (cluster passes the bytes Redis delivered). Any goroutine.
func (h *Hub) PublishRemote(appID, channel string, payload []byte, except string) {
	app := h.byID.ByID(appID)
	if app == nil {
		return
	}
	h.publish(h.state(app), channel, payload, h.localSeq(except), true)
}

// publish frames payload once and queues it on every loop with subscribers
// of the channel, except the local socket with seq except (0 = none). cache
// says whether a cache channel stores it.
func (h *Hub) publish(as *appState, name string, payload []byte, except uint64, cache bool) {
	sh := as.shard(name)
	sh.mu.Lock()
	ch := sh.chans[name]
	if ch == nil {
		if !cache || !pusher.ClassifyChannel(name).IsCache() {
			sh.mu.Unlock()
			return
		}
		// Pusher semantics: an event to an empty cache channel is kept for
		// the next subscriber (deviation from Reverb, which drops it).
		ch = newChannel(as, name, len(h.locals))
		sh.chans[name] = ch
	}
	frame := h.newFrame(payload)
	if cache && ch.typ.IsCache() {
		ch.cacheFrame = frame
		ch.cachePayload = frame[len(frame)-len(payload):]
		ch.cacheAt = h.Now()
	}
	h.postLocked(ch, frame, except)
	sh.mu.Unlock()
}

// newFrame frames payload into a buffer of its own: the frame is shared by
// every receiver and never modified, so it must not live in scratch space.
// 14 bytes cover the largest server frame header.
func (h *Hub) newFrame(payload []byte) []byte {
	return h.frame(make([]byte, 0, len(payload)+14), payload)
}

// postLocked queues frame to every loop with subscribers of ch (shard held).
func (h *Hub) postLocked(ch *Channel, frame []byte, except uint64) {
	ch.pubSeq++
	d := delivery{kind: deliverFrame, ch: ch, frame: frame, except: except, seq: ch.pubSeq, at: Monotime()}
	for i, n := range ch.perLoop {
		if n > 0 {
			h.locals[i].post(d)
		}
	}
}

// Channel implements pusher.Backend. On a cluster the other nodes' counts
// are asked for and added.
func (h *Hub) Channel(app *pusher.App, name string) pusher.ChannelInfo {
	as := h.state(app)
	if as == nil {
		return pusher.ChannelInfo{}
	}
	var in pusher.ChannelInfo
	presence := false
	sh := as.shard(name)
	sh.mu.Lock()
	if ch := sh.chans[name]; ch != nil {
		in = ch.info(h.Now())
		presence = ch.subs > 0 && ch.members != nil
	}
	sh.mu.Unlock()
	if h.dir != nil {
		for _, v := range h.dir.RemoteChannels(app.ID, name, false, false) {
			if v.Name == name {
				addView(&in, presence, v)
			}
		}
	}
	return in
}

// Channels implements pusher.Backend. On a cluster the other nodes'
// channels are asked for and merged.
func (h *Hub) Channels(app *pusher.App, prefix string, visit func(name string, info pusher.ChannelInfo)) {
	as := h.state(app)
	if as == nil {
		return
	}
	now := h.Now()
	type item struct {
		info     pusher.ChannelInfo
		presence bool
	}
	items := make(map[string]*item)
	var names []string
	for i := range as.shards {
		sh := &as.shards[i]
		sh.mu.Lock()
		for name, ch := range sh.chans {
			if ch.subs > 0 && strings.HasPrefix(name, prefix) {
				items[name] = &item{ch.info(now), ch.members != nil}
				names = append(names, name)
			}
		}
		sh.mu.Unlock()
	}
	if h.dir != nil {
		for _, v := range h.dir.RemoteChannels(app.ID, prefix, true, false) {
			it := items[v.Name]
			if it == nil {
				it = &item{}
				items[v.Name] = it
				names = append(names, v.Name)
			}
			addView(&it.info, it.presence, v)
		}
	}
	for _, name := range names {
		visit(name, items[name].info)
	}
}

// addView adds what the other nodes report of a channel to this node's
// info. The member count is this node's own when it follows the presence
// channel (it holds the whole list).
func addView(in *pusher.ChannelInfo, followed bool, v ChannelView) {
	in.SubscriptionCount += v.Subs
	in.Occupied = in.SubscriptionCount > 0
	if !followed {
		in.UserCount = max(in.UserCount, v.UserCount)
	}
}

// Users implements pusher.Backend. A node without subscribers of the
// channel asks the others (each holds the whole member list).
func (h *Hub) Users(app *pusher.App, name string, visit func(idJSON []byte)) bool {
	as := h.state(app)
	if as == nil {
		return false
	}
	sh := as.shard(name)
	sh.mu.Lock()
	ch := sh.chans[name]
	if ch == nil || ch.subs == 0 {
		sh.mu.Unlock()
		if h.dir != nil {
			for _, v := range h.dir.RemoteChannels(app.ID, name, false, true) {
				if v.Name == name && v.Subs > 0 {
					for _, id := range v.Users {
						visit(id)
					}
					return true
				}
			}
		}
		return false
	}
	ms := ch.orderedMembers(nil)
	sh.mu.Unlock()
	for _, m := range ms {
		visit(m.IDJSON)
	}
	return true
}

// LocalChannels reports this node's channels of appID with subscribers:
// channel name, or every channel starting with name when prefix is set.
// visit gets the subscribers here, the member count of presence channels
// and, with users, the member ids as JSON. A cluster broker answers other
// nodes' Directory questions with it. Any goroutine; visit runs with no
// lock held.
func (h *Hub) LocalChannels(appID, name string, prefix, users bool, visit func(name string, subs, userCount int, ids [][]byte)) {
	app := h.byID.ByID(appID)
	if app == nil {
		return
	}
	as := h.state(app)
	type item struct {
		name        string
		subs, count int
		ids         [][]byte
	}
	var items []item
	add := func(ch *Channel) {
		if ch == nil || ch.subs == 0 {
			return
		}
		it := item{name: ch.name, subs: ch.subs, count: len(ch.members)}
		if users {
			for _, m := range ch.orderedMembers(nil) {
				it.ids = append(it.ids, m.IDJSON)
			}
		}
		items = append(items, it)
	}
	if !prefix {
		sh := as.shard(name)
		sh.mu.Lock()
		add(sh.chans[name])
		sh.mu.Unlock()
	} else {
		for i := range as.shards {
			sh := &as.shards[i]
			sh.mu.Lock()
			for n, ch := range sh.chans {
				if strings.HasPrefix(n, name) {
					add(ch)
				}
			}
			sh.mu.Unlock()
		}
	}
	for _, it := range items {
		visit(it.name, it.subs, it.count, it.ids)
	}
}

// Terminate implements pusher.Backend: every loop closes its sockets of the
// user; other nodes are asked through the broker.
func (h *Hub) Terminate(app *pusher.App, userID string) {
	h.terminateLocal(app, userID)
	h.broker.Terminate(app.ID, userID)
}

// TerminateRemote closes this node's sockets of userID on behalf of another node.
func (h *Hub) TerminateRemote(appID, userID string) {
	if app := h.byID.ByID(appID); app != nil {
		h.terminateLocal(app, userID)
	}
}

func (h *Hub) terminateLocal(app *pusher.App, userID string) {
	d := delivery{kind: deliverTerminate, app: app, user: userID}
	for _, l := range h.locals {
		if l.bound.Load() {
			l.post(d)
		}
	}
}

// Connections implements pusher.Backend: this node's established sockets
// of app plus the other nodes'.
func (h *Hub) Connections(app *pusher.App) int {
	as := h.state(app)
	if as == nil {
		return 0
	}
	if h.dir != nil {
		// Asked now rather than the heartbeat sums, which trail by a second.
		return int(as.conns.Load()) + h.dir.RemoteConnections(app.ID)
	}
	return int(as.conns.Load() + as.remote.Load())
}

// LocalConnectionsOf returns the sockets of app appID established on this
// node (0 for an unknown app). Any goroutine.
func (h *Hub) LocalConnectionsOf(appID string) int64 {
	if app := h.byID.ByID(appID); app != nil {
		return h.state(app).conns.Load()
	}
	return 0
}

// LocalConnections calls visit once per configured app with the number of
// sockets established on this node. A cluster broker reads it about once a
// second to tell the other nodes. Any goroutine; it takes no lock.
func (h *Hub) LocalConnections(visit func(appID string, n int64)) {
	for app, as := range h.apps {
		visit(app.ID, as.conns.Load())
	}
}

// SetRemoteConnections records n, the established sockets of app appID on
// all other nodes together; Connections and the max_connections check of
// Open add it to this node's own count. Unknown app ids are ignored. Any
// goroutine.
func (h *Hub) SetRemoteConnections(appID string, n int64) {
	if app := h.byID.ByID(appID); app != nil {
		if as := h.state(app); as != nil {
			as.remote.Store(max(n, 0))
		}
	}
}

func (h *Hub) evictCaches(now int64) {
	for _, as := range h.apps {
		ttl := int64(as.app.CacheTTL / time.Second)
		for i := range as.shards {
			sh := &as.shards[i]
			sh.mu.Lock()
			for name, ch := range sh.chans {
				if ch.subs == 0 && ch.cacheFrame != nil && now-ch.cacheAt >= ttl {
					delete(sh.chans, name)
				}
			}
			sh.mu.Unlock()
		}
	}
}
