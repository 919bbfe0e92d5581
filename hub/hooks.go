package hub

import "github.com/goreverb/reverb/pusher"

// Hooks receives what apps can get webhooks for (PROTOCOL.md §12). The hub
// reports this node's view: Occupancy and Member are the node-level
// transitions (first/last local subscriber, first/last local socket of a
// user), the same moments it calls Broker.Interest and Broker.Presence. On a
// single node those are the app's transitions; on a cluster the
// implementation (package cluster) combines the nodes' reports so each
// transition is reported once for the whole cluster.
//
// The hub calls a method only when one of the app's webhooks wants the
// event (App.HookMask), mostly with a shard mutex held and on an event
// loop: implementations must not block, must not call the hub, and must
// copy data before returning.
type Hooks interface {
	// Occupancy: this node gained its first (on) or lost its last (!on)
	// subscriber of channel. Calls for one channel come in order.
	Occupancy(app *pusher.App, channel string, on bool)
	// Member: this node gained its first (on) or lost its last (!on)
	// socket of user on presence channel. Calls for one channel come in
	// order.
	Member(app *pusher.App, channel, user string, on bool)
	// SubscriptionCount: this node's subscriptions of a channel that is not
	// a presence channel changed to n.
	SubscriptionCount(app *pusher.App, channel string, n int)
	// ClientEvent: socketID sent client event event on channel with data
	// (its JSON text); userID is the sender's presence user id, "" when the
	// channel is not a presence channel.
	ClientEvent(app *pusher.App, channel, event string, data []byte, socketID, userID string)
	// CacheMiss: a socket subscribed to a cache channel with nothing cached.
	CacheMiss(app *pusher.App, channel string)
}

// occupancyHooks are the events that follow subscriptions.
const occupancyHooks = pusher.HookMask(1<<pusher.HookChannelOccupied | 1<<pusher.HookChannelVacated |
	1<<pusher.HookMemberAdded | 1<<pusher.HookMemberRemoved | 1<<pusher.HookSubscriptionCount)

// hookOccupancy reports a node-level occupancy change of ch (shard held).
func (h *Hub) hookOccupancy(ch *Channel, on bool) {
	if h.hooks == nil || ch.typ.IsUser() {
		return
	}
	// Also reported for apps that want only member or count events: a
	// cluster indexes the channels each node has by it.
	if app := ch.as.app; app.HookMask()&occupancyHooks != 0 {
		h.hooks.Occupancy(app, ch.name, on)
	}
}

// hookMember reports a node-level presence change of user on ch (shard held).
func (h *Hub) hookMember(ch *Channel, user string, on bool) {
	if h.hooks == nil {
		return
	}
	app := ch.as.app
	if m := app.HookMask(); m.Has(pusher.HookMemberAdded) || m.Has(pusher.HookMemberRemoved) {
		h.hooks.Member(app, ch.name, user, on)
	}
}

// hookCount reports ch's subscription count after a change (shard held).
// Pusher sends none for presence channels.
func (h *Hub) hookCount(ch *Channel) {
	if h.hooks == nil || ch.typ.IsPresence() || ch.typ.IsUser() {
		return
	}
	if app := ch.as.app; app.HookMask().Has(pusher.HookSubscriptionCount) {
		h.hooks.SubscriptionCount(app, ch.name, ch.subs)
	}
}
