package hub

import (
	"slices"

	"github.com/goreverb/reverb/pusher"
)

// Channel is one app channel on this node. Fields marked "shard" are guarded
// by the mutex of the shard holding the channel; local[i] belongs to loop i.
type Channel struct {
	name string
	typ  pusher.ChannelType
	as   *appState

	// shard
	subs    int     // subscribed sockets on this node
	perLoop []int32 // subscribed sockets per loop
	members map[string]*member
	seq     uint64
	// cache channels: the last server event (frame and its JSON payload)
	cacheFrame   []byte
	cachePayload []byte
	cacheAt      int64

	// ready is false from the moment a clustered node gains its first
	// subscriber of the channel until the broker confirms it receives the
	// channel from the other nodes (or a timeout); acknowledgements wait
	// for it. waiters is a bit set (bit i%64 of word i/64 = loop i) of
	// the loops holding such acknowledgements, allocated on first use, and
	// notReadySince (coarse seconds) drives the timeout.
	ready         bool
	waiters       []uint64
	notReadySince int64

	// pubSeq numbers the deliveries posted for this channel (shard). A
	// subscriber remembers the number current when it joined and gets only
	// deliveries posted after that, so a delivery still queued in an inbox
	// never reaches a socket that subscribed after it was published.
	pubSeq uint64

	// local[i] maps loop i's sockets on this channel to their join number
	// (pendingJoin until acknowledged); only loop i touches it.
	local []map[*Session]uint64
}

func newChannel(as *appState, name string, loops int) *Channel {
	ch := &Channel{
		ready:   true,
		name:    name,
		typ:     pusher.ClassifyChannel(name),
		as:      as,
		perLoop: make([]int32, loops),
		local:   make([]map[*Session]uint64, loops),
	}
	if ch.typ.IsPresence() {
		ch.members = make(map[string]*member)
	}
	return ch
}

// info reports the channel for the HTTP API (shard held).
func (ch *Channel) info(now int64) pusher.ChannelInfo {
	in := pusher.ChannelInfo{
		Occupied:          ch.subs > 0,
		SubscriptionCount: ch.subs,
		UserCount:         len(ch.members),
	}
	if ch.cacheValid(now) {
		in.Cache = ch.cachePayload
	}
	return in
}

// cacheValid reports whether the cached event may still be replayed: always
// while occupied, and for CacheTTL after the last publish once empty (shard).
func (ch *Channel) cacheValid(now int64) bool {
	if ch.cacheFrame == nil {
		return false
	}
	return ch.subs > 0 || now-ch.cacheAt < int64(ch.as.app.CacheTTL.Seconds())
}

// orderedMembers appends the channel's members in first-subscription order (shard).
func (ch *Channel) orderedMembers(dst []pusher.Member) []pusher.Member {
	ms := make([]*member, 0, len(ch.members))
	for _, m := range ch.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	for _, m := range ms {
		dst = append(dst, pusher.Member{IDJSON: m.id, InfoJSON: m.info})
	}
	return dst
}
