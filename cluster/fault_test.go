package cluster_test

import (
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goreverb/reverb/cluster"
)

// sawEvent reads cl's messages for up to d and reports whether one of them
// was event; anything else (late deliveries flushed after an outage) is
// skipped.
func sawEvent(cl *wsClient, event string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		m, ok := cl.next(left)
		if !ok {
			return false
		}
		if m.Event == event {
			return true
		}
	}
}

// drain discards what arrives at cl until it has been quiet for quietFor.
func drain(cl *wsClient) {
	for {
		if _, ok := cl.next(quietFor); !ok {
			return
		}
	}
}

// waitResumed triggers "after" events on from until every client in to has
// received one; it returns how long that took.
func waitResumed(t *testing.T, from *node, local *wsClient, to ...*wsClient) time.Duration {
	t.Helper()
	start := time.Now()
	resumed := map[*wsClient]bool{}
	for k := 0; len(resumed) < len(to); k++ {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("cross-node delivery did not resume within 15 s (%d of %d clients)", len(resumed), len(to))
		}
		from.trigger("news", "after", strconv.Itoa(k))
		if !sawEvent(local, "after", ioTimeout) {
			t.Fatal("local delivery stopped")
		}
		for _, cl := range to {
			if !resumed[cl] && sawEvent(cl, "after", 100*time.Millisecond) {
				resumed[cl] = true
			}
		}
	}
	return time.Since(start)
}

func TestRedisStopAndRestartUnderTraffic(t *testing.T) {
	r, nodes := startCluster(t, 3, func(c *cluster.Config) { c.QueueSize = 8 })
	a, b, c := nodes[0], nodes[1], nodes[2]
	a1, b1, c1 := a.connect("a1"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.subscribe("news")
	}
	flow := a.connect("flow")
	flow.subscribe("flow")
	waitNumSub(t, r, redisChannel("news"), 3)
	waitNumSub(t, r, redisChannel("flow"), 1)
	a.trigger("news", "before", "x")
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.expectData("before", "news", "x")
	}

	// Background traffic from C to A's "flow" subscriber keeps going
	// through the outage.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_ = c.api.Trigger("flow", "tick", strconv.Itoa(i))
		}
	})
	defer func() { close(stop); wg.Wait() }()
	if !sawEvent(flow, "tick", ioTimeout) {
		t.Fatal("background traffic does not flow")
	}

	r.stop()
	publishedBefore := a.b.Stats().Published
	for i := range 20 {
		start := time.Now()
		a.trigger("news", "during", strconv.Itoa(i))
		a1.expectData("during", "news", strconv.Itoa(i))
		if d := time.Since(start); d > time.Second {
			t.Fatalf("local trigger-to-receipt took %v while Redis is down", d)
		}
	}
	b.trigger("news", "during-b", "local")
	b1.expectData("during-b", "news", "local")
	c1.expectQuiet()
	// 21 publishes against a queue of 8: the surplus is dropped and counted.
	waitStats(t, a, "publishes dropped while Redis is down", func(s cluster.Stats) bool { return s.Dropped > 0 })
	if s := a.b.Stats(); s.Published != publishedBefore {
		t.Fatalf("published %d while Redis was down", s.Published-publishedBefore)
	}

	r.start()
	took := waitResumed(t, a, a1, b1, c1)
	t.Logf("cross-node delivery resumed %v after redis-server restarted", took)
	if took > 5*time.Second {
		t.Errorf("resuming took %v, want a few seconds", took)
	}
	if !sawEvent(flow, "tick", ioTimeout) {
		t.Fatal("background traffic did not resume")
	}

	// Exactly once again, in both directions.
	for _, cl := range []*wsClient{a1, b1, c1} {
		drain(cl)
	}
	for i, from := range []*node{a, b} {
		from.trigger("news", "final", strconv.Itoa(i))
		for _, cl := range []*wsClient{a1, b1, c1} {
			cl.expectData("final", "news", strconv.Itoa(i))
		}
	}
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.expectQuiet()
	}

	for _, n := range nodes {
		if got := n.logs.count("pub/sub connection lost"); got != 1 {
			t.Errorf("node %s logged the pub/sub loss %d times, want once", n.name, got)
		}
		if got := n.logs.count("pub/sub connection restored"); got != 1 {
			t.Errorf("node %s logged the pub/sub recovery %d times, want once", n.name, got)
		}
	}
	if got := a.logs.count("publisher connection lost"); got != 1 {
		t.Errorf("node A logged the publisher loss %d times, want once", got)
	}
}

func TestFrozenRedisIsDetectedAndLeft(t *testing.T) {
	r, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a1, b1 := a.connect("a1"), b.connect("b1")
	a1.subscribe("news")
	b1.subscribe("news")
	waitNumSub(t, r, redisChannel("news"), 2)

	// A stopped process keeps its sockets open: nothing fails, it just
	// never answers. The broker must notice through its PINGs.
	r.signal(syscall.SIGSTOP)
	start := time.Now()
	a.trigger("news", "frozen", "1")
	a1.expectData("frozen", "news", "1")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("local delivery took %v while Redis is frozen", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.logs.count("answered no PING") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node B did not notice the silent pub/sub connection")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("silent connection noticed after %v (timeout 1 s)", time.Since(start))
	// Nothing was confirmed by Redis. (A publish written to the frozen
	// socket before the freeze was noticed is counted dropped once its
	// answer is overdue: never resent, as it may still run.)
	if s := a.b.Stats(); s.Published != 0 {
		t.Fatalf("node A stats %+v while Redis is frozen, want nothing published", s)
	}

	r.signal(syscall.SIGCONT)
	took := waitResumed(t, a, a1, b1)
	t.Logf("cross-node delivery resumed %v after SIGCONT", took)
}
