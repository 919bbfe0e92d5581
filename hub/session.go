package hub

import "github.com/goreverb/reverb/pusher"

// Conn is the transport of one socket, implemented by the loop package.
// Both methods are called on the socket's own loop only.
type Conn interface {
	// Send queues one complete WebSocket frame. frame is not modified by
	// the caller until the loop has flushed (end of the current callback),
	// and shared broadcast frames are never modified at all.
	Send(frame []byte)
	// Close queues a close frame with code and reason after whatever is
	// queued, then closes the socket; Local.Closed follows from the loop's
	// close callback. Further Sends are dropped.
	Close(code int, reason string)
}

// Session is the protocol state of one established socket. The loop embeds
// it in its connection state; every field and method belongs to the
// socket's loop.
type Session struct {
	// App is the app the socket connected to.
	App *pusher.App
	// LastSeen is the coarse unix second of the last inbound activity (§7).
	LastSeen int64

	conn Conn
	as   *appState
	subs []subscription
	// index maps channel name to position in subs once the socket is on
	// indexFrom channels or more, so subscribe and unsubscribe stay O(1)
	// however many channels it holds; nil below that (a scan of a few
	// entries is cheaper than a map and costs no memory).
	index  map[string]int32
	signin *signedIn // nil until pusher:signin succeeds

	// seq is the local part of the socket id "<node>.<seq>" (see ID).
	seq uint64

	rlStart int32 // rate-limit window start, coarse seconds since rlEpoch
	rlCount int32

	// Pinged is set when the server pinged the idle socket and cleared by
	// any activity.
	Pinged bool
	// Control is set once the client sent any WebSocket control frame; idle
	// pings then use a WebSocket ping instead of pusher:ping.
	Control bool
	open    bool
}

// signedIn is the identity of a socket after pusher:signin (§4.9).
type signedIn struct {
	id   string
	info []byte
}

// subscription is one channel a socket is on; user is set for presence
// subscriptions that carry a user id.
type subscription struct {
	ch   *Channel
	user *presenceUser
}

// presenceUser is a presence subscription's identity: the user id compared
// as a string, and the same id as its original JSON text.
type presenceUser struct {
	key  string
	json []byte
}

func (sub *subscription) userKey() string {
	if sub.user == nil {
		return ""
	}
	return sub.user.key
}

// ID returns the socket id sent in connection_established ("digits.digits").
// It allocates; hot paths compare seq instead.
func (s *Session) ID() string { return string(s.AppendID(nil)) }

// AppendID appends the socket id to dst.
func (s *Session) AppendID(dst []byte) []byte {
	return appendSocketID(dst, s.as.hub.idHigh, s.seq)
}

// user returns the signed-in user id, or "".
func (s *Session) user() string {
	if s.signin == nil {
		return ""
	}
	return s.signin.id
}

// Open reports whether the session is established and not yet closed.
func (s *Session) Open() bool { return s.open }

// SubscriptionCount returns how many channels the socket is subscribed to.
func (s *Session) SubscriptionCount() int { return len(s.subs) }

// Touch records inbound activity at now; control reports a WebSocket
// control frame (ping, pong or close).
func (s *Session) Touch(now int64, control bool) {
	s.LastSeen = now
	s.Pinged = false
	if control {
		s.Control = true
	}
}

// indexFrom is the subscription count at which a socket's subscriptions
// get a name index; it is dropped again below indexFrom/2, so a socket
// hovering at the edge does not rebuild it on every subscribe.
const indexFrom = 16

// findSub returns the index of the subscription to name, or -1.
func (s *Session) findSub(name []byte) int {
	if s.index != nil {
		if i, ok := s.index[string(name)]; ok {
			return int(i)
		}
		return -1
	}
	for i := range s.subs {
		if s.subs[i].ch.name == string(name) {
			return i
		}
	}
	return -1
}

// on reports whether the session is still subscribed to this very channel
// object.
func (s *Session) on(ch *Channel) bool {
	if s.index != nil {
		i, ok := s.index[ch.name]
		return ok && s.subs[i].ch == ch
	}
	for i := range s.subs {
		if s.subs[i].ch == ch {
			return true
		}
	}
	return false
}

// addSub appends sub, indexing it when the socket has many channels.
func (s *Session) addSub(sub subscription) {
	s.subs = append(s.subs, sub)
	switch {
	case s.index != nil:
		s.index[sub.ch.name] = int32(len(s.subs) - 1)
	case len(s.subs) >= indexFrom:
		s.index = make(map[string]int32, 2*len(s.subs))
		for i := range s.subs {
			s.index[s.subs[i].ch.name] = int32(i)
		}
	}
}

// removeSub removes the i-th subscription: the last one takes its place.
func (s *Session) removeSub(i int) {
	last := len(s.subs) - 1
	if s.index != nil {
		delete(s.index, s.subs[i].ch.name)
		if i != last {
			s.index[s.subs[last].ch.name] = int32(i)
		}
	}
	s.subs[i] = s.subs[last]
	s.subs[last] = subscription{}
	s.subs = s.subs[:last]
	if s.index != nil && len(s.subs) < indexFrom/2 {
		s.index = nil
	}
	if len(s.subs) == 0 && cap(s.subs) > 4*indexFrom {
		s.subs = nil // a socket that once held many channels gives them back
	}
}
