// Package bench is the load harness behind the reverb-bench command: a
// Pusher protocol 7 client engine, a signed HTTP API publisher, the scenarios
// (connect, fanout, whisper, churn, http), a multi-process coordinator that
// merges worker results, server metrics read from /proc, and a bare reference
// server (ref) that gives the throughput ceiling of the machine.
//
// It speaks only the wire protocol, so it works against any Pusher-compatible
// server. It may import wsproto and pusher (leaves) for framing and signing,
// never loop, hub or cluster.
//
// Threading: the client and the reference server run raw epoll loops, one
// goroutine per loop locked to its OS thread; every connection belongs to one
// loop and is touched only there. Cross-goroutine state is atomics, or a
// mutex-guarded inbox plus an eventfd wake-up. Linux only.
package bench
