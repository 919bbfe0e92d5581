package loop_test

import (
	"fmt"
	"testing"

	"github.com/goreverb/reverb/loop"
)

// TestLargeFanoutInSlices: with one loop, a fan-out to more sockets than one
// drain slice serves is continued across loop turns; every socket still
// gets every event exactly once and in publish order, and an HTTP request
// made meanwhile is answered.
func TestLargeFanoutInSlices(t *testing.T) {
	s := startDefault(t, func(c *loop.Config) { c.Loops = 1 })
	api := s.api(t)
	const n = 1300 // 41 batches of 32 (drainBudget): at a few µs per write, several 1 ms slices (drainSlice)
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = s.connect(t)
		clients[i].subscribe("crowd")
	}
	for e := 0; e < 3; e++ {
		must(t, api.Trigger("crowd", "tick", fmt.Sprint(e)))
	}
	ch, err := api.Channel("crowd", chParams("subscription_count"))
	must(t, err)
	if ch.SubscriptionCount != n {
		t.Fatalf("subscription_count = %d, want %d", ch.SubscriptionCount, n)
	}
	for _, c := range clients {
		for e := 0; e < 3; e++ {
			c.expectAppEvent("crowd", "tick", fmt.Sprint(e))
		}
	}
}
