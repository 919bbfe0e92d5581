package hub

import (
	"slices"

	"github.com/goreverb/reverb/pusher"
)

// Presence on a cluster.
//
// Every node keeps the full member list of each presence channel it has
// subscribers of: a user is a member while this node has a socket of it
// (member.local > 0) or another node reports one (member.nodes). A node tells
// the others only when its own socket count for a user goes 0↔1
// (Broker.Presence); the other nodes apply that with PresenceRemote, take
// a full copy with PresenceSnapshot when they start following the channel,
// and forget a node that went silent with PresenceNodeGone.
//
// Each node turns the changes of its own list into member_added and
// member_removed for its own sockets. A socket therefore sees a list and a
// stream of changes that always agree, whatever the order in which the
// nodes' reports arrive, and every socket hears of a user joining or leaving
// once: when the user appears in or disappears from the cluster (§4.4).

// member is one distinct presence user on a channel (shard).
type member struct {
	seq   uint64   // order of first appearance on this node
	local int      // sockets of this user on this node
	nodes []string // other nodes reporting a socket of this user
	id    []byte   // user_id as its original JSON text
	info  []byte   // user_info JSON text, "null" when absent
}

func (m *member) present() bool { return m.local > 0 || len(m.nodes) > 0 }

// RemoteMember is one user another node reports on a presence channel.
type RemoteMember struct {
	Node string // the reporting node's id
	Key  string // the user id as a string (what makes users distinct)
	ID   []byte // user_id as JSON text
	Info []byte // user_info as JSON text
}

// newMember adds key to ch as a member that is not present yet (shard held).
func (ch *Channel) newMember(key string, id, info []byte) *member {
	ch.seq++
	m := &member{seq: ch.seq, id: id, info: info}
	if len(m.info) == 0 {
		m.info = []byte("null")
	}
	ch.members[key] = m
	return m
}

// memberAdded posts member_added for m to ch's subscribers except the
// local socket except (shard held). data is the member's channel_data object;
// nil builds {"user_id":…,"user_info":…} from m.
func (h *Hub) memberAdded(ch *Channel, m *member, data []byte, except uint64) {
	if data == nil {
		data = appendMemberData(nil, m.id, m.info)
	}
	frame := h.newFrame(pusher.AppendMemberAdded(make([]byte, 0, 64+len(data)), ch.name, data))
	h.postLocked(ch, frame, except)
}

// memberRemoved deletes m from ch and posts member_removed (shard held).
func (h *Hub) memberRemoved(ch *Channel, key string, m *member, except uint64) {
	delete(ch.members, key)
	frame := h.newFrame(pusher.AppendMemberRemoved(make([]byte, 0, 80+len(m.id)), ch.name, m.id))
	h.postLocked(ch, frame, except)
}

// appendMemberData appends {"user_id":<id>,"user_info":<info>}, without
// user_info when it is null.
func appendMemberData(dst, id, info []byte) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = append(dst, id...)
	if len(info) > 0 && string(info) != "null" {
		dst = append(dst, `,"user_info":`...)
		dst = append(dst, info...)
	}
	return append(dst, '}')
}

// lockChannel returns channel name of app appID with its shard locked, or
// nil with nothing locked when this node does not have it.
func (h *Hub) lockChannel(appID, name string) (*Channel, *shard) {
	app := h.byID.ByID(appID)
	if app == nil {
		return nil, nil
	}
	sh := h.state(app).shard(name)
	sh.mu.Lock()
	ch := sh.chans[name]
	if ch == nil {
		sh.mu.Unlock()
		return nil, nil
	}
	return ch, sh
}

// presenceChannel is lockChannel for presence channels only.
func (h *Hub) presenceChannel(appID, name string) (*Channel, *shard) {
	ch, sh := h.lockChannel(appID, name)
	if ch != nil && ch.members == nil {
		sh.mu.Unlock()
		return nil, nil
	}
	return ch, sh
}

// PresenceRemote applies another node's report that it gained (on) or lost
// its last socket of user key on a presence channel. Channels without local
// subscribers are ignored. Any goroutine; reports of one node about one
// channel must come in the order that node made them.
func (h *Hub) PresenceRemote(appID, channel string, rm RemoteMember, on bool) {
	ch, sh := h.presenceChannel(appID, channel)
	if ch == nil {
		return
	}
	defer sh.mu.Unlock()
	m := ch.members[rm.Key]
	if on {
		if m == nil {
			m = ch.newMember(rm.Key, rm.ID, rm.Info)
		}
		if slices.Contains(m.nodes, rm.Node) {
			return
		}
		was := m.present()
		m.nodes = append(m.nodes, rm.Node)
		if !was {
			h.memberAdded(ch, m, nil, 0)
		}
		return
	}
	if m == nil {
		return
	}
	if i := slices.Index(m.nodes, rm.Node); i >= 0 {
		m.nodes = slices.Delete(m.nodes, i, i+1)
		if !m.present() {
			h.memberRemoved(ch, rm.Key, m, 0)
		}
	}
}

// PresenceSnapshot replaces what the other nodes report on a presence
// channel with ms, their reports at one point of the broker's stream
// (reports received before it are included, later ones follow it). The
// lists of the nodes in sure are complete: a user of theirs missing from ms
// is gone. Of other nodes, ms may lack users (their state in Redis was
// lost and not yet written back): what this node knows of them is kept.
// Sockets see member_added and member_removed for the differences.
// Subscriptions waiting for the channel are acknowledged. Any goroutine.
func (h *Hub) PresenceSnapshot(appID, channel string, ms []RemoteMember, sure []string) {
	ch, sh := h.presenceChannel(appID, channel)
	if ch == nil {
		return
	}
	defer sh.mu.Unlock()
	nodes := make(map[string][]string, len(ms))
	for _, rm := range ms {
		if !slices.Contains(nodes[rm.Key], rm.Node) {
			nodes[rm.Key] = append(nodes[rm.Key], rm.Node)
		}
	}
	for key, m := range ch.members {
		if _, ok := nodes[key]; ok {
			continue
		}
		if len(m.nodes) > 0 {
			m.nodes = slices.DeleteFunc(m.nodes, func(n string) bool { return slices.Contains(sure, n) })
			if !m.present() {
				h.memberRemoved(ch, key, m, 0)
			}
		}
	}
	// Reported users in report order, so new members keep that order.
	for _, rm := range ms {
		ns, ok := nodes[rm.Key]
		if !ok {
			continue // done
		}
		delete(nodes, rm.Key)
		m := ch.members[rm.Key]
		if m == nil {
			m = ch.newMember(rm.Key, rm.ID, rm.Info)
		}
		was := m.present()
		for _, n := range m.nodes {
			if !slices.Contains(ns, n) && !slices.Contains(sure, n) {
				ns = append(ns, n) // not known to be gone
			}
		}
		m.nodes = ns
		if !was {
			h.memberAdded(ch, m, nil, 0)
		}
	}
	if !ch.ready {
		h.markReady(ch)
	}
}

// PresenceNodeGone forgets every report of node on every presence channel:
// the node stopped answering. Any goroutine.
func (h *Hub) PresenceNodeGone(node string) {
	for _, as := range h.apps {
		for i := range as.shards {
			sh := &as.shards[i]
			sh.mu.Lock()
			for _, ch := range sh.chans {
				for key, m := range ch.members {
					if j := slices.Index(m.nodes, node); j >= 0 {
						m.nodes = slices.Delete(m.nodes, j, j+1)
						if !m.present() {
							h.memberRemoved(ch, key, m, 0)
						}
					}
				}
			}
			sh.mu.Unlock()
		}
	}
}

// LocalPresence calls visit for every user with a socket on this node on a
// presence channel, with the identity this node reported for it. visit runs
// under the channel's shard lock: it must not call the hub. Any goroutine.
func (h *Hub) LocalPresence(appID, channel string, visit func(key string, id, info []byte)) {
	ch, sh := h.presenceChannel(appID, channel)
	if ch == nil {
		return
	}
	defer sh.mu.Unlock()
	for key, m := range ch.members {
		if m.local > 0 {
			visit(key, m.id, m.info)
		}
	}
}

// CacheSnapshot offers a cache channel's last event as another node stored
// it (payload nil when there is none): it is kept when this node has no
// cached event of its own, and subscriptions waiting for the channel are
// acknowledged unless the channel waits for a presence snapshot too. Any
// goroutine.
func (h *Hub) CacheSnapshot(appID, channel string, payload []byte) {
	ch, sh := h.lockChannel(appID, channel)
	if ch == nil {
		return
	}
	defer sh.mu.Unlock()
	if payload != nil && ch.cacheFrame == nil {
		frame := h.newFrame(payload)
		ch.cacheFrame = frame
		ch.cachePayload = frame[len(frame)-len(payload):]
		ch.cacheAt = h.Now()
	}
	if !ch.ready && !ch.typ.IsPresence() {
		h.markReady(ch)
	}
}
