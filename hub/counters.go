package hub

import "sync/atomic"

// Counters are the node's counts of events that bounds, limits and webhooks
// cause (slow consumers closed, subscriptions refused, …). They are
// cold-path events, so each is one atomic; the metrics endpoint and --debug
// read them. The hot path (frame in -> fan-out out) never touches them per
// receiver: per-loop figures are folded in per batch by their owner.
//
// Any goroutine may read or add. Add a field here, with a comment saying
// what is counted, rather than keeping counters elsewhere.
type Counters struct {
	// SlowConsumerCloses counts sockets closed with 4100 because what they
	// had not yet taken passed the per-socket bound.
	SlowConsumerCloses atomic.Uint64
	// NodeBudgetCloses counts sockets closed because the bytes held for all
	// sockets of the node reached the node budget (largest backlogs first).
	NodeBudgetCloses atomic.Uint64
	// BytesHeld is a gauge: bytes of frames held for sockets that have not
	// yet taken them (each shared frame counted once).
	BytesHeld atomic.Int64
	// RefusedSubscriptions counts subscribes refused by the per-socket
	// channel cap.
	RefusedSubscriptions atomic.Uint64
	// HeadDeadlineCloses counts connections closed because their HTTP
	// request head was not complete in time.
	HeadDeadlineCloses atomic.Uint64
	// RefusedPreUpgrade counts connections refused because the node already
	// held as many not-yet-upgraded connections as allowed.
	RefusedPreUpgrade atomic.Uint64

	// RedisSilent counts Redis connections (pub/sub, or one shard's in
	// Redis Cluster mode) replaced because Redis left a PING unanswered
	// for the liveness window: a frozen or partitioned Redis.
	RedisSilent atomic.Uint64

	// Webhooks: requests sent (2xx), failed attempts, retries scheduled,
	// batches dropped after the retry window or for a full queue, and the
	// events waiting to be sent (gauge).
	WebhooksSent    atomic.Uint64
	WebhooksFailed  atomic.Uint64
	WebhooksRetried atomic.Uint64
	WebhooksDropped atomic.Uint64
	WebhookQueue    atomic.Int64
}

// Counters returns the node's counters.
func (h *Hub) Counters() *Counters { return &h.counters }
