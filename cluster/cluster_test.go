package cluster_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/cluster"
)

// waitStats polls n's counters until ok holds.
func waitStats(t *testing.T, n *node, what string, ok func(cluster.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		s := n.b.Stats()
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %s not reached; stats %+v", n.name, what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTriggerReachesEveryNodeExactlyOnce(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a1, a2, b1, c1 := a.connect("a1"), a.connect("a2"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{a1, a2, b1, c1} {
		cl.subscribe("news")
	}
	waitNumSub(t, r, redisChannel("news"), 3)

	a.trigger("news", "greeting", `{"n":1}`)
	for _, cl := range []*wsClient{a1, a2, b1, c1} {
		cl.expectData("greeting", "news", `{"n":1}`)
	}
	// A's echo comes back from Redis and is skipped; B and C deliver once.
	waitStats(t, a, "own echo skipped", func(s cluster.Stats) bool { return s.Own == 1 })
	waitStats(t, b, "one message received", func(s cluster.Stats) bool { return s.Received == 1 })
	waitStats(t, c, "one message received", func(s cluster.Stats) bool { return s.Received == 1 })
	for _, cl := range []*wsClient{a1, a2, b1, c1} {
		cl.expectQuiet()
	}
	if s := a.b.Stats(); s.Published != 1 || s.Received != 0 || s.Dropped != 0 {
		t.Errorf("node A stats %+v, want 1 published, nothing received or dropped", s)
	}

	// A trigger on another node reaches A as well.
	c.trigger("news", "greeting", `{"n":2}`)
	for _, cl := range []*wsClient{a1, a2, b1, c1} {
		cl.expectData("greeting", "news", `{"n":2}`)
	}
}

func TestSocketIDExclusionAcrossNodes(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a1, b1, c1 := a.connect("a1"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{a1, b1, c1} {
		cl.subscribe("news")
	}
	waitNumSub(t, r, redisChannel("news"), 3)

	// Exclude a socket on another node (B) from a trigger on A.
	id := b1.socketID
	if _, err := a.api.TriggerWithParams("news", "e", "remote-excluded", pusherapi.TriggerParams{SocketID: &id}); err != nil {
		t.Fatal(err)
	}
	a1.expectData("e", "news", "remote-excluded")
	c1.expectData("e", "news", "remote-excluded")
	b1.expectQuiet()

	// And a socket on the triggering node itself.
	id = a1.socketID
	if _, err := a.api.TriggerWithParams("news", "e", "local-excluded", pusherapi.TriggerParams{SocketID: &id}); err != nil {
		t.Fatal(err)
	}
	b1.expectData("e", "news", "local-excluded")
	c1.expectData("e", "news", "local-excluded")
	a1.expectQuiet()
}

func TestClientEventsAcrossNodesNeverEchoed(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const ch = "private-chat.1"
	sender, a2, b1, c1 := a.connect("sender"), a.connect("a2"), b.connect("b1"), c.connect("c1")
	for _, cl := range []*wsClient{sender, a2, b1, c1} {
		cl.subscribePrivate(a.api, ch)
	}
	waitNumSub(t, r, redisChannel(ch), 3)

	sender.send(`{"event":"client-typing","channel":"private-chat.1","data":{"name":"Ann"}}`)
	for _, cl := range []*wsClient{a2, b1, c1} {
		m := cl.expect("client-typing", ch)
		if string(m.Data) != `{"name":"Ann"}` {
			t.Errorf("%s: data %s", cl.name, m.Data)
		}
	}
	sender.expectQuiet()
	// A whisper from B travels the other way and skips its sender too.
	b1.send(`{"event":"client-typing","channel":"private-chat.1","data":{"name":"Bob"}}`)
	for _, cl := range []*wsClient{sender, a2, c1} {
		cl.expect("client-typing", ch)
	}
	b1.expectQuiet()
}

func TestSendToUserAcrossNodes(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	onB, onC, other := b.connect("u1-b"), c.connect("u1-c"), a.connect("u2-a")
	onB.signin(b.api, "u1")
	onC.signin(c.api, "u1")
	other.signin(a.api, "u2")
	waitNumSub(t, r, redisChannel("#server-to-user-u1"), 2)

	if err := a.api.SendToUser("u1", "notice", "for-u1"); err != nil {
		t.Fatal(err)
	}
	onB.expectData("notice", "#server-to-user-u1", "for-u1")
	onC.expectData("notice", "#server-to-user-u1", "for-u1")
	other.expectQuiet()
}

func TestTerminateConnectionsAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	onA, onB, bystander := a.connect("u9-a"), b.connect("u9-b"), c.connect("u8-c")
	onA.signin(a.api, "u9")
	onB.signin(b.api, "u9")
	bystander.signin(c.api, "u8")

	a.terminate("u9")
	onA.expectClose(4009)
	onB.expectClose(4009)
	bystander.expectQuiet()
	if bystander.closed() {
		t.Fatal("another user's socket was closed")
	}
	waitStats(t, b, "terminate received", func(s cluster.Stats) bool { return s.Received == 1 })
}

func TestPerChannelOrderFromOnePublisher(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	b1, c1 := b.connect("b1"), c.connect("c1")
	b1.subscribe("ordered")
	c1.subscribe("ordered")
	waitNumSub(t, r, redisChannel("ordered"), 2)

	const n = 100
	for i := range n {
		a.trigger("ordered", "seq", strconv.Itoa(i))
	}
	for _, cl := range []*wsClient{b1, c1} {
		for i := range n {
			cl.expectData("seq", "ordered", strconv.Itoa(i))
		}
	}

	// Whispers written back to back arrive in batches at the publisher and
	// are pipelined; order must survive that too.
	const ch = "private-ordered"
	sender := a.connect("sender")
	sender.subscribePrivate(a.api, ch)
	b1.subscribePrivate(b.api, ch)
	waitNumSub(t, r, redisChannel(ch), 2)
	for i := range n {
		sender.send(`{"event":"client-seq","channel":"` + ch + `","data":{"i":` + strconv.Itoa(i) + `}}`)
	}
	for i := range n {
		m := b1.expect("client-seq", ch)
		if want := `{"i":` + strconv.Itoa(i) + `}`; string(m.Data) != want {
			t.Fatalf("whisper %d: got %s, want %s", i, m.Data, want)
		}
	}
}

// clientSubs maps each node's pub/sub connection (named by the broker in
// CLIENT LIST) to its number of subscribed Redis channels.
func clientSubs(t *testing.T, r *redisServer) map[string]int {
	t.Helper()
	var list string
	r.eachNode(func(c *redis.Client) {
		l, err := c.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		list += l
	})
	subs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var name string
		var sub, ssub int
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "name":
				name = v
			case "sub":
				sub, _ = strconv.Atoi(v)
			case "ssub":
				ssub, _ = strconv.Atoi(v)
			}
		}
		if strings.HasSuffix(name, "-sub") {
			// In cluster mode a node has one connection per shard.
			subs[name] += sub + ssub
		}
	}
	return subs
}

func TestNodeSubscribesOnlyItsChannels(t *testing.T) {
	r, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a1, b1 := a.connect("a1"), b.connect("b1")
	a1.subscribe("alpha")
	b1.subscribe("beta")
	waitNumSub(t, r, redisChannel("alpha"), 1)
	waitNumSub(t, r, redisChannel("beta"), 1)

	chans := r.channels("*")
	slices.Sort(chans)
	// The control channel, each node's reply channel, and only the Pusher
	// channels some node has subscribers of.
	want := []string{controlChannel(), redisChannel("alpha"), redisChannel("beta"), replyChannel("A"), replyChannel("B"), replyChannel("C")}
	slices.Sort(want)
	if !slices.Equal(chans, want) {
		t.Fatalf("PUBSUB CHANNELS = %q, want %q", chans, want)
	}
	subs := clientSubs(t, r)
	if subs["reverb-A-sub"] != 3 || subs["reverb-B-sub"] != 3 || subs["reverb-C-sub"] != 2 {
		t.Fatalf("subscriptions per node = %v, want A and B 3 (control, reply, own channel), C 2", subs)
	}

	c.trigger("alpha", "e", "to-a")
	c.trigger("beta", "e", "to-b")
	a.trigger("gamma", "e", "nobody")
	a1.expectData("e", "alpha", "to-a")
	b1.expectData("e", "beta", "to-b")
	a1.expectQuiet()
	b1.expectQuiet()
	// C has no subscribers: Redis never sent it a message.
	if s := c.b.Stats(); s.Received != 0 || s.Own != 0 || s.Ignored != 0 {
		t.Fatalf("node C got traffic: %+v", s)
	}

	// The last local subscriber leaving releases the Redis channel.
	b1.send(`{"event":"pusher:unsubscribe","data":{"channel":"beta"}}`)
	waitNumSub(t, r, redisChannel("beta"), 0)
	if subs := clientSubs(t, r); subs["reverb-B-sub"] != 2 {
		t.Fatalf("B still subscribed to %d channels after unsubscribing", subs["reverb-B-sub"])
	}
}

func TestForeignMessagesIgnoredAndCounted(t *testing.T) {
	r, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a1 := a.connect("a1")
	a1.subscribe("news")
	waitNumSub(t, r, redisChannel("news"), 1)

	foreign := []string{
		"garbage",
		`[1,2,3]`,
		// What a PHP Reverb node sends on the same channel (§11.1).
		`{"type":"message","application":"O:26:\"Laravel\\Reverb\\Application\":11:{s:5:\"\u0000*\u0000id\";s:4:\"1001\";}","payload":{"event":"x","channels":["news"],"data":"{}"},"socket_id":"1234.5678"}`,
		`{"type":"terminate","application":"O:26:\"x\"","payload":{"user_id":"1"}}`,
		`{"v":2,"type":"message","node":"Z","app":"1001","channel":"news","payload":{}}`,
		`{"v":"1","type":"restart","node":"Z"}`,
		`{"v":1,"type":"metrics","node":"Z"}`,
		`{"v":1,"type":"message","node":"Z","app":"1001","channel":"news"}`,
		`{"v":1,"type":"message","node":"Z","app":"1001","channel":"news","payload":"not an object"}`,
		`{"v":1,"type":"message","node":"Z","app":"no-such-app","channel":"news","payload":{"event":"x","channel":"news","data":"{}"}}`,
	}
	for _, m := range foreign {
		r.publish(t, controlChannel(), m)
	}
	for _, n := range nodes {
		waitStats(t, n, "every foreign message ignored", func(s cluster.Stats) bool { return s.Ignored == uint64(len(foreign)) })
	}
	a1.expectQuiet()

	// A well-formed envelope from any sender is delivered as documented.
	env := `{"v":1,"type":"message","node":"outsider","app":"1001","channel":"news","payload":{"event":"hand-made","channel":"news","data":"{\"ok\":true}"}}`
	r.publish(t, redisChannel("news"), env)
	a1.expectData("hand-made", "news", `{"ok":true}`)

	// The nodes still work together.
	b.trigger("news", "after", "fine")
	a1.expectData("after", "news", "fine")
	for _, n := range nodes {
		if s := n.b.Stats(); s.Ignored != uint64(len(foreign)) {
			t.Errorf("node %s ignored %d, want %d", n.name, s.Ignored, len(foreign))
		}
	}
}

func TestEnvelopeCarriesNoSecret(t *testing.T) {
	r, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	b1 := b.connect("b1")
	b1.subscribe("news")
	waitNumSub(t, r, redisChannel("news"), 1)

	// Listen like a third node would and look at the raw bytes.
	ps := r.subscribe(t, redisChannel("news"))
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctl := r.subscribe(t, controlChannel())
	defer ctl.Close()
	if _, err := ctl.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.trigger("news", "e", "payload")
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	m, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Payload, appSecret) {
		t.Fatalf("envelope contains the app secret: %s", m.Payload)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &env); err != nil {
		t.Fatalf("envelope is not JSON: %s", m.Payload)
	}
	if env["v"] != 1.0 || env["type"] != "message" || env["node"] != "A" || env["app"] != appID || env["channel"] != "news" {
		t.Fatalf("envelope %s", m.Payload)
	}
	b1.expectData("e", "news", "payload")
}

func TestRestartCommandReachesEveryNode(t *testing.T) {
	r, nodes := startCluster(t, 3)
	fired := make(chan string, 10)
	var calls atomic.Int32
	for _, n := range nodes {
		n.b.OnRestart(func() {
			calls.Add(1)
			fired <- n.name
		})
	}
	start := time.Now()
	cfg := r.config()
	if err := cluster.PublishRestart(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range nodes {
		select {
		case name := <-fired:
			got = append(got, name)
		case <-time.After(time.Second):
			t.Fatalf("restart reached only %v within 1 s", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Fatalf("restart fired on %v", got)
	}
	t.Logf("restart reached 3 nodes in %v", time.Since(start))

	// A second command does not restart a node twice.
	if err := cluster.PublishRestart(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	waitStats(t, nodes[0], "second restart received", func(s cluster.Stats) bool { return s.Received == 2 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("restart callback ran %d times, want 3", n)
	}
}

func TestPublishRestartWithoutRedisFails(t *testing.T) {
	cfg := cluster.Config{Addr: freeAddr(t), Timeout: 300 * time.Millisecond}
	start := time.Now()
	if err := cluster.PublishRestart(context.Background(), cfg); err == nil {
		t.Fatal("PublishRestart succeeded with no Redis listening")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("PublishRestart took %v with a 300 ms timeout", d)
	}
}

func TestChannelsSharingARedisNameAreCounted(t *testing.T) {
	r, nodes := startCluster(t, 1)
	b := nodes[0].b
	// '#' may occur in app ids and channel names: both map to one Redis
	// channel, which must stay subscribed while either needs it.
	shared := prefix + "#" + tag("a#b#c")
	b.Interest("a", "b#c", true)
	b.Interest("a#b", "c", true)
	waitNumSub(t, r, shared, 1)
	b.Interest("a", "b#c", false)
	b.Interest("x", "y", true) // a later change proves the previous one was applied
	waitNumSub(t, r, prefix+"#"+tag("x#y"), 1)
	waitNumSub(t, r, shared, 1)
	b.Interest("a#b", "c", false)
	waitNumSub(t, r, shared, 0)
	// A flap that ends where it started costs nothing.
	b.Interest("x", "y", false)
	b.Interest("x", "y", true)
	b.Interest("z", "z", true)
	waitNumSub(t, r, prefix+"#"+tag("z#z"), 1)
	waitNumSub(t, r, prefix+"#"+tag("x#y"), 1)
}
