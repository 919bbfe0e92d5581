package pusher

import "time"

// ClientEvents is an app's accept_client_events_from policy (PROTOCOL.md §4.8).
type ClientEvents uint8

const (
	// ClientEventsAll relays client events from any socket, subscribed or not.
	ClientEventsAll ClientEvents = iota
	// ClientEventsMembers relays client events only from sockets subscribed to the channel.
	ClientEventsMembers
	// ClientEventsNone rejects every client event with 4301.
	ClientEventsNone
)

// ParseClientEvents maps a config value to a policy: "members", "all", an
// absent key (empty string) means all [R]; anything else disables client events.
func ParseClientEvents(s string) ClientEvents {
	switch s {
	case "members":
		return ClientEventsMembers
	case "all", "":
		return ClientEventsAll
	}
	return ClientEventsNone
}

// String returns the config spelling of the policy.
func (m ClientEvents) String() string {
	switch m {
	case ClientEventsMembers:
		return "members"
	case ClientEventsAll:
		return "all"
	}
	return "none"
}

// RateLimit is an app's per-connection inbound message limit (§8.3).
type RateLimit struct {
	Enabled     bool
	MaxAttempts int           // messages per window; default 60
	Decay       time.Duration // window length; default 60 s
	Terminate   bool          // close the socket with 4301 when over the limit
}

// App is one configured application (config/reverb.php apps.apps[] entry).
// Apps are immutable after start and shared by every goroutine.
type App struct {
	ID     string
	Key    string
	Secret string

	// AllowedOrigins is matched per §2.4; ["*"] allows everything.
	AllowedOrigins []string
	// PingInterval is how long a socket may stay silent before the server pings it (§7).
	PingInterval time.Duration
	// ActivityTimeout is advertised in connection_established, in whole seconds (≥ 1).
	ActivityTimeout int
	// MaxConnections caps established sockets of this app per node; 0 means unlimited.
	MaxConnections int
	// MaxMessageSize caps one inbound WebSocket message in bytes (close 1009 above it).
	MaxMessageSize int
	// MaxChannels caps the channels one socket may be subscribed to at
	// once; a subscribe beyond it gets ErrTooManyChannels. Zero or less
	// means unlimited; WithDefaults turns 0 into DefaultMaxChannels, so a
	// config source asks for unlimited with a negative value.
	MaxChannels int
	// ClientEvents is the accept_client_events_from policy.
	ClientEvents ClientEvents
	// RateLimit limits inbound messages per connection.
	RateLimit RateLimit
	// Signin enables pusher:signin and #server-to-user-{id} channels (our extension, default on).
	Signin bool
	// CacheTTL is how long a cache channel keeps its last event once nobody is
	// subscribed; 0 means 30 minutes.
	CacheTTL time.Duration
	// TerminateCode is the close code sent by terminate_connections (default 4009).
	TerminateCode int
	// Webhooks are the app's webhook targets (§12); none by default.
	Webhooks []Webhook

	hooks HookMask // union of Webhooks' events, set by WithDefaults
}

// Defaults for App fields left zero by a config source.
const (
	DefaultPingInterval    = 60 * time.Second
	DefaultActivityTimeout = 30
	DefaultMaxMessageSize  = 10_000
	DefaultCacheTTL        = 30 * time.Minute
	DefaultTerminateCode   = 4009
	// DefaultMaxChannels: a Laravel page subscribes to a few private and
	// presence channels plus the user's notification channel; 100 leaves
	// room for pages with a channel per list row while keeping one socket
	// from filling the registry (Centrifugo's client_channel_limit is 128;
	// pusher-js itself has no limit).
	DefaultMaxChannels = 100
)

// WithDefaults returns a copy of a with zero fields set to Reverb's defaults.
func (a App) WithDefaults() App {
	if len(a.AllowedOrigins) == 0 {
		a.AllowedOrigins = []string{"*"}
	}
	if a.PingInterval <= 0 {
		a.PingInterval = DefaultPingInterval
	}
	if a.ActivityTimeout <= 0 {
		a.ActivityTimeout = DefaultActivityTimeout
	}
	if a.MaxMessageSize <= 0 {
		a.MaxMessageSize = DefaultMaxMessageSize
	}
	if a.RateLimit.MaxAttempts <= 0 {
		a.RateLimit.MaxAttempts = 60
	}
	if a.RateLimit.Decay <= 0 {
		a.RateLimit.Decay = 60 * time.Second
	}
	if a.CacheTTL <= 0 {
		a.CacheTTL = DefaultCacheTTL
	}
	if a.MaxChannels == 0 {
		a.MaxChannels = DefaultMaxChannels
	}
	if a.TerminateCode == 0 {
		a.TerminateCode = DefaultTerminateCode
	}
	a.hooks = 0
	if len(a.Webhooks) > 0 {
		hs := make([]Webhook, len(a.Webhooks))
		copy(hs, a.Webhooks)
		for i := range hs {
			if hs[i].Events == 0 {
				hs[i].Events = AllHooks
			}
			a.hooks |= hs[i].Events
		}
		a.Webhooks = hs
	}
	return a
}
