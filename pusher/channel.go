package pusher

import "strings"

// ChannelType is a set of channel properties derived from the name (§5).
type ChannelType uint8

const (
	// ChanAuth: subscribing needs a signature (private-, presence-, encrypted).
	ChanAuth ChannelType = 1 << iota
	// ChanPresence: membership is tracked per user_id.
	ChanPresence
	// ChanCache: the last server event is replayed to new subscribers.
	ChanCache
	// ChanEncrypted: private-encrypted-*; the server relays ciphertext unchanged.
	ChanEncrypted
	// ChanUser: #server-to-user-{id}; only a socket signed in as {id} may join.
	ChanUser
	// ChanReserved: any other name starting with '#'; never subscribable.
	ChanReserved
)

// UserChannelPrefix prefixes the per-user channel of signed-in sockets (§4.9).
const UserChannelPrefix = "#server-to-user-"

// ClassifyChannel returns the type of a channel name. It matches the dashed
// prefixes like pusher-js does (deviation from Reverb for names such as
// "privatefoo", which are public here).
func ClassifyChannel(name string) ChannelType {
	switch {
	case strings.HasPrefix(name, "#"):
		if strings.HasPrefix(name, UserChannelPrefix) && len(name) > len(UserChannelPrefix) {
			return ChanUser
		}
		return ChanReserved
	case strings.HasPrefix(name, "private-encrypted-cache-"):
		return ChanAuth | ChanEncrypted | ChanCache
	case strings.HasPrefix(name, "private-encrypted-"):
		return ChanAuth | ChanEncrypted
	case strings.HasPrefix(name, "private-cache-"):
		return ChanAuth | ChanCache
	case strings.HasPrefix(name, "private-"):
		return ChanAuth
	case strings.HasPrefix(name, "presence-cache-"):
		return ChanAuth | ChanPresence | ChanCache
	case strings.HasPrefix(name, "presence-"):
		return ChanAuth | ChanPresence
	case strings.HasPrefix(name, "cache-"):
		return ChanCache
	}
	return 0
}

// NeedsAuth reports whether subscribing needs a channel signature.
func (t ChannelType) NeedsAuth() bool { return t&ChanAuth != 0 }

// IsPresence reports whether the channel tracks members.
func (t ChannelType) IsPresence() bool { return t&ChanPresence != 0 }

// IsCache reports whether the channel replays its last event.
func (t ChannelType) IsCache() bool { return t&ChanCache != 0 }

// IsUser reports whether this is a #server-to-user-{id} channel.
func (t ChannelType) IsUser() bool { return t&ChanUser != 0 }

// IsReserved reports whether the name is a '#' name nobody may subscribe to.
func (t ChannelType) IsReserved() bool { return t&ChanReserved != 0 }
