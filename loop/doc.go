// Package loop is the network engine: one gnet/v2 multi-reactor engine, one
// event loop per core, serving the HTTP API and WebSocket upgrades on one
// port. It is the only package that imports gnet.
//
// Each connection moves through HTTP (request heads parsed from gnet's
// buffers, keep-alive and pipelining) to WebSocket (frames read with
// Peek/Discard, unmasked in place) and finally closing. Its protocol state
// is a hub.Session embedded in the connection; the loop implements hub.Conn
// (queue a frame, close) and hub.Poster (wake a loop to drain its inbox).
//
// Threading: every conn and loopCtx field is owned by its event loop and
// touched only in gnet callbacks or in runnables executed on that loop. Other
// goroutines reach a loop only through hub inboxes and EventLoop.Execute.
// With Config.AsyncAPI an HTTP API request is served on a goroutine of its
// own, which hands the answer back with EventLoop.Execute (asyncapi.go).
// OnTick runs on gnet's ticker goroutine once a second. It calls hub.Tick,
// which advances the hub's clock and works under the hub's shard mutexes:
// on a clustered node it releases subscriptions that waited too long for
// their channel, and once a minute it walks every shard of every app to
// evict expired cache channels. Then it schedules each loop's timer work
// (idle pings, the timing wheel) on that loop with EventLoop.Execute; it
// touches no conn itself.
//
// Output is coalesced: frames queued for a socket during one callback or
// one inbox drain are written with a single write/writev at its end.
package loop
