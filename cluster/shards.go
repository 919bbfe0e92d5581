package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sharded pub/sub for Redis Cluster mode.
//
// A shard channel lives in one hash slot and is served by the master of
// that slot only: SSUBSCRIBE must go to that master, one slot per command,
// and SPUBLISH reaches only the subscribers on that shard. So this node
// keeps one pub/sub connection per master it needs (not one per slot), and
// sends one SSUBSCRIBE per slot on it. go-redis's PubSub would resubscribe
// every channel of a connection in one command after a reconnect, which a
// cluster refuses (CROSSSLOT) when they span slots; so a shard whose
// connection fails is never left to reconnect by itself: the manager
// replaces its PubSub and subscribes again slot by slot.
//
// Routing: the slot map comes from CLUSTER SLOTS and is fetched again when
// anything suggests it changed: a connection failed or went silent, Redis
// answered MOVED or another error, or a channel we still want was
// unsubscribed by the server (Redis does that to shard channels of a slot
// that moved away). Every wanted channel is then checked against the new map
// and moved, with its shard resubscribed, so slot migrations, a failover
// (a replica promoted) and a restarted master all end in the same place:
// subscribed on the right master, the SSUBSCRIBE confirmed, presence and
// cache channels synced again (their confirmation runs channelReady).
//
// Goroutines: the manager calls every method of shardSet; one receiver
// goroutine per shard reads its PubSub and only sets flags (broken,
// reroute) for the manager. mu guards the maps for the receivers' lookups.

// shardSet is the sharded pub/sub state.
type shardSet struct {
	b     *Broker
	route *redis.ClusterClient // CLUSTER SLOTS, from the seeds

	mu     sync.Mutex
	shards map[string]*shard // master address → shard
	where  map[string]*shard // Redis channel → the shard it is subscribed on

	slots   []slotRange // sorted by start; manager only
	reroute atomic.Bool
	wg      sync.WaitGroup
}

type slotRange struct {
	start, end int
	addr       string
}

// shard is one master's pub/sub connection.
type shard struct {
	addr     string
	client   *redis.Client
	ps       atomic.Pointer[redis.PubSub]
	names    map[string]bool // channels subscribed here; manager only
	lastSeen atomic.Int64
	up       atomic.Bool
	broken   atomic.Bool // the manager must replace ps
	closed   atomic.Bool
	done     chan struct{}
}

func newShardSet(b *Broker) *shardSet {
	c := b.cfg
	o := c.redisOptions("route", "")
	co := &redis.ClusterOptions{
		Addrs: c.ClusterNodes, ClientName: o.ClientName, Username: o.Username, Password: o.Password,
		DialTimeout: c.Timeout, ReadTimeout: min(c.Liveness, time.Second), WriteTimeout: min(c.Liveness, time.Second),
		PoolSize: 1, MaxRetries: 2, DisableIdentity: true,
	}
	if c.TLS {
		co.NewClient = func(no *redis.Options) *redis.Client {
			no.TLSConfig = c.tlsFor(no.Addr)
			return redis.NewClient(no)
		}
	}
	return &shardSet{
		b:      b,
		route:  redis.NewClusterClient(co),
		shards: make(map[string]*shard),
		where:  make(map[string]*shard),
	}
}

// errNoSlots means the slot map is not known yet (no seed answered).
var errNoSlots = errors.New("cluster: Redis Cluster slot map unknown")

// loadSlots fetches the slot map: from the seeds, else from any master we
// know. Manager only.
func (s *shardSet) loadSlots() error {
	ctx, cancel := context.WithTimeout(s.b.ctx, min(s.b.cfg.Timeout, 2*time.Second))
	defer cancel()
	got, err := s.route.ClusterSlots(ctx).Result()
	if err != nil || len(got) == 0 {
		s.mu.Lock()
		clients := make([]*redis.Client, 0, len(s.shards))
		for _, sh := range s.shards {
			clients = append(clients, sh.client)
		}
		s.mu.Unlock()
		for _, c := range clients {
			short, cancel := context.WithTimeout(s.b.ctx, time.Second)
			got, err = c.ClusterSlots(short).Result()
			cancel()
			if err == nil && len(got) > 0 {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	if len(got) == 0 {
		return errNoSlots
	}
	slots := make([]slotRange, 0, len(got))
	for _, r := range got {
		if len(r.Nodes) > 0 {
			slots = append(slots, slotRange{r.Start, r.End, r.Nodes[0].Addr})
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].start < slots[j].start })
	s.slots = slots
	// The other clients follow too (they also do on MOVED by themselves).
	s.b.reloadSlots()
	return nil
}

// master returns the address serving channel's slot, "" when unknown.
func (s *shardSet) master(channel string) string {
	slot := hashSlot(channel)
	i := sort.Search(len(s.slots), func(i int) bool { return s.slots[i].end >= slot })
	if i < len(s.slots) && s.slots[i].start <= slot {
		return s.slots[i].addr
	}
	return ""
}

// subscribe SSUBSCRIBEs names, each on its slot's master. A name whose
// master is unknown (the slot map could not be read, or a slot has no
// master) is kept and placed by the next reroute. Manager only.
func (s *shardSet) subscribe(names []string) {
	if len(s.slots) == 0 {
		_ = s.loadSlots()
	}
	groups := map[*shard][]string{}
	for _, n := range names {
		addr := s.master(n)
		if addr == "" {
			s.reroute.Store(true)
			s.park(n)
			continue
		}
		sh := s.shard(addr)
		s.mu.Lock()
		s.where[n] = sh
		s.mu.Unlock()
		sh.names[n] = true
		groups[sh] = append(groups[sh], n)
	}
	for sh, ns := range groups {
		s.ssubscribe(sh, sh.ps.Load(), ns)
	}
}

// parked stands for the shard of wanted channels whose master is not known
// yet; the next reroute places them.
var parked = &shard{addr: "", names: map[string]bool{}}

func (s *shardSet) park(n string) {
	s.mu.Lock()
	s.where[n] = parked
	s.mu.Unlock()
}

// unsubscribe SUNSUBSCRIBEs names. Manager only.
func (s *shardSet) unsubscribe(names []string) {
	groups := map[*shard][]string{}
	s.mu.Lock()
	for _, n := range names {
		sh := s.where[n]
		delete(s.where, n)
		if sh == nil || sh == parked {
			continue
		}
		delete(sh.names, n)
		groups[sh] = append(groups[sh], n)
	}
	s.mu.Unlock()
	for sh, ns := range groups {
		if len(sh.names) == 0 {
			s.drop(sh)
			continue
		}
		ps := sh.ps.Load()
		for _, g := range bySlot(ns) {
			if err := ps.SUnsubscribe(s.b.ctx, g...); err != nil {
				sh.broken.Store(true)
			}
		}
	}
}

// ssubscribe sends one SSUBSCRIBE per slot of ns on ps.
func (s *shardSet) ssubscribe(sh *shard, ps *redis.PubSub, ns []string) {
	for _, g := range bySlot(ns) {
		if err := ps.SSubscribe(s.b.ctx, g...); err != nil {
			s.b.log.Debug("cluster: SSUBSCRIBE deferred until the shard answers", "shard", sh.addr, "err", err)
			sh.broken.Store(true)
			return
		}
	}
}

// shard returns the shard of addr, starting it when new. Manager only.
func (s *shardSet) shard(addr string) *shard {
	s.mu.Lock()
	sh := s.shards[addr]
	s.mu.Unlock()
	if sh != nil {
		return sh
	}
	o := s.b.cfg.redisOptions("sub", addr)
	sh = &shard{addr: addr, client: redis.NewClient(o), names: map[string]bool{}, done: make(chan struct{})}
	sh.lastSeen.Store(time.Now().UnixNano())
	sh.ps.Store(sh.client.SSubscribe(s.b.ctx)) // no channel: no I/O yet
	s.mu.Lock()
	s.shards[addr] = sh
	s.mu.Unlock()
	s.wg.Add(1)
	go s.receive(sh)
	return sh
}

// drop closes a shard with no channels left. Manager only.
func (s *shardSet) drop(sh *shard) {
	s.mu.Lock()
	delete(s.shards, sh.addr)
	s.mu.Unlock()
	sh.closed.Store(true)
	_ = sh.ps.Load().Close()
	_ = sh.client.Close()
}

// close ends every shard and waits for their receivers. Close only, after
// the manager has exited.
func (s *shardSet) close() {
	s.mu.Lock()
	all := make([]*shard, 0, len(s.shards))
	for _, sh := range s.shards {
		all = append(all, sh)
	}
	s.mu.Unlock()
	for _, sh := range all {
		s.drop(sh)
	}
	s.wg.Wait()
	_ = s.route.Close()
}

// receive is one shard's receiver goroutine.
func (s *shardSet) receive(sh *shard) {
	defer s.wg.Done()
	b := s.b
	r := receiver{b: b, intern: make(map[string]string)}
	delay := backoffMin
	for !sh.closed.Load() {
		ps := sh.ps.Load()
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			if sh.closed.Load() || b.ctx.Err() != nil {
				return
			}
			if ps != sh.ps.Load() {
				continue // the manager replaced it
			}
			if isReply(err) {
				// MOVED, CROSSSLOT, ...: the slot map changed under us.
				b.log.Debug("cluster: shard refused a subscription", "shard", sh.addr, "err", err)
			} else {
				sh.up.Store(false)
				b.subUp.Store(false)
				b.subState.lost(b.log.With("shard", sh.addr), "pub/sub", err)
			}
			sh.broken.Store(true)
			s.reroute.Store(true)
			b.poke()
			if !b.sleep(delay) {
				return
			}
			delay = min(2*delay, backoffMax)
			continue
		}
		delay = backoffMin
		now := time.Now().UnixNano()
		sh.lastSeen.Store(now)
		if !sh.up.Swap(true) {
			s.updateUp()
		}
		if sub, ok := msg.(*redis.Subscription); ok && sub.Kind == "sunsubscribe" {
			s.mu.Lock()
			still := s.where[sub.Channel] == sh
			s.mu.Unlock()
			if still {
				// Not asked for: the slot left this master.
				s.reroute.Store(true)
				b.poke()
			}
			continue
		}
		b.onPubSub(&r, msg, now)
	}
}

// check runs on the manager's tick: PINGs quiet shards, replaces broken or
// silent ones and moves channels whose slot changed master. It keeps
// Broker.subUp true only while every shard answers. Manager only.
func (s *shardSet) check() {
	b := s.b
	now := time.Now().UnixNano()
	ping := b.pingEvery()
	s.mu.Lock()
	all := make([]*shard, 0, len(s.shards))
	for _, sh := range s.shards {
		all = append(all, sh)
	}
	parkedN := 0
	for _, sh := range s.where {
		if sh == parked {
			parkedN++
		}
	}
	s.mu.Unlock()
	for _, sh := range all {
		idle := time.Duration(now - sh.lastSeen.Load())
		switch {
		case sh.broken.Load():
		case idle >= ping+b.cfg.Liveness:
			b.silent(b.log.With("shard", sh.addr), "pub/sub")
			sh.up.Store(false)
			sh.broken.Store(true)
			s.reroute.Store(true)
		case idle >= ping:
			_ = sh.ps.Load().Ping(b.ctx)
		}
	}
	if parkedN > 0 {
		s.reroute.Store(true)
	}
	if s.reroute.Swap(false) {
		if err := s.loadSlots(); err != nil {
			b.log.Debug("cluster: Redis Cluster slot map not read", "err", err)
			s.reroute.Store(true)
		} else {
			s.move()
		}
	}
	for _, sh := range all {
		if sh.broken.Load() && !sh.closed.Load() {
			s.replace(sh)
		}
	}
	s.updateUp()
}

// updateUp sets Broker.subUp: true while every shard answers. Manager and
// receivers.
func (s *shardSet) updateUp() {
	b := s.b
	up := true
	s.mu.Lock()
	for _, sh := range s.shards {
		up = up && sh.up.Load() && !sh.broken.Load()
	}
	s.mu.Unlock()
	if up && !b.subUp.Swap(true) {
		b.subState.restored(b.log, "pub/sub")
	} else if !up {
		b.subUp.Store(false)
	}
}

// move places every wanted channel on its slot's current master. Channels
// that move are SUNSUBSCRIBEd where they were and SSUBSCRIBEd where they
// belong now. Manager only.
func (s *shardSet) move() {
	s.mu.Lock()
	var moving []string
	from := map[*shard][]string{}
	for n, sh := range s.where {
		if addr := s.master(n); addr != sh.addr {
			moving = append(moving, n)
			if sh != parked {
				from[sh] = append(from[sh], n)
				delete(sh.names, n)
			}
		}
	}
	s.mu.Unlock()
	for sh, ns := range from {
		if len(sh.names) == 0 {
			s.drop(sh)
			continue
		}
		if !sh.broken.Load() {
			ps := sh.ps.Load()
			for _, g := range bySlot(ns) {
				_ = ps.SUnsubscribe(s.b.ctx, g...)
			}
		}
	}
	if len(moving) > 0 {
		s.b.log.Info("cluster: Redis Cluster slots moved; resubscribing", "channels", len(moving))
		s.subscribe(moving)
	}
}

// replace gives a broken shard a new PubSub and subscribes its channels
// again, slot by slot; their confirmations make the hub resync presence and
// cache channels. Manager only.
func (s *shardSet) replace(sh *shard) {
	sh.broken.Store(false)
	sh.lastSeen.Store(time.Now().UnixNano())
	old := sh.ps.Load()
	ps := sh.client.SSubscribe(s.b.ctx)
	sh.ps.Store(ps)
	_ = old.Close() // wakes the receiver, which moves to ps
	ns := make([]string, 0, len(sh.names))
	for n := range sh.names {
		ns = append(ns, n)
	}
	s.ssubscribe(sh, ps, ns)
}

// poke wakes the manager.
func (b *Broker) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// silent records a connection replaced because Redis stopped answering
// (hub.Counters.RedisSilent of the attached hub).
func (b *Broker) silent(log *slog.Logger, role string) {
	if h := b.hub.Load(); h != nil {
		h.Counters().RedisSilent.Add(1)
	}
	b.subState.lost(log, role, errSilent)
}

// bySlot splits names into groups of one hash slot each.
func bySlot(names []string) [][]string {
	if len(names) == 1 {
		return [][]string{names}
	}
	m := map[int][]string{}
	for _, n := range names {
		slot := hashSlot(n)
		m[slot] = append(m[slot], n)
	}
	out := make([][]string, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	return out
}

// hashSlot is Redis Cluster's slot of key: CRC16 (XMODEM) of the hash tag
// (the part between the first '{' and the next '}', when not empty) or of
// the whole key, modulo 16384.
func hashSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) & 16383
}
