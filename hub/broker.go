package hub

// Broker carries what one node publishes to the other nodes of a cluster.
// The hub calls it after delivering to local subscribers, so local delivery
// never waits for the broker. Implementations must not block the caller
// (queue and return) and may be called from any goroutine.
type Broker interface {
	// Publish forwards a channel message: payload is the Pusher JSON
	// (without WebSocket framing) to deliver to subscribers of channel in app,
	// except the socket whose id is except. payload is only valid during the
	// call: copy it before queueing.
	Publish(appID, channel string, payload []byte, except string)
	// Terminate asks every other node to close the sockets of userID in app.
	Terminate(appID, userID string)
	// Interest reports that this node now has (on) or no longer has (!on)
	// local subscribers of channel, so a broker can receive only what this
	// node's sockets need. Calls for one channel come in order (the hub
	// makes them under that channel's shard lock).
	Interest(appID, channel string, on bool)
	// Presence reports that this node gained its first (on) or lost its
	// last (!on) socket of user key on a presence channel; idJSON and info
	// are the JSON texts of its user_id and user_info. Calls for one channel
	// come in order (under its shard lock). The arguments are only valid
	// during the call. Other nodes answer with Hub.PresenceRemote.
	Presence(appID, channel, key string, idJSON, info []byte, on bool)
}

// NoBroker is the Broker of a single node: nothing leaves the process.
type NoBroker struct{}

// Publish does nothing.
func (NoBroker) Publish(string, string, []byte, string) {}

// Terminate does nothing.
func (NoBroker) Terminate(string, string) {}

// Interest does nothing.
func (NoBroker) Interest(string, string, bool) {}

// Presence does nothing.
func (NoBroker) Presence(string, string, string, []byte, []byte, bool) {}

// Directory asks the other nodes of a cluster for their local view of an
// app's channels. A cluster broker implements it next to Broker; the hub
// uses it for the HTTP API's channel queries. RemoteChannels blocks for a
// bounded time (nodes that do not answer in time are left out), so a
// clustered node serves those queries off its event loops.
type Directory interface {
	// RemoteChannels returns the other nodes' view of channel name, or of
	// every channel whose name starts with name when prefix is set. users
	// asks for presence member ids. Channels nobody subscribes to are left
	// out.
	RemoteChannels(appID, name string, prefix, users bool) []ChannelView
	// RemoteConnections returns the app's established sockets on the other
	// nodes.
	RemoteConnections(appID string) int
}

// ChannelView is what the other nodes report of one channel together.
type ChannelView struct {
	Name string
	// Subs counts the channel's subscribed sockets on those nodes.
	Subs int
	// UserCount is the number of presence members (every node holds the
	// whole list, so this is the largest count reported).
	UserCount int
	// Users are the members' user_id JSON texts, when asked for.
	Users [][]byte
}
