package cluster_test

// Failures particular to Redis Cluster and Sentinel, with real servers the
// tests start themselves, and Redis liveness (a frozen Redis noticed within
// about 5 s whatever REDIS_TIMEOUT says). Each runs in one pass of
// TestMain (onlyCluster, onlyPlain) and starts the Redis it needs.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/cluster"
)

// onlyCluster runs a test in the Redis Cluster pass of TestMain only (it
// starts a cluster of its own shape), onlyPlain in the first pass only.
func onlyCluster(t *testing.T) {
	t.Helper()
	if !clusterMode() {
		t.Skip("runs in the Redis Cluster pass (REVERB_TEST_REDIS=cluster)")
	}
}

func onlyPlain(t *testing.T) {
	t.Helper()
	if clusterMode() {
		t.Skip("starts its own Redis; runs in the first pass")
	}
}

// startNodesOn starts count nodes bridged by r (whatever its mode).
func startNodesOn(t *testing.T, r *redisServer, count int, opts ...nodeOpt) []*node {
	t.Helper()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = startNode(t, r, string(rune('A'+i)), opts...)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.shutdown)
		}
		wg.Wait()
	})
	return nodes
}

// ticker triggers "tick" on channel through n's API every 50 ms until the
// test ends.
func ticker(t *testing.T, n *node, channel string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	api := *n.api // the SDK client is not safe for concurrent use
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			_ = api.Trigger(channel, "tick", strconv.Itoa(i))
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// spread returns channel names whose Redis channels fall on every master
// of r's cluster (at least one each), so a test touches every shard.
func spread(t *testing.T, r *redisServer, count int) []string {
	t.Helper()
	c := r.client(t).(*redis.ClusterClient)
	ctx := context.Background()
	var out []string
	seen := map[string]bool{}
	for i := 0; len(out) < count || len(seen) < 3; i++ {
		ch := "room-" + strconv.Itoa(i)
		m, err := c.MasterForKey(ctx, redisChannel(ch))
		if err != nil {
			t.Fatal(err)
		}
		if !seen[m.Options().Addr] || len(out) < count {
			seen[m.Options().Addr] = true
			out = append(out, ch)
		}
	}
	return out
}

// shardOf returns the cluster process serving the slot of a Redis name.
func (r *redisServer) shardOf(t *testing.T, name string) *redisServer {
	t.Helper()
	m, err := r.client(t).(*redis.ClusterClient).MasterForKey(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range r.shards {
		if sh.addr == m.Options().Addr {
			return sh
		}
	}
	t.Fatalf("no process serves %s (%s)", name, m.Options().Addr)
	return nil
}

// crossNodeEverywhere triggers on from and waits until every (client,
// channel) pair has received an "after" event, local delivery checked on
// each round; it returns how long that took.
func crossNodeEverywhere(t *testing.T, from *node, local *wsClient, localCh string, subs map[*wsClient][]string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	type pair struct {
		cl *wsClient
		ch string
	}
	got := map[pair]bool{}
	want := 0
	for _, chs := range subs {
		want += len(chs)
	}
	for k := 0; len(got) < want; k++ {
		if time.Since(start) > within {
			var missing []string
			for cl, chs := range subs {
				for _, ch := range chs {
					if !got[pair{cl, ch}] {
						missing = append(missing, cl.name+":"+ch)
					}
				}
			}
			t.Fatalf("cross-node delivery did not resume within %v (%d of %d client channels; missing %v)", within, len(got), want, missing)
		}
		from.trigger(localCh, "after", strconv.Itoa(k))
		if !sawEvent(local, "after", ioTimeout) {
			t.Fatal("local delivery stopped")
		}
		for cl, chs := range subs {
			for _, ch := range chs {
				if !got[pair{cl, ch}] {
					from.trigger(ch, "after", strconv.Itoa(k))
				}
			}
			deadline := time.Now().Add(200 * time.Millisecond)
			for time.Now().Before(deadline) {
				m, ok := cl.next(time.Until(deadline))
				if !ok {
					break
				}
				if m.Event == "after" {
					got[pair{cl, m.Channel}] = true
				}
			}
		}
	}
	return time.Since(start)
}

// TestClusterShardKilledAndRestartedEmpty: under traffic, one master of a
// 3-master Redis Cluster is SIGKILLed and started again with no data (same
// cluster configuration). Local delivery never stops; every node
// resubscribes on that shard, cross-node delivery resumes on every channel,
// and the presence fields the shard lost are written back.
func TestClusterShardKilledAndRestartedEmpty(t *testing.T) {
	onlyCluster(t)
	r := startRedisCluster(t, 3, 0)
	nodes := startNodesOn(t, r, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	chans := spread(t, r, 6)
	const room = "presence-shard"
	subs := map[*wsClient][]string{}
	a1 := a.connect("a1")
	a1.subscribe("local")
	for _, n := range []*node{b, c} {
		cl := n.connect(n.name + "1")
		for _, ch := range chans {
			cl.subscribe(ch)
		}
		subs[cl] = chans
	}
	for _, ch := range chans {
		waitNumSub(t, r, redisChannel(ch), 2)
	}
	pa, pb := a.connect("pa"), b.connect("pb")
	pa.joinPresence(a.api, room, "ann", nil)
	pb.joinPresence(b.api, room, "bob", nil)
	pa.expectMember("member_added", room, "bob")
	flow := c.connect("flow")
	flow.subscribe("flow")
	waitNumSub(t, r, redisChannel("flow"), 1)
	ticker(t, a, "flow")
	if !sawEvent(flow, "tick", ioTimeout) {
		t.Fatal("background traffic does not flow")
	}

	victim := r.shardOf(t, presenceKey(room))
	victim.sigkill()
	killed := time.Now()
	time.Sleep(500 * time.Millisecond)
	victim.start() // empty: no persistence; nodes.conf keeps its slots
	r.waitClusterOK()
	for cl := range subs {
		drain(cl)
	}
	took := crossNodeEverywhere(t, a, a1, "local", subs, 15*time.Second)
	t.Logf("cross-node delivery on %d channels resumed %v after the shard restart (%v after SIGKILL)", len(chans), took, time.Since(killed))
	// What queued up so far may be old; a tick sent from now on proves
	// the background traffic flows again.
	for {
		if _, ok := flow.next(time.Millisecond); !ok {
			break
		}
	}
	if !sawEvent(flow, "tick", ioTimeout) {
		t.Fatal("background traffic did not resume")
	}

	rc := r.client(t)
	deadline := time.Now().Add(ioTimeout)
	for !rc.HExists(context.Background(), presenceKey(room), "A\nann").Val() || !rc.HExists(context.Background(), presenceKey(room), "B\nbob").Val() {
		if time.Now().After(deadline) {
			t.Fatalf("presence not written back to the restarted shard: %v", rc.HGetAll(context.Background(), presenceKey(room)).Val())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitHeartbeat(t, a, b, c)
	pc := c.connect("pc")
	got := pc.joinPresence(c.api, room, "cid", nil)
	if strings.Join(got, ",") != "ann,bob,cid" {
		t.Fatalf("member list on C after the shard restart = %v", got)
	}
}

// TestClusterFailoverUnderTraffic: 3 masters with a replica each; the
// master serving a busy channel is SIGKILLed; its replica takes over
// (cluster-node-timeout 1 s). Local delivery never stops and cross-node
// delivery resumes on the promoted replica within 15 s.
func TestClusterFailoverUnderTraffic(t *testing.T) {
	onlyCluster(t)
	r := startRedisCluster(t, 3, 1)
	nodes := startNodesOn(t, r, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room = "presence-failover"
	a1, b1, c1 := a.connect("a1"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.subscribe("news")
	}
	waitNumSub(t, r, redisChannel("news"), 3)
	pa, pb := a.connect("pa"), b.connect("pb")
	pa.joinPresence(a.api, room, "ann", nil)
	pb.joinPresence(b.api, room, "bob", nil)
	pa.expectMember("member_added", room, "bob")
	ticker(t, a, "news")

	victim := r.shardOf(t, redisChannel("news"))
	victim.sigkill()
	killed := time.Now()
	took := crossNodeEverywhere(t, a, a1, "news", map[*wsClient][]string{b1: {"news"}, c1: {"news"}}, 15*time.Second)
	t.Logf("cross-node delivery resumed %v after the master was SIGKILLed", took)
	_ = killed

	// The promoted replica serves the slot; presence there is complete.
	waitHeartbeat(t, a, b, c)
	pc := c.connect("pc")
	got := pc.joinPresence(c.api, room, "cid", nil)
	if strings.Join(got, ",") != "ann,bob,cid" {
		t.Fatalf("member list on C after the failover = %v", got)
	}
}

// TestClusterSlotMigration moves the slot of a busy channel to another
// master (CLUSTER SETSLOT … MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE), as
// resharding does. Redis drops the shard channel's subscribers on the old
// master; every node must follow the slot and keep delivering.
func TestClusterSlotMigration(t *testing.T) {
	onlyCluster(t)
	r := startRedisCluster(t, 3, 0)
	nodes := startNodesOn(t, r, 2)
	a, b := nodes[0], nodes[1]
	const room = "presence-moving"
	pa, pb := a.connect("pa"), b.connect("pb")
	pa.joinPresence(a.api, room, "ann", nil)
	pb.joinPresence(b.api, room, "bob", nil)
	pa.expectMember("member_added", room, "bob")
	waitNumSub(t, r, redisChannel(room), 2)

	// Move the slot of the presence channel (and its hash).
	name := presenceKey(room)
	src := r.shardOf(t, name)
	var dst *redisServer
	for _, sh := range r.shards {
		if sh != src {
			dst = sh
			break
		}
	}
	ctx := context.Background()
	sc := redis.NewClient(&redis.Options{Addr: src.addr, DisableIdentity: true})
	defer sc.Close()
	dc := redis.NewClient(&redis.Options{Addr: dst.addr, DisableIdentity: true})
	defer dc.Close()
	slot, err := sc.ClusterKeySlot(ctx, name).Result()
	if err != nil {
		t.Fatal(err)
	}
	srcID, dstID := sc.Do(ctx, "CLUSTER", "MYID").Val().(string), dc.Do(ctx, "CLUSTER", "MYID").Val().(string)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	keys := sc.ClusterGetKeysInSlot(ctx, int(slot), 100).Val()
	if len(keys) == 0 {
		t.Fatalf("slot %d holds no key; want the presence hash", slot)
	}
	host, port, _ := strings.Cut(dst.addr, ":")
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	must(sc.Do(ctx, args...).Err())
	r.eachNode(func(c *redis.Client) {
		must(c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	})
	moved := time.Now()

	// Both nodes follow: the channel is subscribed on the new master.
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := redis.NewClient(&redis.Options{Addr: dst.addr, DisableIdentity: true})
		got := n.PubSubShardNumSub(ctx, redisChannel(room)).Val()
		n.Close()
		if got[redisChannel(room)] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions on the new master after the move: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("nodes resubscribed on the new master %v after the slot moved", time.Since(moved))
	a.trigger(room, "e", "after-move")
	pb.expectData("e", room, "after-move")
	pc := a.connect("pc")
	if got := pc.joinPresence(a.api, room, "cid", nil); strings.Join(got, ",") != "ann,bob,cid" {
		t.Fatalf("member list after the move = %v", got)
	}
	pb.expectMember("member_added", room, "cid")
}

// ---- Sentinel ----

// sentinelSet is a master, a replica and one sentinel watching them.
type sentinelSet struct {
	master, replica *redisServer
	sentinels       []*redisServer
}

const sentinelMaster = "reverbmaster"

func startSentinels(t *testing.T) *sentinelSet {
	t.Helper()
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		t.Fatal("redis-sentinel is not in PATH (apt-get install -y redis-sentinel, or scripts/test-deps.sh as root)")
	}
	s := &sentinelSet{master: startRedisProc(t)}
	s.replica = startRedisProc(t, "--replicaof", "127.0.0.1", portOf(s.master.addr))
	dir := t.TempDir()
	for i := range 2 {
		addr := freeAddr(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		body := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %s 1\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			portOf(addr), dir, sentinelMaster, portOf(s.master.addr), sentinelMaster, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		sn := &redisServer{t: t, path: "redis-sentinel", addr: addr, sentinelConf: conf}
		sn.start()
		t.Cleanup(sn.kill)
		s.sentinels = append(s.sentinels, sn)
	}
	// Wait until the replica has synced and the sentinels see it.
	rc := redis.NewClient(&redis.Options{Addr: s.replica.addr, DisableIdentity: true})
	defer rc.Close()
	deadline := time.Now().Add(3 * ioTimeout)
	for !strings.Contains(rc.Info(context.Background(), "replication").Val(), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatal("replica did not sync")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].addr, DisableIdentity: true})
	defer sc.Close()
	for len(sc.Replicas(context.Background(), sentinelMaster).Val()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sentinel did not discover the replica")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func portOf(addr string) string {
	_, port, _ := strings.Cut(addr, ":")
	return port
}

// TestSentinelFailoverUnderTraffic: three nodes find the master through
// two sentinels; the master is SIGKILLed under traffic; the sentinels
// promote the replica; every node follows it, resubscribes and writes its
// presence back. Cross-node delivery resumes within 15 s and local
// delivery never stops.
func TestSentinelFailoverUnderTraffic(t *testing.T) {
	onlyPlain(t)
	s := startSentinels(t)
	sentinels := []string{s.sentinels[0].addr, s.sentinels[1].addr}
	viaSentinel := func(c *cluster.Config) {
		c.Addr = ""
		c.SentinelNodes = sentinels
		c.SentinelMaster = sentinelMaster
	}
	nodes := startNodesOn(t, s.master, 3, viaSentinel)
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitNumSub(t, s.master, controlChannel(), 3)
	const room = "presence-sentinel"
	a1, b1, c1 := a.connect("a1"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.subscribe("news")
	}
	waitNumSub(t, s.master, redisChannel("news"), 3)
	pa, pb := a.connect("pa"), b.connect("pb")
	pa.joinPresence(a.api, room, "ann", nil)
	pb.joinPresence(b.api, room, "bob", nil)
	pa.expectMember("member_added", room, "bob")
	ticker(t, a, "news")

	s.master.sigkill()
	took := waitResumed(t, a, a1, b1, c1)
	t.Logf("cross-node delivery resumed %v after the master was SIGKILLed", took)
	waitNumSub(t, s.replica, redisChannel("news"), 3)

	// The promoted replica holds every node's members (written back on
	// resubscribe, even if the last writes did not replicate).
	rc := redis.NewClient(&redis.Options{Addr: s.replica.addr, DisableIdentity: true})
	defer rc.Close()
	deadline := time.Now().Add(ioTimeout)
	for !rc.HExists(context.Background(), presenceKey(room), "A\nann").Val() || !rc.HExists(context.Background(), presenceKey(room), "B\nbob").Val() {
		if time.Now().After(deadline) {
			t.Fatalf("presence not on the new master: %v", rc.HGetAll(context.Background(), presenceKey(room)).Val())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Nodes silent for over 3 s gave each other up; once heartbeats flow
	// again a new member sees everyone.
	waitHeartbeat(t, a, b, c)
	pc := c.connect("pc")
	if got := pc.joinPresence(c.api, room, "cid", nil); strings.Join(got, ",") != "ann,bob,cid" {
		t.Fatalf("member list on C after the failover = %v", got)
	}
}

// ---- liveness ----

// TestFrozenRedisNoticedWithinLiveness: with REDIS_TIMEOUT at Laravel's 60
// s (the connect timeout), a Redis frozen with SIGSTOP is still noticed
// within about 5 s (Liveness 3 s + a 1 s PING), counted in
// hub.Counters.RedisSilent, while local delivery goes on; after SIGCONT
// cross-node delivery resumes.
func TestFrozenRedisNoticedWithinLiveness(t *testing.T) {
	r, nodes := startCluster(t, 2, func(c *cluster.Config) { c.Timeout = 60 * time.Second; c.Liveness = 0 })
	a, b := nodes[0], nodes[1]
	a1, b1 := a.connect("a1"), b.connect("b1")
	a1.subscribe("news")
	b1.subscribe("news")
	waitNumSub(t, r, redisChannel("news"), 2)

	r.signal(syscall.SIGSTOP)
	var resumed atomic.Bool
	t.Cleanup(func() {
		if !resumed.Load() {
			r.signal(syscall.SIGCONT)
		}
	})
	start := time.Now()
	silent := b.srv.Hub().Counters().RedisSilent.Load()
	for b.srv.Hub().Counters().RedisSilent.Load() == silent {
		a.trigger("news", "frozen", "x")
		a1.expectData("frozen", "news", "x") // local delivery goes on
		if time.Since(start) > 8*time.Second {
			t.Fatalf("a frozen Redis went unnoticed for %v", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	noticed := time.Since(start)
	t.Logf("frozen Redis noticed after %v with REDIS_TIMEOUT 60 s", noticed)
	if noticed > 6*time.Second {
		t.Errorf("noticed after %v, want about 5 s", noticed)
	}
	r.signal(syscall.SIGCONT)
	resumed.Store(true)
	drain(b1)
	took := waitResumed(t, a, a1, b1)
	t.Logf("cross-node delivery resumed %v after SIGCONT", took)
}
