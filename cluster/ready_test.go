package cluster_test

import (
	"syscall"
	"testing"
	"time"
)

// TestSubscriptionAckWaitsForRedisSubscribe closes the subscribe gap: a
// node acknowledges a subscription to a channel it had no subscribers of
// only once its Redis SUBSCRIBE took effect, so an event triggered on
// another node as soon as the client sees subscription_succeeded cannot be
// missed. Redis is frozen so the SUBSCRIBE cannot complete: no
// acknowledgement may arrive until Redis resumes.
func TestSubscriptionAckWaitsForRedisSubscribe(t *testing.T) {
	r, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	c := b.connect("b1")
	c.subscribe("warm") // the pub/sub connection is up
	r.signal(syscall.SIGSTOP)
	c.send(`{"event":"pusher:subscribe","data":{"channel":"held"}}`)
	c.expectQuiet() // 300 ms: nothing while the SUBSCRIBE cannot take effect
	r.signal(syscall.SIGCONT)
	c.expect("pusher_internal:subscription_succeeded", "held")
	// Acknowledged, so an event from another node must arrive.
	a.trigger("held", "e", "right-after")
	c.expectData("e", "held", "right-after")
	waitNumSub(t, r, redisChannel("held"), 1)
}

// TestSubscriptionAcknowledgedDespiteFrozenRedis: when Redis cannot confirm
// the SUBSCRIBE (frozen with SIGSTOP), the acknowledgement is held at most
// the hub's timeout (2 s on a 1-second clock) and then sent anyway.
func TestSubscriptionAcknowledgedDespiteFrozenRedis(t *testing.T) {
	r, nodes := startCluster(t, 2)
	b := nodes[1]
	c := b.connect("b1")
	c.subscribe("warm") // the pub/sub connection is up and confirmed
	r.signal(syscall.SIGSTOP)
	defer r.signal(syscall.SIGCONT)

	start := time.Now()
	c.send(`{"event":"pusher:subscribe","data":{"channel":"frozen"}}`)
	c.expect("pusher_internal:subscription_succeeded", "frozen")
	if waited := time.Since(start); waited < 900*time.Millisecond || waited > 4*time.Second {
		t.Fatalf("acknowledged after %v; want the 1–3 s hold of an unconfirmed channel", waited)
	}
}
