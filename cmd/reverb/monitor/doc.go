// Package monitor serves a node's metrics on a listener of its own, apart
// from the gnet engine: GET /metrics in the Prometheus text format, and a
// live dashboard at / (HTML and JavaScript embedded in the binary, no build
// step) fed by GET /api/stats once a second.
//
// It only reads: the loops' folded counters (loop.Server.AppMetrics,
// APIMetrics), the hub's per-app gauges and bound counters (hub.Hub.AppStats,
// Counters) and, on a cluster, the broker's figures (cluster.Broker.Metrics,
// PeerConnections). Nothing here runs on an event loop or adds work to the
// fan-out: every value is computed when it is asked for, except the
// dashboard's one-minute history, which one sampler goroutine takes once a
// second.
//
// Goroutines: net/http's (one per metrics connection) and the sampler.
// Start and Close may be called from any goroutine.
package monitor
