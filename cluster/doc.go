// Package cluster carries one node's publishes to the other nodes of a
// cluster over Redis pub/sub (PROTOCOL.md §11.3). Broker implements
// hub.Broker; cmd wires it in only when scaling is enabled, so a single node
// never touches Redis.
//
// Redis layout, with C = Config.Channel ("reverb" by default):
//
//   - C is the control channel. Every node SUBSCRIBEs it; terminate and
//     restart commands travel there.
//   - C#<app_id>#<channel> carries the events of one Pusher channel. A node
//     SUBSCRIBEs it only while it has local subscribers of that channel
//     (hub.Broker.Interest), so a node receives only what its own sockets
//     need. Publishes always go to it; a PUBLISH nobody listens to is free.
//
// Every message is a JSON envelope with a version, the sender's node id and
// the app id, never a secret (see envelope.go). Anything else on these
// channels (a PHP Reverb node's serialized envelopes, garbage, newer
// versions) is counted and ignored.
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
//
// Publish, Terminate and Interest never block and never do I/O: they encode
// or record and return. Lock order: Broker.mu (interest changes) is a leaf;
// it is taken while the hub holds a shard mutex and never the other way.
//
// cluster imports hub (and pusher through it) and go-redis; it must not
// import loop. Only this package imports go-redis.
package cluster
