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
	// ID is the socket id sent in connection_established ("digits.digits").
	ID string
	// App is the app the socket connected to.
	App *pusher.App
	// LastSeen is the coarse unix second of the last inbound activity (§7).
	LastSeen int64
	// Pinged is set when the server pinged the idle socket and cleared by
	// any activity.
	Pinged bool
	// Control is set once the client sent any WebSocket control frame; idle
	// pings then use a WebSocket ping instead of pusher:ping.
	Control bool

	conn Conn
	as   *appState
	subs []subscription

	// user is the id this socket signed in as (pusher:signin), or "".
	user     string
	userInfo []byte

	rlStart int64
	rlCount int
	open    bool
}

// subscription is one channel a socket is on.
type subscription struct {
	ch *Channel
	// userKey is the presence user id compared as a string ("" = none);
	// userJSON is the same id as its original JSON text.
	userKey  string
	userJSON []byte
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

// findSub returns the index of the subscription to name, or -1.
func (s *Session) findSub(name []byte) int {
	for i := range s.subs {
		if s.subs[i].ch.name == string(name) {
			return i
		}
	}
	return -1
}
