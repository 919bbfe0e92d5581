package hub

import (
	"sync"
	"sync/atomic"

	"github.com/goreverb/reverb/pusher"
)

type deliveryKind uint8

const (
	deliverFrame deliveryKind = iota
	deliverTerminate
	deliverReady // a channel became ready: send its waiting acknowledgements
)

// delivery is one unit of cross-loop work in a Local's inbox.
type delivery struct {
	kind   deliveryKind
	ch     *Channel
	frame  []byte
	except uint64 // Session.seq of the socket to skip, 0 = none
	seq    uint64 // Channel.pubSeq of this delivery
	app    *pusher.App
	user   string
	at     int64 // Monotime when the node accepted the event (metrics.go)
	sent   int32 // sockets handed the frame in the current slice, loop only
}

type userKey struct {
	as *appState
	id string
}

// Local is the hub state of one event loop. Unless a method says "any
// goroutine", it must only be called on its own loop.
type Local struct {
	h      *Hub
	idx    int
	bound  atomic.Bool
	poster Poster

	mu    sync.Mutex // guards inbox and scheduled
	inbox []delivery
	// scheduled is set by the post that wakes the loop and cleared only by
	// a Drain that finds nothing left, so a loop that is still working
	// through a batch is not woken again.
	scheduled bool

	// Drain state, loop only: the batch taken from the inbox, the next
	// item, and the current run (consecutive deliveries to one channel)
	// with a snapshot of its subscribers and how far it got.
	batch    []delivery
	pos      int
	runStart int
	snap     []snapEntry
	snapPos  int

	dec     pusher.Decoder
	tmp     []byte          // payload scratch, reused per message
	out     []byte          // frames of direct replies; valid until ResetScratch
	members []pusher.Member // scratch for presence lists

	// pending holds subscriptions whose acknowledgement waits for their
	// channel to be ready on this node (cluster only).
	pending []pendingAck

	// users indexes this loop's sockets by user id (signed in, or present on
	// a presence channel) for terminate_connections. The int counts reasons.
	users map[userKey]map[*Session]int

	stats localStats // delivery observations for the loop's metrics (metrics.go)
}

func newLocal(h *Hub, idx int) *Local {
	return &Local{h: h, idx: idx, users: make(map[userKey]map[*Session]int)}
}

// Bind attaches the loop's Poster. Call once, on the loop, before the first
// Open; until then the hub never posts to this loop.
func (l *Local) Bind(p Poster) {
	l.poster = p
	l.bound.Store(true)
}

// Index returns the loop index of l.
func (l *Local) Index() int { return l.idx }

// post appends d to the inbox and wakes the loop on the first append since
// the last drain. Any goroutine.
func (l *Local) post(d delivery) {
	l.mu.Lock()
	l.inbox = append(l.inbox, d)
	wake := !l.scheduled
	l.scheduled = true
	l.mu.Unlock()
	if wake {
		l.poster.Wake()
	}
}

// snapEntry is one subscriber of the run being delivered.
type snapEntry struct {
	s      *Session
	joined uint64
}

// Drain runs queued deliveries in order. Consecutive deliveries to one
// channel form a run that is handed to each subscriber together, so the
// loop's flush writes them with one writev per socket. With budget > 0 it
// stops after about budget sockets and returns true: the loop then flushes,
// lets other events (HTTP requests, client frames) run, and calls Drain
// again; later posts wait behind the unfinished batch, so order holds.
// budget 0 drains everything. It returns false when nothing is left.
func (l *Local) Drain(budget int) (more bool) {
	sent := 0
	for {
		if l.snapPos < len(l.snap) {
			run := l.batch[l.runStart:l.pos]
			for l.snapPos < len(l.snap) {
				if budget > 0 && sent >= budget {
					l.noteRun(run)
					return true
				}
				e := l.snap[l.snapPos]
				l.snapPos++
				if !e.s.open {
					continue // closed since the snapshot
				}
				for i := range run {
					if d := &run[i]; e.joined < d.seq && e.s.seq != d.except {
						e.s.conn.Send(d.frame)
						d.sent++
					}
				}
				sent++
			}
			l.noteRun(run)
			clear(l.snap) // drop session references for the GC
			l.snap, l.snapPos = l.snap[:0], 0
		}
		if l.pos >= len(l.batch) {
			clear(l.batch) // drop frame and channel references for the GC
			l.mu.Lock()
			if len(l.inbox) == 0 {
				l.scheduled = false
				l.mu.Unlock()
				l.batch, l.pos = l.batch[:0], 0
				return false
			}
			l.batch, l.inbox = l.inbox, l.batch[:0]
			l.mu.Unlock()
			l.pos = 0
		}
		d := &l.batch[l.pos]
		switch d.kind {
		case deliverFrame:
			l.runStart = l.pos
			for l.pos++; l.pos < len(l.batch); l.pos++ {
				if n := &l.batch[l.pos]; n.kind != deliverFrame || n.ch != d.ch {
					break
				}
			}
			for s, joined := range d.ch.local[l.idx] {
				l.snap = append(l.snap, snapEntry{s, joined})
			}
		case deliverReady:
			l.pos++
			l.ackReady(d.ch)
		case deliverTerminate:
			l.pos++
			as := l.h.state(d.app)
			for s := range l.users[userKey{as, d.user}] {
				s.conn.Close(d.app.TerminateCode, "Connection terminated by the application")
				sent++
			}
		}
	}
}

// ResetScratch forgets the frames of direct replies. The loop calls it
// after flushing every socket it sent to.
func (l *Local) ResetScratch() {
	if cap(l.out) > 1<<20 {
		l.out = nil
	}
	l.out = l.out[:0]
	l.resetDelivered()
}

// Scratch returns the buffer of direct replies that ResetScratch reuses: a
// transport that must keep a frame lying in it past the flush copies it.
// Loop only; the result is only to be compared against, never written.
func (l *Local) Scratch() []byte { return l.out }

// reply frames payload into the loop's scratch and queues it on s.
func (l *Local) reply(s *Session, payload []byte) {
	start := len(l.out)
	l.out = l.h.frame(l.out, payload)
	s.conn.Send(l.out[start:len(l.out):len(l.out)])
}

func (l *Local) sendError(s *Session, e *pusher.Error) {
	l.tmp = pusher.AppendError(l.tmp[:0], e)
	l.reply(s, l.tmp)
}

// Fail sends e as pusher:error and closes the socket with e's code.
func (l *Local) Fail(s *Session, e *pusher.Error) {
	l.sendError(s, e)
	s.conn.Close(e.Code, e.Message)
}

// reject answers a connection that cannot be established (§2.3): the error
// message, then a close frame with the same code.
func (l *Local) reject(c Conn, e *pusher.Error) {
	l.tmp = pusher.AppendError(l.tmp[:0], e)
	start := len(l.out)
	l.out = l.h.frame(l.out, l.tmp)
	c.Send(l.out[start:len(l.out):len(l.out)])
	c.Close(e.Code, e.Message)
}

// Open runs the checks of §2.3 for a socket that just upgraded on path
// /app/{key} with the given Origin header, and on success initialises s and
// sends connection_established. On failure it sends the error and closes c,
// and returns false.
func (l *Local) Open(s *Session, c Conn, key string, origin []byte) bool {
	app := l.h.byID.ByKey(key)
	if app == nil {
		l.reject(c, pusher.ErrAppNotFound)
		return false
	}
	as := l.h.state(app)
	// Other nodes' sockets count too (§8.4), as last reported; the
	// report lags by about a second, so a burst spread over nodes may
	// briefly overshoot the limit.
	if n := as.conns.Add(1); app.MaxConnections > 0 && n+as.remote.Load() > int64(app.MaxConnections) {
		as.conns.Add(-1)
		l.reject(c, pusher.ErrOverQuota)
		return false
	}
	if !pusher.OriginAllowed(app.AllowedOrigins, origin) {
		as.conns.Add(-1)
		l.reject(c, pusher.ErrOriginNotAllowed)
		return false
	}
	*s = Session{
		App:      app,
		LastSeen: l.h.Now(),
		conn:     c,
		as:       as,
		seq:      l.h.newSocketSeq(),
		open:     true,
	}
	var id [48]byte
	l.tmp = pusher.AppendConnectionEstablished(l.tmp[:0], string(s.AppendID(id[:0])), app.ActivityTimeout)
	l.reply(s, l.tmp)
	return true
}

// Closed forgets a socket: every channel is left (presence members removed
// with member_removed to the others) and the app's connection count drops.
func (l *Local) Closed(s *Session) {
	if !s.open {
		return
	}
	for i := len(s.subs) - 1; i >= 0; i-- {
		l.unsubscribeAt(s, i)
	}
	if s.signin != nil {
		l.dropUser(s, s.signin.id)
	}
	s.as.conns.Add(-1)
	// conn stays set: a drain that is still handing this session a run of
	// frames (its write failed and closed it mid-run) calls Send on a
	// closed conn, which ignores it.
	s.open = false
}

// Message handles one complete inbound data message of s (§3.2). msg is
// only read during the call.
func (l *Local) Message(s *Session, msg []byte) {
	now := l.h.Now()
	s.Touch(now, false)
	if rl := &s.App.RateLimit; rl.Enabled {
		if t := int32(now - l.h.epoch); s.rlCount == 0 || int64(t-s.rlStart) >= int64(rl.Decay.Seconds()) {
			s.rlStart, s.rlCount = t, 0
		}
		if int(s.rlCount) >= rl.MaxAttempts {
			if rl.Terminate {
				l.Fail(s, pusher.ErrRateLimited)
			} else {
				l.sendError(s, pusher.ErrRateLimited)
			}
			return
		}
		s.rlCount++
	}
	m, err := l.dec.Decode(msg)
	if err != nil {
		l.sendError(s, pusher.ErrInvalidMessage)
		return
	}
	switch m.Kind {
	case pusher.KindPing:
		l.tmp = pusher.AppendPong(l.tmp[:0])
		l.reply(s, l.tmp)
	case pusher.KindSubscribe:
		l.subscribe(s, &m)
	case pusher.KindUnsubscribe:
		if i := s.findSub(m.Channel); i >= 0 {
			l.unsubscribeAt(s, i)
		}
	case pusher.KindSignin:
		l.signin(s, &m)
	case pusher.KindClientEvent:
		l.clientEvent(s, &m)
	}
}

// SendPusherPing sends {"event":"pusher:ping"} to an idle socket.
func (l *Local) SendPusherPing(s *Session) {
	l.tmp = pusher.AppendPing(l.tmp[:0])
	l.reply(s, l.tmp)
}

func (l *Local) subscribe(s *Session, m *pusher.Message) {
	app := s.App
	if app.MaxChannels > 0 && len(s.subs) >= app.MaxChannels && s.findSub(m.Channel) < 0 {
		// At the cap: refused before any work (auth, shard lock), and the
		// socket and its channels stay as they are.
		l.h.counters.RefusedSubscriptions.Add(1)
		if l.h.log != nil {
			var id [48]byte
			l.h.log.Debug("subscription refused", "socket_id", string(s.AppendID(id[:0])), "channel", string(m.Channel), "channels", len(s.subs))
		}
		l.sendError(s, pusher.ErrTooManyChannels)
		return
	}
	typ := pusher.ClassifyChannel(string(m.Channel))
	switch {
	case typ.IsReserved():
		l.sendError(s, pusher.ErrUnauthorized)
		return
	case typ.IsUser():
		if !app.Signin || s.signin == nil || string(m.Channel[len(pusher.UserChannelPrefix):]) != s.signin.id {
			l.sendError(s, pusher.ErrUnauthorized)
			return
		}
	case typ.NeedsAuth():
		var id [48]byte
		if !pusher.CheckChannelAuth(app.Secret, string(s.AppendID(id[:0])), m.Channel, m.ChannelData, m.Auth) {
			l.sendError(s, pusher.ErrUnauthorized)
			return
		}
	}

	var (
		uKey  string
		uJSON []byte
		info  []byte
		added []byte // member_added data: the channel_data object
	)
	if typ.IsPresence() {
		if len(m.ChannelData) > 0 {
			idJSON, id, infoJSON, err := l.dec.ParseChannelData(m.ChannelData)
			if err == nil && id != "" {
				uKey = id
				uJSON = append([]byte(nil), idJSON...)
				info = append([]byte(nil), infoJSON...)
				added = m.ChannelData
			}
		} else if s.signin != nil {
			// pusher-js with signin may join presence without channel_data:
			// the signed-in identity stands in (§4.5).
			uKey = s.signin.id
			uJSON = pusher.AppendJSONString(nil, []byte(uKey))
			info = s.signin.info
			b := append([]byte(`{"user_id":`), uJSON...)
			b = append(b, `,"user_info":`...)
			added = append(append(b, info...), '}')
		}
	}

	if i := s.findSub(m.Channel); i >= 0 {
		if s.subs[i].userKey() == uKey {
			// Duplicate subscribe [R]: acknowledge again, change nothing.
			l.ackWhenReady(s, s.subs[i].ch, typ)
			return
		}
		// Same socket, other identity: leave as the old user, join as the new.
		l.unsubscribeAt(s, i)
	}

	name := string(m.Channel)
	sh := s.as.shard(name)
	sh.mu.Lock()
	ch := sh.chans[name]
	if ch == nil {
		ch = newChannel(s.as, name, len(l.h.locals))
		sh.chans[name] = ch
	}
	ch.subs++
	ch.perLoop[l.idx]++
	if ch.subs == 1 {
		l.h.broker.Interest(app.ID, ch.name, true)
		if l.h.clustered {
			l.h.awaitReady(ch)
		}
	}
	if ch.subs == 1 {
		l.h.hookOccupancy(ch, true)
	}
	l.h.hookCount(ch)
	if uKey != "" {
		mb := ch.members[uKey]
		if mb == nil {
			mb = ch.newMember(uKey, uJSON, info)
		}
		if mb.local++; mb.local == 1 {
			if len(mb.nodes) == 0 {
				// New to the cluster as far as this node knows. Posted
				// before the joiner is acknowledged, and excluded by id
				// anyway: it gets only its subscription_succeeded.
				l.h.memberAdded(ch, mb, added, s.seq)
			}
			if len(info) == 0 {
				info = []byte("null")
			}
			l.h.broker.Presence(app.ID, ch.name, uKey, uJSON, info, true)
			l.h.hookMember(ch, uKey, true)
		}
	}
	if ch.local[l.idx] == nil {
		ch.local[l.idx] = make(map[*Session]uint64)
	}
	ch.local[l.idx][s] = pendingJoin
	sub := subscription{ch: ch}
	if uKey != "" {
		sub.user = &presenceUser{key: uKey, json: uJSON}
	}
	s.addSub(sub)
	ready := l.readyLocked(ch)
	var cached []byte
	if ready {
		cached = l.ackLocked(s, ch, typ)
	}
	sh.mu.Unlock()

	if uKey != "" {
		l.addUser(s, uKey)
	}
	if ready {
		l.sendAck(s, ch, typ, cached)
	} else {
		l.pending = append(l.pending, pendingAck{s, ch, typ})
	}
}

// pendingJoin is the join number of a subscription not acknowledged yet: it
// receives nothing until ackLocked sets the real one.
const pendingJoin = ^uint64(0)

// pendingAck is a subscription whose acknowledgement waits until this node
// receives the channel from the other nodes (see Hub.InterestReady).
type pendingAck struct {
	s   *Session
	ch  *Channel
	typ pusher.ChannelType
}

// ackWhenReady acknowledges a repeated subscribe now, or once the channel
// is ready on this node: a client must not be told it is subscribed while
// events published on other nodes could still miss it.
func (l *Local) ackWhenReady(s *Session, ch *Channel, typ pusher.ChannelType) {
	sh := s.as.shard(ch.name)
	sh.mu.Lock()
	ready := l.readyLocked(ch)
	var cached []byte
	if ready {
		cached = l.ackLocked(s, ch, typ)
	}
	sh.mu.Unlock()
	if ready {
		l.sendAck(s, ch, typ, cached)
	} else {
		l.pending = append(l.pending, pendingAck{s, ch, typ})
	}
}

// readyLocked reports whether ch is ready and, if not, registers this loop
// as waiting for it (shard held).
func (l *Local) readyLocked(ch *Channel) bool {
	if !ch.ready {
		if ch.waiters == nil {
			ch.waiters = make([]uint64, (len(l.h.locals)+63)/64)
		}
		ch.waiters[l.idx/64] |= 1 << uint(l.idx%64)
	}
	return ch.ready
}

// ackReady sends the acknowledgements that waited for ch (loop only).
func (l *Local) ackReady(ch *Channel) {
	kept := l.pending[:0]
	for _, p := range l.pending {
		switch {
		case p.ch != ch:
			kept = append(kept, p)
		case p.s.open && p.s.on(ch):
			sh := p.s.as.shard(ch.name)
			sh.mu.Lock()
			cached := l.ackLocked(p.s, ch, p.typ)
			sh.mu.Unlock()
			l.sendAck(p.s, ch, p.typ, cached)
		}
	}
	clear(l.pending[len(kept):])
	l.pending = kept
}

// ackLocked makes s receive ch's deliveries from now on and builds its
// subscription_succeeded in l.tmp; it returns the cached event to replay
// on a cache channel (shard held). The member list, the cached event and
// the join number are taken together, so the socket's first delivery is
// the first change after what the acknowledgement shows. A repeated
// subscribe keeps its join number: nothing queued for it is skipped.
func (l *Local) ackLocked(s *Session, ch *Channel, typ pusher.ChannelType) (cached []byte) {
	if ch.local[l.idx][s] == pendingJoin {
		ch.local[l.idx][s] = ch.pubSeq
	}
	if typ.IsPresence() {
		l.members = ch.orderedMembers(l.members[:0])
		l.tmp = pusher.AppendPresenceSucceeded(l.tmp[:0], ch.name, l.members)
		clear(l.members)
	} else {
		l.tmp = pusher.AppendSubscriptionSucceeded(l.tmp[:0], ch.name)
	}
	if typ.IsCache() && ch.cacheValid(l.h.Now()) {
		cached = ch.cacheFrame
	}
	return cached
}

// sendAck sends the acknowledgement ackLocked built and, on cache
// channels, the cached event or pusher:cache_miss.
func (l *Local) sendAck(s *Session, ch *Channel, typ pusher.ChannelType, cached []byte) {
	l.reply(s, l.tmp)
	if typ.IsCache() {
		if cached != nil {
			s.conn.Send(cached)
		} else {
			l.tmp = pusher.AppendCacheMiss(l.tmp[:0], ch.name)
			l.reply(s, l.tmp)
			if h := l.h; h.hooks != nil && s.App.HookMask().Has(pusher.HookCacheMiss) {
				h.hooks.CacheMiss(s.App, ch.name)
			}
		}
	}
}

// unsubscribeAt removes s from its i-th channel with the side effects of §4.3.
func (l *Local) unsubscribeAt(s *Session, i int) {
	sub := s.subs[i]
	ch := sub.ch
	delete(ch.local[l.idx], s)
	if len(ch.local[l.idx]) == 0 {
		ch.local[l.idx] = nil
	}
	sh := s.as.shard(ch.name)
	sh.mu.Lock()
	ch.subs--
	ch.perLoop[l.idx]--
	if sub.user != nil {
		if mb := ch.members[sub.user.key]; mb != nil {
			if mb.local--; mb.local == 0 {
				l.h.broker.Presence(s.App.ID, ch.name, sub.user.key, mb.id, mb.info, false)
				l.h.hookMember(ch, sub.user.key, false)
				if !mb.present() {
					l.h.memberRemoved(ch, sub.user.key, mb, s.seq)
				}
			}
		}
	}
	l.h.hookCount(ch)
	if ch.subs == 0 {
		l.h.broker.Interest(s.App.ID, ch.name, false)
		l.h.hookOccupancy(ch, false)
		if !ch.cacheValid(l.h.Now()) && sh.chans[ch.name] == ch {
			delete(sh.chans, ch.name)
		}
	}
	sh.mu.Unlock()

	s.removeSub(i)
	if sub.user != nil {
		l.dropUser(s, sub.user.key)
	}
}

func (l *Local) signin(s *Session, m *pusher.Message) {
	app := s.App
	if !app.Signin {
		l.sendError(s, pusher.ErrInvalidMessage)
		return
	}
	var sid [48]byte
	if !pusher.CheckUserAuth(app.Secret, string(s.AppendID(sid[:0])), m.UserData, m.Auth) {
		l.sendError(s, pusher.ErrUnauthorized)
		return
	}
	id, info, err := l.dec.ParseUserData(m.UserData)
	if err != nil || (s.signin != nil && s.signin.id != id) {
		l.sendError(s, pusher.ErrUnauthorized)
		return
	}
	if s.signin == nil {
		s.signin = &signedIn{id: id, info: append([]byte(nil), info...)}
		l.addUser(s, id)
	}
	l.tmp = pusher.AppendSigninSuccess(l.tmp[:0], m.UserData)
	l.reply(s, l.tmp)
}

// clientEvent relays a client-* event (§4.8): never to the sender.
func (l *Local) clientEvent(s *Session, m *pusher.Message) {
	app := s.App
	if app.ClientEvents == pusher.ClientEventsNone {
		l.sendError(s, pusher.ErrClientEventsOff)
		return
	}
	i := s.findSub(m.Channel)
	if i < 0 && app.ClientEvents == pusher.ClientEventsMembers {
		l.sendError(s, pusher.ErrNotMember)
		return
	}
	if app.ClientEvents == pusher.ClientEventsMembers {
		// A new object: data (null if absent) and the user_id of the sender's
		// subscription when it is truthy in PHP's sense [R].
		var uJSON []byte
		if u := s.subs[i].user; u != nil && !falsyID(u.json) {
			uJSON = u.json
		}
		l.tmp = pusher.AppendClientEvent(l.tmp[:0], string(m.Event), string(m.Channel), m.Data, uJSON)
	} else {
		// "all" relays the received object as-is, a client user_id included [R].
		l.tmp = pusher.AppendClientEventAsIs(l.tmp[:0], string(m.Event), string(m.Channel), m.Data, m.UserID)
	}
	if l.h.hooks != nil && app.HookMask().Has(pusher.HookClientEvent) {
		l.hookClientEvent(s, m, i)
	}
	if i >= 0 {
		ch := s.subs[i].ch
		sh := s.as.shard(ch.name)
		sh.mu.Lock()
		frame := l.h.newFrame(l.tmp)
		l.h.postLocked(ch, frame, s.seq)
		sh.mu.Unlock()
		l.broker(s, app.ID, ch.name, l.tmp)
		return
	}
	name := string(m.Channel)
	l.h.publish(s.as, name, l.tmp, s.seq, false)
	l.broker(s, app.ID, name, l.tmp)
}

// hookClientEvent reports a relayed client event; i is the sender's
// subscription to the channel, or -1.
func (l *Local) hookClientEvent(s *Session, m *pusher.Message, i int) {
	user := ""
	if i >= 0 && s.subs[i].user != nil {
		user = s.subs[i].user.key
	}
	var id [48]byte
	l.h.hooks.ClientEvent(s.App, string(m.Channel), string(m.Event), m.Data, string(s.AppendID(id[:0])), user)
}

func (l *Local) addUser(s *Session, id string) {
	k := userKey{s.as, id}
	set := l.users[k]
	if set == nil {
		set = make(map[*Session]int)
		l.users[k] = set
	}
	set[s]++
}

func (l *Local) dropUser(s *Session, id string) {
	k := userKey{s.as, id}
	set := l.users[k]
	if set == nil {
		return
	}
	if set[s]--; set[s] <= 0 {
		delete(set, s)
		if len(set) == 0 {
			delete(l.users, k)
		}
	}
}

// falsyID reports whether a user_id's JSON text is empty or PHP-falsy
// (0, "0"): Reverb adds no user_id to client events for those.
func falsyID(id []byte) bool {
	switch string(id) {
	case "", `"0"`, "0", "0.0", "false":
		return true
	}
	return false
}

// broker forwards a payload published by socket s to the other nodes.
func (l *Local) broker(s *Session, appID, channel string, payload []byte) {
	if _, single := l.h.broker.(NoBroker); single {
		return
	}
	l.h.broker.Publish(appID, channel, payload, s.ID())
}
