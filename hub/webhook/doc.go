// Package webhook sends Pusher webhooks (PROTOCOL.md §12, §6.4) for the
// apps that configure them: it batches events per target, signs each body
// with the app secret, POSTs it and retries failures with exponential
// backoff for a bounded time.
//
// Sender implements hub.Hooks for a single node: occupancy and presence
// transitions of this node are the app's, and channel_vacated /
// member_removed wait Options.Delay, cancelled when the channel or user
// comes back. On a cluster, package cluster implements hub.Hooks instead
// (combining the nodes' transitions in Redis) and hands finished events to
// Sender.Emit.
//
// Goroutines: Emit and the hub.Hooks methods are called by event loops and
// by the cluster's goroutines, often with a hub shard mutex held; they
// only encode the event and append it to a bounded in-memory queue under
// the Sender's mutex (a leaf lock), never doing I/O or blocking. Start
// launches one ticker goroutine (cuts batches, fires delayed events) and
// Options.Workers sender goroutines (net/http); Close stops them. Counters
// go to the hub.Counters passed to Start.
package webhook
