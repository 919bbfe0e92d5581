package cluster_test

// Tests for README claims about the cluster's edges: what a dead node
// leaves in Redis, what an overflowing state queue loses, how a foreign
// subscriber of the control channel slows queries, and the cache-TTL
// deviation.

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/cluster"
)

// TestDeadNodeFieldsDroppedBySync: a node that died without a goodbye
// leaves its presence fields in Redis. The next sync of the channel by
// any node deletes them once the dead node's alive key is gone; a node
// whose alive key still exists is listed, and dropped with member_removed
// when no heartbeat of it arrives (3 s).
func TestDeadNodeFieldsDroppedBySync(t *testing.T) {
	r, nodes := startCluster(t, 1)
	a := nodes[0]
	const room = "presence-ghosts"
	rc := r.client(t)
	ctx := context.Background()
	key := presenceKey(room)
	// Z died long ago (no alive key); Y's alive key has not expired yet.
	rc.HSet(ctx, key, "Z\n", "", "Z\nzed", `"zed",null`, "Y\n", "", "Y\nyan", `"yan",{"name":"Yan"}`)
	rc.Set(ctx, aliveKey("Y"), "1", time.Minute)

	a1 := a.connect("a1")
	if got := a1.joinPresence(a.api, room, "ann", nil); !slices.Equal(got, []string{"ann", "yan"}) {
		t.Fatalf("member list %v, want ann and yan (zed's node is dead)", got)
	}
	fields := rc.HGetAll(ctx, key).Val()
	if _, ok := fields["Z\nzed"]; ok {
		t.Fatalf("the dead node's member is still in Redis: %v", fields)
	}
	if _, ok := fields["Z\n"]; ok {
		t.Fatalf("the dead node's marker is still in Redis: %v", fields)
	}
	if fields["A\nann"] == "" || fields["Y\nyan"] == "" {
		t.Fatalf("live fields missing: %v", fields)
	}
	// Y never sends a heartbeat: its member goes within the 3 s expiry
	// (plus the one-second check).
	a1.expectMemberWithin("member_removed", room, "yan", 3*time.Second+2*time.Second)
	if got := a.users(room); !slices.Equal(got, []string{"ann"}) {
		t.Fatalf("users after Y expired = %v", got)
	}
}

// TestStateQueueOverflowResyncs: while Redis holds this node's writes,
// more presence changes arrive than the state queue holds. The surplus is
// dropped and counted, and once Redis answers again every presence channel
// is synced, so a member whose change was dropped still reaches the other
// nodes.
func TestStateQueueOverflowResyncs(t *testing.T) {
	// A long command timeout: the stalled batch must wait out the pause,
	// not fail (a failed batch triggers a resync by itself). A small state
	// queue, so that overflowing it takes a few milliseconds however busy
	// the machine is (65,536 changes under the race detector on a loaded
	// box could outlast the pause).
	const room = "presence-overflow"
	const queue = 512
	r, a, b, _, b1 := presencePair(t, room, func(c *cluster.Config) {
		c.Timeout = 30 * time.Second
		c.StateQueueSize = queue
	})
	if got := a.b.Metrics().StateQueueCapacity; got != queue {
		t.Fatalf("state queue capacity %d, want %d", got, queue)
	}
	a2 := a.connect("a2")

	// CLIENT PAUSE WRITE holds every EVAL and PUBLISH for 1.5 s; the
	// heartbeats are held too, but for less than the 3 s expiry.
	paused := time.Now()
	r.eachNode(func(c *redis.Client) {
		if err := c.Do(context.Background(), "CLIENT", "PAUSE", "1500", "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
	})
	// Changes go in until one is dropped. The state goroutine may take its
	// batch (up to maxBatch) out of the queue only after that, which would
	// leave room for cy: so fill again until the queue has stayed full for
	// 50 ms with a batch taken, which the goroutine then holds, stalled on
	// the paused Redis, until the pause ends.
	sent, dropped0 := 0, a.b.Stats().Dropped
	for {
		for d := a.b.Stats().Dropped; a.b.Stats().Dropped == d; sent++ {
			if sent > 4*queue {
				t.Fatalf("%d changes against a stalled Redis dropped nothing", sent)
			}
			u := "flood-" + strconv.Itoa(sent)
			a.b.Presence(appID, "presence-flood", u, []byte(jsonString(u)), nil, true)
		}
		time.Sleep(50 * time.Millisecond)
		queued := sent - int(a.b.Stats().Dropped-dropped0)
		if n := a.b.Metrics().StateQueueLength; n == queue && queued > n {
			break
		}
		if time.Since(paused) > time.Second {
			t.Fatal("the state queue did not stay full")
		}
	}
	dropped := a.b.Stats().Dropped
	if got := a2.joinPresence(a.api, room, "cy", nil); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("cy on A sees %v", got)
	}
	if a.b.Stats().Dropped == dropped {
		t.Fatal("cy's change was queued, not dropped: the queue was not full")
	}
	d := time.Since(paused)
	t.Logf("flood and join took %v of the 1.5 s pause", d)
	if d > 1200*time.Millisecond {
		t.Fatalf("flooding and joining took %v, past the Redis pause; the test proves nothing", d)
	}

	// The flood drains (a queue's worth of scripts), then the resync
	// announces cy.
	b1.expectMemberWithin("member_added", room, "cy", 15*time.Second)
	b1.expectQuiet()
	if got := b.users(room); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("users on B = %v", got)
	}
}

// TestForeignControlSubscriberSlowsQueries: channel queries wait for as
// many answers as the control channel has subscribers, so a subscriber
// that is not a node makes them wait the full second, and they still
// answer with every node's channels.
func TestForeignControlSubscriberSlowsQueries(t *testing.T) {
	r, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a.connect("a1").subscribe("news")
	b.connect("b1").subscribe("sports")
	waitNumSub(t, r, redisChannel("sports"), 1)

	query := func() time.Duration {
		t.Helper()
		start := time.Now()
		names := a.channelNames()
		took := time.Since(start)
		if !slices.Equal(names, []string{"news", "sports"}) {
			t.Fatalf("channels on A = %v", names)
		}
		return took
	}
	if d := query(); d > 500*time.Millisecond {
		t.Fatalf("query with two nodes took %v", d)
	}

	ps := r.subscribe(t, controlChannel())
	waitNumSub(t, r, controlChannel(), 3)
	if d := query(); d < 900*time.Millisecond || d > 2500*time.Millisecond {
		t.Fatalf("query with a foreign subscriber took %v, want about the 1 s wait", d)
	}
	_ = ps.Close()
	waitNumSub(t, r, controlChannel(), 2)
	if d := query(); d > 500*time.Millisecond {
		t.Fatalf("query after the foreign subscriber left took %v", d)
	}
}

// TestCacheTTLAcrossNodes: the Redis copy of a cache event expires with
// the app's cache TTL even while another node still has subscribers, so a
// node joining later gets cache_miss there (README deviation), while the
// publishing node, still occupied, replays it.
func TestCacheTTLAcrossNodes(t *testing.T) {
	r := startRedis(t)
	app := testApp()
	app.CacheTTL = time.Second
	a := startNodeApp(t, r, "A", app)
	b := startNodeApp(t, r, "B", app)
	waitNumSub(t, r, controlChannel(), 2)
	const ch = "cache-ticker"
	a1 := a.connect("a1")
	a1.subscribe(ch)
	a1.expect("pusher:cache_miss", ch)
	a.trigger(ch, "tick", "1")
	a1.expectData("tick", ch, "1")

	b1 := b.connect("b1")
	b1.subscribe(ch)
	b1.expectData("tick", ch, "1")

	time.Sleep(app.CacheTTL + 500*time.Millisecond)
	b2 := b.connect("b2")
	b2.subscribe(ch) // B is occupied too: its own copy replays
	b2.expectData("tick", ch, "1")
	a2 := a.connect("a2")
	a2.subscribe(ch)
	a2.expectData("tick", ch, "1")

	c := startNodeApp(t, r, "C", app)
	waitNumSub(t, r, controlChannel(), 3)
	c1 := c.connect("c1")
	c1.subscribe(ch)
	c1.expect("pusher:cache_miss", ch)
}
