package cluster

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// names builds the Redis channel and key names of one mode. Any goroutine
// (it is read-only after New).
//
// One Redis and Sentinel, with C = Config.Channel:
//
//	control       C
//	reply         C#node#<node>
//	per channel   C#<app>#<channel>
//	presence      C#presence#<app>#<channel>
//	cache         C#cache#<app>#<channel>
//	alive         C#alive#<node>
//
// Redis Cluster: every name carries a hash tag, so that a Pusher channel's
// shard channel, presence hash and cached event live in one slot (every
// script touches one slot, and its SPUBLISH goes to the shard that holds
// the keys), and each node's reply channel and alive key in a slot of their
// own:
//
//	control       {C}
//	reply         C#node#{<node>}
//	per channel   C#{<app>#<channel>}
//	presence      C#presence#{<app>#<channel>}
//	cache         C#cache#{<app>#<channel>}
//	alive         C#alive#{<node>}
//
// C may not contain braces in cluster mode (Config.validate), so the first
// '{' of each name is ours. An app id holding '}' ends the tag early, but
// the same way in every name of that channel, so they still share a slot.
type names struct {
	prefix, node string
	sharded      bool
}

func (n names) tag(s string) string {
	if n.sharded {
		return "{" + s + "}"
	}
	return s
}

// control is the control channel: every node listens, commands, stats and
// queries travel there.
func (n names) control() string { return n.tag(n.prefix) }

// replyOf is a node's reply channel.
func (n names) replyOf(node string) string { return n.prefix + "#node#" + n.tag(node) }

// reply is this node's reply channel.
func (n names) reply() string { return n.replyOf(n.node) }

// channel is the Redis channel of a Pusher channel, or the control channel
// for the zero key. '#' may occur in app ids and channel names, so two
// names can share a Redis channel; receivers go by the envelope's own app
// and channel fields, so that only costs traffic.
func (n names) channel(k chanKey) string {
	if k.channel == "" {
		return n.control()
	}
	return n.prefix + "#" + n.tag(k.app+"#"+k.channel)
}

func (n names) presence(k chanKey) string {
	return n.prefix + "#presence#" + n.tag(k.app+"#"+k.channel)
}

func (n names) cache(k chanKey) string {
	return n.prefix + "#cache#" + n.tag(k.app+"#"+k.channel)
}

func (n names) alive(node string) string { return n.prefix + "#alive#" + n.tag(node) }

// publish adds a PUBLISH of msg on channel to a pipeline: SPUBLISH in
// cluster mode, where classic pub/sub would be copied to every shard.
func (n names) publish(ctx context.Context, p redis.Cmdable, channel string, msg any) *redis.IntCmd {
	if n.sharded {
		return p.SPublish(ctx, channel, msg)
	}
	return p.Publish(ctx, channel, msg)
}

// Wrappers kept so the code reads as before the names moved here.

func (b *Broker) redisName(k chanKey) string   { return b.names.channel(k) }
func (b *Broker) presenceKey(k chanKey) string { return b.names.presence(k) }
func (b *Broker) cacheKey(k chanKey) string    { return b.names.cache(k) }
func (b *Broker) aliveKey(node string) string  { return b.names.alive(node) }
func (b *Broker) replyChannel() string         { return b.names.reply() }
