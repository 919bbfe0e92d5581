package webhook

import (
	"time"

	"github.com/goreverb/reverb/pusher"
)

// Transitions of a single node: the hub reports this node's occupancy and
// presence changes, which are the app's.

// tkey is one channel (user "") or one presence user of a channel.
type tkey struct {
	app           *pusher.App
	channel, user string
	member        bool
}

// tstate is an announced channel or member: pending while its removal
// waits out the delay.
type tstate struct {
	pending bool
	queued  bool // has an entry in Sender.due
	due     time.Time
}

// dueItem is a delayed removal; due only grows for a key, so an item found
// early is put back with the later time.
type dueItem struct {
	k   tkey
	due time.Time
}

// Occupancy implements hub.Hooks for a single node.
func (s *Sender) Occupancy(app *pusher.App, channel string, on bool) {
	s.transition(tkey{app: app, channel: channel}, on)
}

// Member implements hub.Hooks for a single node.
func (s *Sender) Member(app *pusher.App, channel, user string, on bool) {
	s.transition(tkey{app: app, channel: channel, user: user, member: true}, on)
}

// SubscriptionCount implements hub.Hooks.
func (s *Sender) SubscriptionCount(app *pusher.App, channel string, n int) {
	s.Emit(app, &Event{Kind: pusher.HookSubscriptionCount, Channel: channel, Count: n})
}

// ClientEvent implements hub.Hooks.
func (s *Sender) ClientEvent(app *pusher.App, channel, event string, data []byte, socketID, userID string) {
	s.Emit(app, &Event{Kind: pusher.HookClientEvent, Channel: channel, Event: event,
		Data: dataString(data), SocketID: socketID, User: userID})
}

// CacheMiss implements hub.Hooks.
func (s *Sender) CacheMiss(app *pusher.App, channel string) {
	s.Emit(app, &Event{Kind: pusher.HookCacheMiss, Channel: channel})
}

func (k tkey) event(on bool) *Event {
	e := &Event{Channel: k.channel, User: k.user}
	switch {
	case k.member && on:
		e.Kind = pusher.HookMemberAdded
	case k.member:
		e.Kind = pusher.HookMemberRemoved
	case on:
		e.Kind = pusher.HookChannelOccupied
	default:
		e.Kind = pusher.HookChannelVacated
	}
	return e
}

func (s *Sender) transition(k tkey, on bool) {
	ts := s.targets[k.app]
	if len(ts) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.trans[k]
	if on {
		switch {
		case st == nil:
			s.trans[k] = &tstate{}
			var enc []byte
			s.emitLocked(ts, k.event(true), &enc)
		case st.pending:
			st.pending = false // back within the delay: nothing to tell
		}
		return
	}
	if st == nil || st.pending {
		return
	}
	st.pending = true
	st.due = s.now().Add(s.o.Delay)
	if !st.queued {
		st.queued = true
		s.due = append(s.due, dueItem{k, st.due})
	}
}

// fireDueLocked sends the removals whose delay has passed (mu held).
func (s *Sender) fireDueLocked(now time.Time) {
	n := len(s.due) // items put back are looked at next tick
	for i := 0; i < n && len(s.due) > 0; i++ {
		it := s.due[0]
		if it.due.After(now) {
			break
		}
		s.due[0] = dueItem{}
		s.due = s.due[1:]
		st := s.trans[it.k]
		switch {
		case st == nil:
		case !st.pending:
			st.queued = false
		case st.due.After(now):
			s.due = append(s.due, dueItem{it.k, st.due})
		default:
			s.fireLocked(it.k)
		}
	}
	if len(s.due) == 0 {
		s.due = nil // let the backing array go
	}
}

// fireLocked sends k's removal and forgets k (mu held).
func (s *Sender) fireLocked(k tkey) {
	delete(s.trans, k)
	var enc []byte
	s.emitLocked(s.targets[k.app], k.event(false), &enc)
}
