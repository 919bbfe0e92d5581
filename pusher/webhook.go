package pusher

import "strings"

// HookKind is one webhook event name of §12.
type HookKind uint8

// The webhook events an app can ask for.
const (
	HookChannelOccupied HookKind = iota
	HookChannelVacated
	HookMemberAdded
	HookMemberRemoved
	HookClientEvent
	HookCacheMiss
	HookSubscriptionCount
	numHookKinds
)

var hookNames = [numHookKinds]string{
	"channel_occupied", "channel_vacated", "member_added", "member_removed",
	"client_event", "cache_miss", "subscription_count",
}

// String returns the event name sent in the webhook body.
func (k HookKind) String() string {
	if k < numHookKinds {
		return hookNames[k]
	}
	return "unknown"
}

// ParseHookKind maps an event name to its kind.
func ParseHookKind(name string) (HookKind, bool) {
	for i, n := range hookNames {
		if n == name {
			return HookKind(i), true
		}
	}
	return 0, false
}

// HookMask is a set of HookKinds.
type HookMask uint16

// AllHooks asks for every event.
const AllHooks = HookMask(1<<numHookKinds - 1)

// Has reports whether k is in the set.
func (m HookMask) Has(k HookKind) bool { return m&(1<<k) != 0 }

// With returns the set with k added.
func (m HookMask) With(k HookKind) HookMask { return m | 1<<k }

// Webhook is one webhook target of an app (soketi's shape: url, event_types,
// headers, filter).
type Webhook struct {
	URL string
	// Events are the event kinds sent to URL; empty (0) means all.
	Events HookMask
	// Headers are added to every request (after Content-Type and the
	// X-Pusher-* headers, which they cannot replace).
	Headers map[string]string
	// Prefix and Suffix, when set, restrict the events to channels whose
	// name starts / ends with them (filter.channel_name_starts_with and
	// channel_name_ends_with).
	Prefix, Suffix string
}

// Wants reports whether the webhook takes event k of channel.
func (w *Webhook) Wants(k HookKind, channel string) bool {
	return w.Events.Has(k) && strings.HasPrefix(channel, w.Prefix) && strings.HasSuffix(channel, w.Suffix)
}

// HookMask returns the events any of the app's webhooks wants; the hub
// checks it before building an event, so an app without webhooks (or
// without client_event among them) costs one bit test.
func (a *App) HookMask() HookMask { return a.hooks }
