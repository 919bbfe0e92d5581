package cluster

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/hub/webhook"
	"github.com/goreverb/reverb/pusher"
)

// Webhooks on a cluster: each transition reported once for the whole
// cluster (PROTOCOL.md §12).
//
// Every node reports its own node-level transitions (hub.Hooks: first/last
// local subscriber of a channel, first/last local socket of a presence
// user) to Redis, where one hash per channel combines them:
//
//   - C#webhook#<app>#<channel>, fields: "o\n<node>" (the node has
//     subscribers), "o" (how many nodes do), "oa" (channel_occupied was
//     sent and channel_vacated not yet), "og" (generation of the pending
//     vacate); the same per user with "m\n<node>\n<user>", "u\n<user>",
//     "ua\n<user>", "ug\n<user>"; "s\n<node>" and "s" subscription counts.
//   - C#webhook-node#<node>: the channels (JSON [app, channel]) a node has
//     fields in, so the others can remove them once it dies.
//   - C#webhook-due: a sorted set of pending removals (JSON [kind, app,
//     channel, user, generation]) by due time in unix ms.
//
// The script that records a node's 0→1 sends channel_occupied/member_added
// only when the cluster count went 0→1 and nothing is announced; when it
// was announced (the removal is still pending) it bumps the generation,
// which cancels the pending removal. The 1→0 of the cluster count bumps the
// generation and queues a removal due after the delay. Every node polls the
// due set; ZREM decides which node handles an item, and the check script
// sends the removal only if the count is still 0 and the generation has not
// moved. So a user moving from one node to another within the delay is
// neither removed nor added, and a removal queued by a node that then dies
// is still sent by another.
//
// A node that stops heartbeating (expirePeers) has its fields removed by the
// others (the first to run the reap script per channel finds them); what
// reaches 0 is queued like any other removal.
//
// Client events and cache misses are reported by the node that saw them;
// subscription_count carries the cluster's total after the change.
//
// Delivery is at most once per transition: a Redis failure between a
// script and its reply loses that transition (it is not retried, to never
// send one twice), and Redis losing its data forgets what was announced.
//
// Goroutine: webhooks.run, started by Broker.Webhooks and ended by Close, is
// the only user of its Redis connection. The hub.Hooks methods only queue.

const (
	// whPoll paces the polling of the due set.
	whPoll = 100 * time.Millisecond
)

type whKind uint8

const (
	whOccupancy whKind = iota
	whMember
	whCount
	whReap
)

// whOp is one queued transition.
type whOp struct {
	kind          whKind
	app           *pusher.App
	channel, user string
	on            bool
	n             int    // whCount: this node's subscriptions
	node          string // whReap: the dead node
}

// webhooks implements hub.Hooks for a clustered node.
type webhooks struct {
	b     *Broker
	s     *webhook.Sender
	delay time.Duration
	rdb   redis.UniversalClient
	q     chan whOp
	done  chan struct{}
}

var _ hub.Hooks = (*webhooks)(nil)

// Webhooks returns the hub.Hooks of this node (pass them to the server's
// hub) that report transitions once for the whole cluster and hand the
// resulting events to s. Call once, before Start; any goroutine.
func (b *Broker) Webhooks(s *webhook.Sender) hub.Hooks {
	w := &webhooks{
		b:     b,
		s:     s,
		delay: s.Options().Delay,
		rdb:   b.cfg.newClient("webhook", 1),
		// Transitions waiting for Redis share the bound of the events
		// waiting for delivery (REVERB_WEBHOOK_QUEUE_SIZE); overflow is
		// dropped and counted in hub.Counters.WebhooksDropped.
		q:    make(chan whOp, s.Options().QueueSize),
		done: make(chan struct{}),
	}
	b.wh.Store(w)
	go w.run()
	return w
}

func (w *webhooks) enqueue(op whOp) {
	select {
	case w.q <- op:
	default:
		if h := w.b.hub.Load(); h != nil {
			h.Counters().WebhooksDropped.Add(1)
		}
	}
}

// Occupancy implements hub.Hooks.
func (w *webhooks) Occupancy(app *pusher.App, channel string, on bool) {
	w.enqueue(whOp{kind: whOccupancy, app: app, channel: channel, on: on})
}

// Member implements hub.Hooks.
func (w *webhooks) Member(app *pusher.App, channel, user string, on bool) {
	w.enqueue(whOp{kind: whMember, app: app, channel: channel, user: user, on: on})
}

// SubscriptionCount implements hub.Hooks.
func (w *webhooks) SubscriptionCount(app *pusher.App, channel string, n int) {
	w.enqueue(whOp{kind: whCount, app: app, channel: channel, n: n})
}

// ClientEvent implements hub.Hooks: reported by the node that received it.
func (w *webhooks) ClientEvent(app *pusher.App, channel, event string, data []byte, socketID, userID string) {
	w.s.ClientEvent(app, channel, event, data, socketID, userID)
}

// CacheMiss implements hub.Hooks: reported by the subscriber's node.
func (w *webhooks) CacheMiss(app *pusher.App, channel string) { w.s.CacheMiss(app, channel) }

// nodeGone queues the removal of a dead node's fields (stats goroutine).
func (w *webhooks) nodeGone(node string) { w.enqueue(whOp{kind: whReap, node: node}) }

// The keys carry hash tags in Redis Cluster mode (names.go); each script
// touches one channel hash only.
func (b *Broker) webhookKey(app, channel string) string {
	return b.cfg.Channel + "#webhook#" + b.names.tag(app+"#"+channel)
}

func (b *Broker) webhookNodeKey(node string) string {
	return b.cfg.Channel + "#webhook-node#" + b.names.tag(node)
}

func (b *Broker) webhookDueKey() string { return b.cfg.Channel + "#webhook-due" }

// whOpScript records a node's transition. KEYS[1] the channel hash; ARGV:
// kind ("o" or "m"), node, user, "1" on / "0" off. It returns 1 when the
// app is to be told now (occupied/added), -generation when a removal is to
// be queued, 0 otherwise.
var whOpScript = redis.NewScript(`
local h, node, user = KEYS[1], ARGV[2], ARGV[3]
local nf, cf, af, gf
if ARGV[1] == 'o' then
  nf, cf, af, gf = 'o\n' .. node, 'o', 'oa', 'og'
else
  nf, cf, af, gf = 'm\n' .. node .. '\n' .. user, 'u\n' .. user, 'ua\n' .. user, 'ug\n' .. user
end
if ARGV[4] == '1' then
  if redis.call('HSETNX', h, nf, '1') == 0 then return 0 end
  if redis.call('HINCRBY', h, cf, 1) ~= 1 then return 0 end
  if redis.call('HSETNX', h, af, '1') == 1 then return 1 end
  redis.call('HINCRBY', h, gf, 1)
  return 0
end
if redis.call('HDEL', h, nf) == 0 then return 0 end
if redis.call('HINCRBY', h, cf, -1) > 0 then return 0 end
redis.call('HDEL', h, cf)
if redis.call('HEXISTS', h, af) == 0 then return 0 end
return -redis.call('HINCRBY', h, gf, 1)
`)

// whCheckScript sends a removal whose delay passed. KEYS[1] the channel
// hash; ARGV: kind, user, generation. 1 = tell the app now.
var whCheckScript = redis.NewScript(`
local h, user = KEYS[1], ARGV[2]
local cf, af, gf
if ARGV[1] == 'o' then
  cf, af, gf = 'o', 'oa', 'og'
else
  cf, af, gf = 'u\n' .. user, 'ua\n' .. user, 'ug\n' .. user
end
if (tonumber(redis.call('HGET', h, cf)) or 0) > 0 then return 0 end
if redis.call('HGET', h, gf) ~= ARGV[3] then return 0 end
if redis.call('HDEL', h, af) == 0 then return 0 end
redis.call('HDEL', h, gf)
return 1
`)

// whCountScript sets a node's subscription count (KEYS[1] the channel
// hash; ARGV node, count) and returns the cluster's total.
var whCountScript = redis.NewScript(`
local h, f = KEYS[1], 's\n' .. ARGV[1]
local old = tonumber(redis.call('HGET', h, f)) or 0
local n = tonumber(ARGV[2])
if n > 0 then redis.call('HSET', h, f, n) else redis.call('HDEL', h, f) end
local t = redis.call('HINCRBY', h, 's', n - old)
if t <= 0 then redis.call('HDEL', h, 's') end
return t
`)

// whReapScript removes a dead node's fields from one channel hash (KEYS[1];
// ARGV[1] the node) and returns what reached 0 as triples: kind, user,
// generation ("s", "", total for the subscription count).
var whReapScript = redis.NewScript(`
local h, node = KEYS[1], ARGV[1]
local out = {}
local all = redis.call('HGETALL', h)
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if f == 'o\n' .. node then
    redis.call('HDEL', h, f)
    if redis.call('HINCRBY', h, 'o', -1) <= 0 then
      redis.call('HDEL', h, 'o')
      if redis.call('HEXISTS', h, 'oa') == 1 then
        table.insert(out, 'o'); table.insert(out, ''); table.insert(out, tostring(redis.call('HINCRBY', h, 'og', 1)))
      end
    end
  elseif f == 's\n' .. node then
    redis.call('HDEL', h, f)
    local t = redis.call('HINCRBY', h, 's', -tonumber(v))
    if t <= 0 then redis.call('HDEL', h, 's') end
    table.insert(out, 's'); table.insert(out, ''); table.insert(out, tostring(t))
  elseif string.sub(f, 1, #node + 3) == 'm\n' .. node .. '\n' then
    local user = string.sub(f, #node + 4)
    redis.call('HDEL', h, f)
    if redis.call('HINCRBY', h, 'u\n' .. user, -1) <= 0 then
      redis.call('HDEL', h, 'u\n' .. user)
      if redis.call('HEXISTS', h, 'ua\n' .. user) == 1 then
        table.insert(out, 'm'); table.insert(out, user); table.insert(out, tostring(redis.call('HINCRBY', h, 'ug\n' .. user, 1)))
      end
    end
  end
end
return out
`)

// run applies queued transitions in order and polls the due set until Close.
func (w *webhooks) run() {
	defer close(w.done)
	defer func() { _ = w.rdb.Close() }()
	poll := time.NewTicker(whPoll)
	defer poll.Stop()
	batch := make([]whOp, 0, maxBatch)
	for {
		select {
		case op := <-w.q:
			batch = fill(w.q, append(batch, op))
			w.apply(w.b.ctx, batch)
			clear(batch)
			batch = batch[:0]
		case <-poll.C:
			w.pollDue(w.b.ctx)
		case <-w.b.quit:
			// Sockets closed at shutdown leave their channels: record that
			// (about a second at most); the other nodes send the removals.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			for {
				batch = fill(w.q, batch[:0])
				if len(batch) == 0 || !w.apply(ctx, batch) {
					break
				}
			}
			cancel()
			return
		}
	}
}

// due is one pending removal as stored in the due set.
type due struct{ kind, app, channel, user, gen string }

func (d due) member() string {
	b, _ := json.Marshal([]string{d.kind, d.app, d.channel, d.user, d.gen})
	return string(b)
}

// apply runs one batch of transitions; it reports false when Redis failed.
func (w *webhooks) apply(ctx context.Context, batch []whOp) bool {
	b := w.b
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i := range batch {
		op := &batch[i]
		switch op.kind {
		case whOccupancy, whMember:
			kind, on := "o", "0"
			if op.kind == whMember {
				kind = "m"
			}
			if op.on {
				on = "1"
				idx, _ := json.Marshal([]string{op.app.ID, op.channel})
				pipe.SAdd(ctx, b.webhookNodeKey(b.node), string(idx))
			}
			cmds[i] = whOpScript.Eval(ctx, pipe, []string{b.webhookKey(op.app.ID, op.channel)}, kind, b.node, op.user, on)
			if !op.on && op.kind == whOccupancy {
				// This node's last subscriber left: its member fields went
				// before (the hub leaves presence first).
				idx, _ := json.Marshal([]string{op.app.ID, op.channel})
				pipe.SRem(ctx, b.webhookNodeKey(b.node), string(idx))
			}
		case whCount:
			cmds[i] = whCountScript.Eval(ctx, pipe, []string{b.webhookKey(op.app.ID, op.channel)}, b.node, op.n)
		case whReap:
			w.reap(ctx, op.node)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReply(err) {
		b.log.Warn("cluster: webhook transitions lost (Redis)", "err", err, "count", len(batch))
		return false
	}
	var later []due
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		n, err := cmd.Int64()
		if err != nil {
			continue
		}
		op := &batch[i]
		switch {
		case op.kind == whCount:
			w.s.Emit(op.app, &webhook.Event{Kind: pusher.HookSubscriptionCount, Channel: op.channel, Count: int(max(n, 0))})
		case n == 1 && op.kind == whOccupancy:
			w.s.Emit(op.app, &webhook.Event{Kind: pusher.HookChannelOccupied, Channel: op.channel})
		case n == 1:
			w.s.Emit(op.app, &webhook.Event{Kind: pusher.HookMemberAdded, Channel: op.channel, User: op.user})
		case n < 0:
			kind := "o"
			if op.kind == whMember {
				kind = "m"
			}
			later = append(later, due{kind, op.app.ID, op.channel, op.user, strconv.FormatInt(-n, 10)})
		}
	}
	w.schedule(ctx, later)
	return true
}

// schedule queues removals due after the delay.
func (w *webhooks) schedule(ctx context.Context, items []due) {
	if len(items) == 0 {
		return
	}
	at := float64(time.Now().Add(w.delay).UnixMilli())
	zs := make([]redis.Z, len(items))
	for i, d := range items {
		zs[i] = redis.Z{Score: at, Member: d.member()}
	}
	if err := w.rdb.ZAdd(ctx, w.b.webhookDueKey(), zs...).Err(); err != nil {
		w.b.log.Warn("cluster: webhook removals lost (Redis)", "err", err, "count", len(items))
	}
}

// reap removes a dead node's fields from every channel it had.
func (w *webhooks) reap(ctx context.Context, node string) {
	b := w.b
	chans, err := w.rdb.SMembers(ctx, b.webhookNodeKey(node)).Result()
	if err != nil {
		return
	}
	var later []due
	for _, c := range chans {
		var ac []string
		if json.Unmarshal([]byte(c), &ac) != nil || len(ac) != 2 {
			continue
		}
		res, err := whReapScript.Run(ctx, w.rdb, []string{b.webhookKey(ac[0], ac[1])}, node).StringSlice()
		if err != nil {
			continue
		}
		for i := 0; i+2 < len(res); i += 3 {
			if res[i] == "s" {
				if app := w.app(ac[0]); app != nil && app.HookMask().Has(pusher.HookSubscriptionCount) && !pusher.ClassifyChannel(ac[1]).IsPresence() {
					t, _ := strconv.Atoi(res[i+2])
					w.s.Emit(app, &webhook.Event{Kind: pusher.HookSubscriptionCount, Channel: ac[1], Count: max(t, 0)})
				}
				continue
			}
			later = append(later, due{res[i], ac[0], ac[1], res[i+1], res[i+2]})
		}
	}
	_ = w.rdb.Del(ctx, b.webhookNodeKey(node)).Err()
	w.schedule(ctx, later)
}

func (w *webhooks) app(id string) *pusher.App {
	if h := w.b.hub.Load(); h != nil {
		return h.Apps().ByID(id)
	}
	return nil
}

// pollDue takes the removals whose time has come; the node whose ZREM
// succeeds checks and sends each.
func (w *webhooks) pollDue(ctx context.Context) {
	if w.b.hub.Load() == nil {
		return
	}
	key := w.b.webhookDueKey()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	items, err := w.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: now, Count: 512}).Result()
	if err != nil || len(items) == 0 {
		return
	}
	// Items of apps this node does not serve are left for the nodes that do.
	type check struct {
		d   due
		app *pusher.App
		rem *redis.IntCmd
		cmd *redis.Cmd
	}
	var checks []check
	pipe := w.rdb.Pipeline()
	for _, it := range items {
		var f []string
		if json.Unmarshal([]byte(it), &f) != nil || len(f) != 5 {
			pipe.ZRem(ctx, key, it) // not ours to read: drop it
			continue
		}
		d := due{f[0], f[1], f[2], f[3], f[4]}
		if app := w.app(d.app); app != nil {
			checks = append(checks, check{d: d, app: app, rem: pipe.ZRem(ctx, key, it)})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return
	}
	pipe = w.rdb.Pipeline()
	taken := checks[:0]
	for _, c := range checks {
		if c.rem.Val() == 1 { // this node took it; another node's ZREM got 0
			c.cmd = whCheckScript.Eval(ctx, pipe, []string{w.b.webhookKey(c.d.app, c.d.channel)}, c.d.kind, c.d.user, c.d.gen)
			taken = append(taken, c)
		}
	}
	checks = taken
	if len(checks) == 0 {
		return
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range checks {
		if n, err := c.cmd.Int64(); err != nil || n != 1 {
			continue
		}
		if c.d.kind == "o" {
			w.s.Emit(c.app, &webhook.Event{Kind: pusher.HookChannelVacated, Channel: c.d.channel})
		} else {
			w.s.Emit(c.app, &webhook.Event{Kind: pusher.HookMemberRemoved, Channel: c.d.channel, User: c.d.user})
		}
	}
}
