package cluster

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
)

// Cluster-wide state: presence members and cache-channel content.
//
// Redis keys, with C = Config.Channel:
//
//   - C#presence#<app>#<channel>, a hash: field "<node>\n<user key>" →
//     "<user_id JSON>,<user_info JSON>" for every user a node has a socket
//     of on that presence channel.
//   - C#cache#<app>#<channel>: the last event of a cache channel, set with
//     the app's cache TTL by the node that published it.
//   - C#alive#<node>: exists while the node runs (refreshed every second by
//     the stats goroutine, expires aliveTTL after the last refresh).
//   - C#node#<node> is the node's reply channel (pub/sub, no key).
//
// A node changes its own hash fields only, each change together with a
// presence envelope on the channel's Redis channel, in one script, so a
// reader of the hash and a listener of the channel see the same order.
//
// When a node starts following a presence channel (its SUBSCRIBE is
// confirmed: the first local subscriber, or a resubscribe after Redis came
// back), the sync script rewrites all of this node's fields for the channel
// from the hub's local list (announcing each again: a Redis that lost its
// data, or nodes that forgot us, learn them back), drops fields of nodes
// whose alive key is gone (announcing their removal), and sends the other
// nodes' fields as a snapshot envelope to this node's reply channel. The
// snapshot reaches the receiver at its place in the stream, after every
// change made before the script and before every later one, so the hub can
// replace its copy without losing or repeating a change (Hub.PresenceSnapshot).
// Cache channels are fetched the same way (cacheScript, Hub.CacheSnapshot).
//
// The state goroutine runs these scripts in order on a connection of its
// own. Every operation sets a state rather than applying a difference, so a
// batch cut by a connection failure is simply sent again.

// aliveTTL is how long a node's alive key outlives its last refresh.
const aliveTTL = 5 * time.Second

// opScript sets (ARGV[2] non-empty) or deletes this node's field ARGV[1] in
// the presence hash KEYS[1] and publishes the presence envelope ARGV[4] on
// the channel's Redis channel ARGV[3]. It also sets the node's marker field
// ARGV[5] ("<node>\n"): the hash holds everything this node has on the
// channel. Publishing even when nothing changed is harmless (receivers apply
// states) and tells nodes that missed the first announcement.
var opScript = newScript(`
redis.call('HSET', KEYS[1], ARGV[5], '')
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// syncScript: KEYS[1] presence hash. ARGV: 1 this node, 2 the channel's
// Redis channel, 3 this node's reply channel, 4 alive key prefix,
// 5 presence envelope head, 6 snapshot envelope head, then pairs of user
// key and "<id>,<info>": this node's users now.
//
// The snapshot lists the other live nodes' users, and in "nodes" the nodes
// whose marker field is present: their list is complete. A node without
// one has not written to the hash since Redis lost its data (a restart
// without persistence); the receiver keeps what it knows of such a node
// until the node writes again.
var syncScript = newScript(`
local h, me, ch, reply, alive, head, snap = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local function env(node, user, v)
  local s = head .. ',"node":' .. cjson.encode(node) .. ',"user":' .. cjson.encode(user)
  if v then s = s .. ',"m":[' .. v .. ']' end
  return s .. '}'
end
local mine = {}
for i = 7, #ARGV, 2 do mine[ARGV[i]] = ARGV[i + 1] end
local all = redis.call('HGETALL', h)
local out, sure, live = {}, {}, {}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local sep = string.find(f, '\n', 1, true)
  if sep then
    local node, user = string.sub(f, 1, sep - 1), string.sub(f, sep + 1)
    if node == me then
      if user ~= '' and not mine[user] then
        redis.call('HDEL', h, f)
        redis.call('PUBLISH', ch, env(me, user, nil))
      end
    else
      local ok = live[node]
      if ok == nil then
        if string.sub(alive, 1, 1) == '\n' then
          ok = not string.find(alive, '\n' .. node .. '\n', 1, true)
        else
          ok = redis.call('EXISTS', alive .. node) == 1
        end
        live[node] = ok
      end
      if not ok then
        redis.call('HDEL', h, f)
        if user ~= '' then redis.call('PUBLISH', ch, env(node, user, nil)) end
      elseif user == '' then
        sure[#sure + 1] = cjson.encode(node)
      else
        out[#out + 1] = '[' .. cjson.encode(node) .. ',' .. cjson.encode(user) .. ',' .. v .. ']'
      end
    end
  end
end
redis.call('HSET', h, me .. '\n', '')
for user, v in pairs(mine) do
  redis.call('HSET', h, me .. '\n' .. user, v)
  redis.call('PUBLISH', ch, env(me, user, v))
end
redis.call('PUBLISH', reply, snap .. ',"node":' .. cjson.encode(me) .. ',"nodes":[' .. table.concat(sure, ',') ..
  '],"members":[' .. table.concat(out, ',') .. ']}')
return #out
`)

// In Redis Cluster mode (names.go) the scripts SPUBLISH, and ARGV[4] of
// the sync script is not the alive key prefix but the nodes found dead
// before the script ran, as "\n<node>\n<node>\n": an alive key lives in
// its own node's slot, which a script of another slot may not read
// (deadNodes). Snapshots and cached answers go out on the channel's own
// shard channel (which the asking node listens to) rather than its reply
// channel, in another slot; other nodes skip them by their "node" field.
var (
	opScriptSharded    = shardedScript(opScript)
	syncScriptSharded  = shardedScript(syncScript)
	cacheScriptSharded = shardedScript(cacheScript)
)

func shardedScript(s *redis.Script) *redis.Script {
	return redis.NewScript(strings.ReplaceAll(scriptSource[s], "'PUBLISH'", "'SPUBLISH'"))
}

// cacheScript sends the cached event KEYS[1] (or its absence) to the reply
// channel ARGV[1] in a cached envelope whose head is ARGV[2].
var cacheScript = newScript(`
local v = redis.call('GET', KEYS[1])
local s = ARGV[2]
if v then s = s .. ',"payload":' .. v end
redis.call('PUBLISH', ARGV[1], s .. '}')
return 0
`)

// scriptSource keeps each script's text for its cluster-mode twin.
var scriptSource = map[*redis.Script]string{}

func newScript(src string) *redis.Script {
	s := redis.NewScript(src)
	scriptSource[s] = src
	return s
}

type stateKind uint8

const (
	stateOp    stateKind = iota // set or delete one presence field
	stateSync                   // sync a presence channel
	stateCache                  // fetch a cache channel
)

// stateMsg is one queued state operation.
type stateMsg struct {
	kind  stateKind
	key   chanKey
	user  string // stateOp
	value []byte // stateOp: "<id>,<info>", nil to delete
}

// memberValue is the hash value of a user: "<id>,<info>".
func memberValue(id, info []byte) []byte {
	if len(info) == 0 {
		info = []byte("null")
	}
	v := make([]byte, 0, len(id)+1+len(info))
	v = append(v, id...)
	v = append(v, ',')
	return append(v, info...)
}

// Presence queues this node's change of user key on a presence channel
// (hub.Broker). Never blocks; any goroutine.
func (b *Broker) Presence(appID, channel, key string, idJSON, info []byte, on bool) {
	m := stateMsg{kind: stateOp, key: chanKey{appID, channel}, user: key}
	if on {
		m.value = memberValue(idJSON, info)
	}
	b.enqueueState(m)
}

func (b *Broker) enqueueState(m stateMsg) {
	select {
	case <-b.quit:
		return
	default:
	}
	select {
	case b.stateQ <- m:
	default:
		// Redis is away long enough to fill the queue: what is lost is
		// rewritten by a full sync once it answers.
		b.dropped.Add(1)
		b.resyncAll.Store(true)
	}
}

// channelReady is called once this node receives k from the other nodes
// (its SUBSCRIBE was confirmed). Presence and cache channels first fetch
// the cluster's state; the hub acknowledges their subscriptions when it
// arrives. Others are ready now.
func (b *Broker) channelReady(h *hub.Hub, k chanKey) {
	typ := pusher.ClassifyChannel(k.channel)
	if typ.IsCache() {
		b.enqueueState(stateMsg{kind: stateCache, key: k})
	}
	if typ.IsPresence() {
		b.enqueueState(stateMsg{kind: stateSync, key: k})
	}
	if !typ.IsCache() && !typ.IsPresence() {
		h.InterestReady(k.app, k.channel)
	}
}

// runState runs state operations in queue order, up to maxBatch per
// pipelined round trip, retrying a failed batch until it succeeds or Close.
func (b *Broker) runState() {
	defer close(b.stateDone)
	pipe := b.statec.Pipeline()
	batch := make([]stateMsg, 0, maxBatch)
	for {
		select {
		case m := <-b.stateQ:
			batch = append(batch, m)
		case <-b.quit:
			b.finishState(pipe, batch)
			return
		}
		batch = fill(b.stateQ, batch)
		delay := backoffMin
		for !b.runStateBatch(b.ctx, pipe, batch) {
			if !b.sleep(delay) {
				return
			}
			delay = min(2*delay, backoffMax)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// runStateBatch sends one batch; it reports false when it must be retried.
func (b *Broker) runStateBatch(ctx context.Context, pipe redis.Pipeliner, batch []stateMsg) bool {
	h := b.hub.Load()
	if h == nil {
		return true
	}
	// Refreshed here too, so this node's fields never look dead to another
	// node's sync before the stats goroutine's first beat.
	_ = pipe.Set(ctx, b.aliveKey(b.node), "1", aliveTTL)
	op, sync, cache := opScript, syncScript, cacheScript
	alive, reply := b.aliveKey(""), b.replyChannel()
	if b.shards != nil {
		op, sync, cache = opScriptSharded, syncScriptSharded, cacheScriptSharded
		dead, err := b.deadNodes(ctx, batch)
		if err != nil {
			b.stateState.lost(b.log, "state", err)
			b.resyncAll.Store(true)
			return false
		}
		alive = dead
	}
	for i := range batch {
		m := &batch[i]
		switch m.kind {
		case stateOp:
			env := appendPresence(nil, b.node, m.key.app, m.key.channel, m.user, m.value)
			field := b.node + "\n" + m.user
			_ = op.Eval(ctx, pipe, []string{b.presenceKey(m.key)}, field, string(m.value), b.redisName(m.key), env, b.node+"\n")
		case stateSync:
			// A slice per command: the pipeline keeps it until Exec.
			if b.shards != nil {
				reply = b.redisName(m.key)
			}
			a := append(make([]any, 0, 16), b.node, b.redisName(m.key), reply, alive,
				string(appendPresenceHead(nil, "presence", m.key.app, m.key.channel)),
				string(appendPresenceHead(nil, "snapshot", m.key.app, m.key.channel)))
			h.LocalPresence(m.key.app, m.key.channel, func(key string, id, info []byte) {
				a = append(a, key, string(memberValue(id, info)))
			})
			_ = sync.Eval(ctx, pipe, []string{b.presenceKey(m.key)}, a...)
		case stateCache:
			if b.shards != nil {
				reply = b.redisName(m.key)
			}
			_ = cache.Eval(ctx, pipe, []string{b.cacheKey(m.key)}, reply,
				string(appendPresenceHead(nil, "cached", m.key.app, m.key.channel))+`,"node":`+string(appendString(nil, b.node)))
		}
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		b.stateState.restored(b.log, "state")
		return true
	}
	if isReply(err) {
		// Refused by Redis (ACL, scripting disabled): retrying will not help.
		b.log.Warn("cluster: Redis refused a presence or cache operation", "err", err)
		return true
	}
	b.stateState.lost(b.log, "state", err)
	b.resyncAll.Store(true)
	return false
}

// deadNodes returns, for the sync scripts of batch in cluster mode, the
// nodes whose fields are in those presence hashes but whose alive key is
// gone, as "\n<node>\n...\n" (just "\n" for none). Two pipelined round trips
// before the scripts: HKEYS of each hash, then EXISTS of each node's alive
// key, each routed to its own slot. A node that writes its first field
// after the HKEYS is absent from the list and so counts as alive.
func (b *Broker) deadNodes(ctx context.Context, batch []stateMsg) (string, error) {
	var keys []string
	for i := range batch {
		if batch[i].kind == stateSync {
			keys = append(keys, b.presenceKey(batch[i].key))
		}
	}
	if len(keys) == 0 {
		return "\n", nil
	}
	var fields []*redis.StringSliceCmd
	if _, err := b.statec.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			fields = append(fields, p.HKeys(ctx, k))
		}
		return nil
	}); err != nil {
		return "", err
	}
	seen := map[string]bool{b.node: true}
	var nodes []string
	for _, c := range fields {
		for _, f := range c.Val() {
			node, _, ok := strings.Cut(f, "\n")
			if ok && !seen[node] {
				seen[node] = true
				nodes = append(nodes, node)
			}
		}
	}
	dead := "\n"
	if len(nodes) == 0 {
		return dead, nil
	}
	exists := make([]*redis.IntCmd, len(nodes))
	if _, err := b.statec.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			exists[i] = p.Exists(ctx, b.aliveKey(n))
		}
		return nil
	}); err != nil {
		return "", err
	}
	for i, c := range exists {
		if c.Val() == 0 {
			dead += nodes[i] + "\n"
		}
	}
	return dead, nil
}

// finishState sends the changes still queued at Close (sockets closed at
// shutdown leave their presence channels), one attempt per batch within
// about a second, then deletes the alive key: other nodes' syncs then drop
// whatever this node did not get to remove.
func (b *Broker) finishState(pipe redis.Pipeliner, batch []stateMsg) {
	ctx, cancel := context.WithTimeout(context.Background(), min(b.cfg.Timeout, time.Second))
	defer cancel()
	for {
		batch = fill(b.stateQ, batch)
		if len(batch) == 0 || !b.runStateBatch(ctx, pipe, batch) {
			break
		}
		clear(batch)
		batch = batch[:0]
	}
	_ = b.statec.Del(ctx, b.aliveKey(b.node)).Err()
}

// cacheStore adds the SET of a cache channel's last event to a publisher
// pipeline (before its PUBLISH), so a node that starts following the
// channel later finds it.
func (b *Broker) cacheStore(ctx context.Context, pipe redis.Pipeliner, k chanKey, payload []byte) {
	h := b.hub.Load()
	if h == nil {
		return
	}
	app := h.Apps().ByID(k.app)
	if app == nil || app.CacheTTL <= 0 {
		return
	}
	_ = pipe.Set(ctx, b.cacheKey(k), payload, app.CacheTTL)
}
