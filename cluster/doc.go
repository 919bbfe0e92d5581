// Package cluster carries one node's publishes to the other nodes of a
// cluster over Redis pub/sub (PROTOCOL.md §11.3). Broker implements
// hub.Broker; cmd wires it in only when scaling is enabled, so a single node
// never touches Redis.
//
// Redis layout, with C = Config.Channel ("reverb" by default):
//
//   - C is the control channel. Every node SUBSCRIBEs it; terminate and
//     restart commands and the stats heartbeats travel there.
//   - C#<app_id>#<channel> carries the events of one Pusher channel, and
//     the presence changes of presence channels. A node SUBSCRIBEs it only
//     while it has local subscribers of that channel
//     (hub.Broker.Interest), so a node receives only what its own sockets
//     need. Publishes always go to it; a PUBLISH nobody listens to is free.
//   - C#node#<node> is one node's reply channel: presence snapshots, cached
//     events and answers to its channel queries arrive there.
//
// Keys: presence hashes, cached events and alive keys (state.go). Channel
// queries store nothing (query.go).
//
// Every message is a JSON envelope with a version, the sender's node id and
// the app id, never a secret (see envelope.go). Anything else on these
// channels (a PHP Reverb node's serialized envelopes, garbage, newer
// versions) is counted and ignored.
//
// Connection counts: every node publishes a stats envelope on C once a second
// with its established sockets per app id. Each node keeps the last report
// of every other node and drops a node not heard from for 3 s; the per-app
// sum over the others goes into the hub (hub.Hub.SetRemoteConnections), so
// GET /connections and the max_connections check count the whole cluster
// without a Redis round trip in the request. The figures lag by up to about
// a second (a burst of connects spread over nodes may overshoot a limit
// briefly); a node that dies stops counting within about 4 s. While this
// node hears nothing from Redis, other nodes expire and it counts only its
// own sockets.
//
// Goroutines, all started by Start and ended by Close:
//
//   - publisher: the only writer of PUBLISH commands. It takes envelopes from
//     one bounded FIFO queue in order and pipelines them on one connection,
//     so per-channel order from this node survives end to end.
//   - receiver: the only reader of the pub/sub connection. It calls the hub
//     in arrival order.
//   - manager: applies Interest changes as SUBSCRIBE/UNSUBSCRIBE, pings the
//     pub/sub connection and replaces it when it stops answering.
//   - stats: publishes this node's counts once a second on a connection of
//     its own (a heartbeat is never queued behind messages nor sent late),
//     refreshes the alive key and expires silent nodes (their presence
//     members are dropped: hub.Hub.PresenceNodeGone).
//   - state: runs presence and cache scripts in order on a connection of
//     its own, retrying a failed batch (every operation sets a state, so a
//     repeat is harmless).
//   - webhooks (only when Broker.Webhooks was called): records this
//     node's occupancy and presence transitions in Redis, polls the due
//     removals and hands the cluster-wide transitions to the webhook
//     sender, on a connection of its own (webhook.go).
//
// A SUBSCRIBE confirmation makes a plain channel ready at once
// (hub.Hub.InterestReady); presence and cache channels are ready when
// their snapshot or cached event arrives on the reply channel.
// RemoteChannels and RemoteConnections (hub.Directory) are the only methods
// that block: each publishes a query and waits for the other nodes'
// answers, up to 1 s (queryWait, capped by Config.Timeout), which is why
// the HTTP API runs off the event loops when scaling is on.
//
// Publish, Terminate, Interest and Presence never block and never do I/O: they encode
// or record and return. Lock order: Broker.mu (interest changes) is a leaf;
// it is taken while the hub holds a shard mutex and never the other way.
// The peers table's mutex is taken by the receiver and stats goroutines
// only, never under a hub lock; under it they call only the hub's lock-free
// SetRemoteConnections.
//
// cluster imports hub (and pusher through it) and go-redis; it must not
// import loop. Only this package imports go-redis.
package cluster
