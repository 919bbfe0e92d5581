package pusher

// ChannelInfo is one channel's state as the HTTP API reports it (§9.11).
type ChannelInfo struct {
	// Occupied is true while at least one socket is subscribed.
	Occupied bool
	// SubscriptionCount is the number of subscribed sockets.
	SubscriptionCount int
	// UserCount is the number of distinct user ids (presence channels).
	UserCount int
	// Cache is the last cached event as a JSON object
	// {"event":…,"data":…,"channel":…}, or nil when nothing is cached.
	Cache []byte
}

// Backend is the channel state and fan-out the HTTP API acts on. The hub
// implements it. Every method may be called from any goroutine and must not
// wait for a fan-out to finish.
type Backend interface {
	// Publish sends event with the data string on each channel to every
	// subscriber except the socket whose id is except (empty = nobody).
	// Cache channels store the event even when nobody is subscribed.
	Publish(app *App, channels []string, event string, data []byte, except string)
	// Channel returns the state of one channel.
	Channel(app *App, name string) ChannelInfo
	// Channels calls visit for every occupied channel whose name starts with prefix.
	Channels(app *App, prefix string, visit func(name string, info ChannelInfo))
	// Users calls visit with the JSON text of each distinct user id of a
	// presence channel, in first-subscription order. It reports whether the
	// channel is occupied.
	Users(app *App, channel string, visit func(idJSON []byte)) (occupied bool)
	// Terminate closes every socket of app signed in as userID or present
	// with that user_id on any presence channel.
	Terminate(app *App, userID string)
	// Connections returns the number of established sockets of app.
	Connections(app *App) int
}
