// Package hub is the registry of apps, channels, subscriptions and presence,
// and the fan-out of events to subscribers.
//
// State lives in two tiers:
//
//   - Global, shared by every loop: per app, channels sharded by name hash
//     with one mutex per shard. A Channel records how many subscribers each
//     loop has, presence members, and the cached event of cache channels.
//   - Per loop (Local): the sockets of that loop subscribed to each channel
//     (Channel.local[i] is touched only by loop i), the loop's inbox of
//     deliveries, its JSON decoder and scratch buffers. Any goroutine
//     posts to the inbox, so the inbox and its wake-up flag are guarded by
//     Local.mu; everything else in Local belongs to its loop and takes no
//     lock.
//
// A publish encodes its frame once, looks up which loops have subscribers
// and appends one delivery to each of those loops' FIFO inboxes; the first
// append after a drain wakes the loop through its Poster. Order per
// publisher is the inbox order, never gnet's task queue order.
//
// Lock order: a shard mutex may be held while taking a Local inbox mutex
// (never the reverse); no lock is held while calling Conn or Poster methods
// except Poster.Wake, which must not block.
//
// Webhooks: the hub reports channel occupancy, presence transitions, client
// events, cache misses and subscription counts to Options.Hooks (hooks.go)
// when an app's webhooks want them; hub/webhook sends them.
//
// hub imports pusher only. The transport (package loop) implements Conn and
// Poster; other nodes are reached only through Broker (a single node uses
// NoBroker).
package hub
