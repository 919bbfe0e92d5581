package cluster

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/goreverb/reverb/hub"
)

// Channel queries across nodes (hub.Directory).
//
// GET /channels, /channels/{c}, /channels/{c}/users and /connections need
// the other nodes' counts. A node asks with a query envelope, PUBLISHed on
// the control channel from the asking goroutine; PUBLISH's reply says how
// many connections listen there, which is every node (this one included).
// Every other node answers on the asker's reply channel with its own view,
// and the asker merges what arrives until all of them answered, or
// queryWait passed. Nothing is stored in Redis for this, so there is
// nothing to clean up when a node dies: it simply stops answering.
// (Anything else subscribed to the control channel, such as redis-cli,
// makes every query wait the full queryWait.)
//
//	{"v":1,"type":"query","node":"<id>","id":<n>,"app":"<app_id>","name":"<channel or prefix>","prefix":<bool>,"users":<bool>}
//	{"v":1,"type":"answer","node":"<id>","id":<n>,"conns":<sockets>,"channels":[["<name>",<subs>,<user_count>,[<user_id>,...]],...]}

// queryWait bounds how long a query waits for answers.
const queryWait = time.Second

// query is one question in flight.
type query struct {
	mu     sync.Mutex
	expect int
	from   map[string]bool
	conns  int64 // the app's sockets on the nodes that answered
	views  map[string]*hub.ChannelView
	seen   map[string]map[string]bool // channel → user ids already listed
	done   chan struct{}
}

// queries is the table of questions in flight, by id.
type queries struct {
	mu   sync.Mutex
	seq  uint64
	byID map[uint64]*query
}

// RemoteChannels implements hub.Directory. It blocks for at most
// queryWait (capped by Config.Timeout). Any goroutine.
func (b *Broker) RemoteChannels(appID, name string, prefix, users bool) []hub.ChannelView {
	q := b.ask(appID, name, prefix, users)
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]hub.ChannelView, 0, len(q.views))
	for _, v := range q.views {
		out = append(out, *v)
	}
	return out
}

// RemoteConnections implements hub.Directory: the app's established sockets
// on the other nodes, as they answer now. A node that does not answer in
// time counts with its last heartbeat. Any goroutine.
func (b *Broker) RemoteConnections(appID string) int {
	var n int64
	answered := map[string]bool{}
	if q := b.ask(appID, "", false, false); q != nil {
		q.mu.Lock()
		n = q.conns
		maps.Copy(answered, q.from) // an answer may still be landing
		q.mu.Unlock()
	}
	p := &b.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	for node, pe := range p.nodes {
		if !answered[node] {
			n += pe.counts[appID]
		}
	}
	return int(n)
}

// ask publishes a query and waits for the answers; nil when Redis could not
// take it or no other node listens.
func (b *Broker) ask(appID, name string, prefix, users bool) *query {
	wait := min(queryWait, b.cfg.Timeout)
	q := &query{
		from:  make(map[string]bool),
		views: make(map[string]*hub.ChannelView),
		seen:  make(map[string]map[string]bool),
		done:  make(chan struct{}),
	}
	b.qs.mu.Lock()
	b.qs.seq++
	id := b.qs.seq
	b.qs.byID[id] = q
	b.qs.mu.Unlock()
	defer func() {
		b.qs.mu.Lock()
		delete(b.qs.byID, id)
		b.qs.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	listeners, err := b.names.publish(ctx, b.query, b.names.control(), appendQuery(nil, b.node, id, appID, name, prefix, users)).Result()
	if err != nil || listeners <= 1 {
		return nil
	}
	q.mu.Lock()
	q.expect = int(listeners) - 1
	if len(q.from) >= q.expect {
		q.mu.Unlock()
		return q
	}
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-ctx.Done():
	case <-b.quit:
	}
	return q
}

// answer applies one node's answer (receiver goroutine).
func (b *Broker) answer(e *envelope) {
	b.qs.mu.Lock()
	q := b.qs.byID[e.qid]
	b.qs.mu.Unlock()
	if q == nil {
		return // too late
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.from[string(e.node)] {
		return
	}
	q.from[string(e.node)] = true
	q.conns += e.conns
	for _, c := range e.chans {
		v := q.views[string(c.name)]
		if v == nil {
			v = &hub.ChannelView{Name: string(c.name)}
			q.views[v.Name] = v
			q.seen[v.Name] = make(map[string]bool)
		}
		v.Subs += c.subs
		v.UserCount = max(v.UserCount, c.count)
		for _, id := range c.ids {
			if !q.seen[v.Name][string(id)] {
				q.seen[v.Name][string(id)] = true
				v.Users = append(v.Users, append([]byte(nil), id...))
			}
		}
	}
	if len(q.from) == q.expect {
		close(q.done) // expect is set before any answer can complete it
	}
}

// reply answers another node's query from the hub (receiver goroutine).
func (b *Broker) reply(h *hub.Hub, e *envelope) {
	bp := b.getBuf()
	buf := append((*bp)[:0], `{"v":1,"type":"answer","node":`...)
	buf = appendString(buf, b.node)
	buf = append(buf, `,"id":`...)
	buf = strconv.AppendUint(buf, e.qid, 10)
	buf = append(buf, `,"conns":`...)
	buf = strconv.AppendInt(buf, h.LocalConnectionsOf(string(e.app)), 10)
	buf = append(buf, `,"channels":[`...)
	first := true
	if len(e.channel) > 0 || e.prefix {
		h.LocalChannels(string(e.app), string(e.channel), e.prefix, e.users, func(name string, subs, count int, ids [][]byte) {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = append(buf, '[')
			buf = appendString(buf, name)
			buf = append(buf, ',')
			buf = strconv.AppendInt(buf, int64(subs), 10)
			buf = append(buf, ',')
			buf = strconv.AppendInt(buf, int64(count), 10)
			buf = append(buf, ",["...)
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, id...)
			}
			buf = append(buf, "]]"...)
		})
	}
	*bp = append(buf, "]}"...)
	b.enqueue(outMsg{buf: bp, to: b.names.replyOf(string(e.node))})
}

// appendQuery appends a query envelope.
func appendQuery(dst []byte, node string, id uint64, app, name string, prefix, users bool) []byte {
	dst = append(dst, `{"v":1,"type":"query","node":`...)
	dst = appendString(dst, node)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"app":`...)
	dst = appendString(dst, app)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, name)
	dst = append(dst, `,"prefix":`...)
	dst = strconv.AppendBool(dst, prefix)
	dst = append(dst, `,"users":`...)
	dst = strconv.AppendBool(dst, users)
	return append(dst, '}')
}
