package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/hub/webhook"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// hookReceiver is a Laravel app's webhook endpoint stand-in: it accepts
// only what the official Go SDK's Client.Webhook verifies.
type hookReceiver struct {
	t      testing.TB
	srv    *httptest.Server
	sdk    *pusherapi.Client
	mu     sync.Mutex
	events []timedEvent
	reqs   int
	bad    int
}

type timedEvent struct {
	pusherapi.WebhookEvent
	at time.Time
}

func newHookReceiver(t testing.TB) *hookReceiver {
	r := &hookReceiver{t: t, sdk: &pusherapi.Client{AppID: appID, Key: appKey, Secret: appSecret}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		wh, err := r.sdk.Webhook(req.Header, body)
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.reqs++
		for _, e := range wh.Events {
			r.events = append(r.events, timedEvent{e, now})
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// count returns how many verified events named name (of user, when set)
// arrived.
func (r *hookReceiver) count(name, user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Name == name && (user == "" || e.UserID == user) {
			n++
		}
	}
	return n
}

// list returns "name:user" of every event, in arrival order.
func (r *hookReceiver) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		s := e.Name
		if e.UserID != "" {
			s += ":" + e.UserID
		}
		out = append(out, s)
	}
	return out
}

func (r *hookReceiver) wait(what string, d time.Duration, ok func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			r.t.Fatalf("waited %v for %s; got %v (rejected: %d)", d, what, r.list(), r.bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hookApp is testApp with every webhook event sent to url.
func hookApp(url string) pusher.App {
	a := testApp()
	a.Webhooks = []pusher.Webhook{{URL: url}}
	return a
}

// startHookNode starts a server whose app sends webhooks to url, bridged to
// r (a single node when r is nil).
func startHookNode(t testing.TB, r *redisServer, name, url string, delay time.Duration, opts ...func(*webhook.Options)) *node {
	t.Helper()
	set, err := pusher.NewAppSet([]pusher.App{hookApp(url)})
	if err != nil {
		t.Fatal(err)
	}
	o := webhook.Options{Delay: delay, Batch: 100 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	s := webhook.New(set, o)
	n := &node{t: t, name: name}
	cfg := loop.Config{Addr: freeAddr(t), Apps: set, Loops: 2, Hooks: s}
	if r != nil {
		logs := &logRecorder{t: t}
		ccfg := r.config()
		ccfg.NodeID = name
		b, err := cluster.New(ccfg,
			slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		cfg.Broker, cfg.AsyncAPI, cfg.Hooks = b, true, b.Webhooks(s)
		n.b, n.logs = b, logs
	}
	srv, err := loop.Start(cfg)
	if err != nil {
		t.Fatalf("loop.Start: %v", err)
	}
	n.srv, n.addr = srv, srv.Addr()
	t.Cleanup(n.shutdown)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Close(ctx)
	})
	s.Start(srv.Hub().Counters())
	if n.b != nil {
		n.b.Attach(srv.Hub())
		n.b.Start(context.Background())
	}
	n.api = &pusherapi.Client{AppID: appID, Key: appKey, Secret: appSecret, Host: n.addr}
	return n
}

func startHookCluster(t testing.TB, count int, url string, delay time.Duration) (*redisServer, []*node) {
	t.Helper()
	return startNodes(t, count, func(r *redisServer, name string) *node { return startHookNode(t, r, name, url, delay) })
}

// leave closes the client's socket.
func (c *wsClient) leave() { _ = c.conn.Close() }

// TestWebhooksOneNode: real sockets on one node; occupancy and presence
// reported once per transition, a socket coming back within the delay
// reports nothing, client events carry the sender's socket and user.
func TestWebhooksOneNode(t *testing.T) {
	rec := newHookReceiver(t)
	n := startHookNode(t, nil, "solo", rec.srv.URL, 500*time.Millisecond)
	const room = "presence-room"
	a1, a2, b1 := n.connect("a1"), n.connect("a2"), n.connect("b1")
	a1.joinPresence(n.api, room, "ann", nil)
	a2.joinPresence(n.api, room, "ann", nil)
	b1.joinPresence(n.api, room, "bob", nil)
	rec.wait("occupied and two members", 3*time.Second, func() bool { return len(rec.list()) == 3 })
	b1.send(`{"event":"client-typing","channel":"presence-room","data":{"x":1}}`)
	rec.wait("the client event", 3*time.Second, func() bool { return rec.count("client_event", "bob") == 1 })
	rec.mu.Lock()
	ce := rec.events[3]
	rec.mu.Unlock()
	if ce.Channel != room || ce.Event != "client-typing" || ce.Data != `{"x":1}` || ce.SocketID != b1.socketID {
		t.Fatalf("client_event %+v (sender %s)", ce.WebhookEvent, b1.socketID)
	}

	a1.leave() // ann still has a2
	b1.send(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	b3 := n.connect("b3") // bob back within the delay
	b3.joinPresence(n.api, room, "bob", nil)
	time.Sleep(time.Second)
	if got := rec.list(); len(got) != 4 {
		t.Fatalf("events after a return within the delay: %v", got)
	}
	a2.leave()
	b3.leave()
	rec.wait("ann and bob removed, channel vacated", 3*time.Second, func() bool { return len(rec.list()) == 7 })
	time.Sleep(300 * time.Millisecond)
	got := rec.list()
	slices.Sort(got[4:6])
	want := []string{"channel_occupied", "member_added:ann", "member_added:bob", "client_event:bob",
		"member_removed:ann", "member_removed:bob", "channel_vacated"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestWebhooksOnceAcrossCluster: three nodes with the same app and
// receiver; each transition arrives once, a user moving between nodes
// within the delay is neither removed nor added, client events come from
// the node that received them.
func TestWebhooksOnceAcrossCluster(t *testing.T) {
	rec := newHookReceiver(t)
	_, nodes := startHookCluster(t, 3, rec.srv.URL, 700*time.Millisecond)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room = "presence-room"
	a1, b1, c1 := a.connect("a1"), b.connect("b1"), c.connect("c1")
	a1.joinPresence(a.api, room, "ann", nil)
	b1.joinPresence(b.api, room, "ann", nil)
	c1.joinPresence(c.api, room, "cid", nil)
	rec.wait("occupied and two members", 3*time.Second, func() bool { return len(rec.list()) == 3 })
	c1.send(`{"event":"client-x","channel":"presence-room","data":"hi"}`)
	rec.wait("the client event", 3*time.Second, func() bool { return rec.count("client_event", "") == 1 })

	// ann leaves A (still on B), then moves from B to C within the delay.
	a1.leave()
	b1.leave()
	c2 := c.connect("c2")
	c2.joinPresence(c.api, room, "ann", nil)
	time.Sleep(1500 * time.Millisecond)
	if got := rec.list(); len(got) != 4 {
		t.Fatalf("events after ann moved nodes within the delay: %v", got)
	}
	c1.leave()
	c2.leave()
	rec.wait("both removed and the channel vacated", 5*time.Second, func() bool { return len(rec.list()) == 7 })
	time.Sleep(500 * time.Millisecond)
	for _, e := range []struct{ name, user string }{
		{"channel_occupied", ""}, {"channel_vacated", ""}, {"member_added", "ann"}, {"member_added", "cid"},
		{"member_removed", "ann"}, {"member_removed", "cid"}, {"client_event", "cid"},
	} {
		if n := rec.count(e.name, e.user); n != 1 {
			t.Errorf("%s %s arrived %d times, want once; all: %v", e.name, e.user, n, rec.list())
		}
	}
}

// TestWebhooksDeadNodeMembersRemovedOnce: a node stops without telling
// anyone; the others remove its members once.
func TestWebhooksDeadNodeMembersRemovedOnce(t *testing.T) {
	rec := newHookReceiver(t)
	_, nodes := startHookCluster(t, 3, rec.srv.URL, 300*time.Millisecond)
	a, c := nodes[0], nodes[2]
	const room = "presence-room"
	a1, c1 := a.connect("a1"), c.connect("c1")
	a1.joinPresence(a.api, room, "ann", nil)
	c1.joinPresence(c.api, room, "cid", nil)
	rec.wait("occupied and two members", 3*time.Second, func() bool { return len(rec.list()) == 3 })
	// C's broker goes first: its sockets then close with nobody told.
	c.b.Close()
	c.shutdown()
	rec.wait("cid removed", 10*time.Second, func() bool { return rec.count("member_removed", "cid") == 1 })
	time.Sleep(time.Second)
	if n, all := rec.count("member_removed", ""), rec.list(); n != 1 || rec.count("channel_vacated", "") != 0 {
		t.Fatalf("after C died: %v", all)
	}
}

// TestWebhooksCleanStopRemovesOnce: a node that stops cleanly records its
// members leaving; another node sends the removals once the delay passed
// (the stopped node's own pending removals live in Redis, not in it).
func TestWebhooksCleanStopRemovesOnce(t *testing.T) {
	rec := newHookReceiver(t)
	_, nodes := startHookCluster(t, 2, rec.srv.URL, 500*time.Millisecond)
	a, b := nodes[0], nodes[1]
	const room = "presence-room"
	a1, b1 := a.connect("a1"), b.connect("b1")
	a1.joinPresence(a.api, room, "ann", nil)
	b1.joinPresence(b.api, room, "bob", nil)
	rec.wait("occupied and two members", 3*time.Second, func() bool { return len(rec.list()) == 3 })
	b.shutdown()
	b.b.Close()
	rec.wait("bob removed", 5*time.Second, func() bool { return rec.count("member_removed", "bob") == 1 })
	time.Sleep(time.Second)
	if got := rec.list(); len(got) != 4 || rec.count("member_removed", "ann") != 0 {
		t.Fatalf("after B stopped: %v", got)
	}
}

// TestWebhookTransitionsWaitingForRedisAreBounded: with Redis frozen, the
// transitions a node queues for it stop at REVERB_WEBHOOK_QUEUE_SIZE and
// the rest are dropped and counted; the node keeps serving.
func TestWebhookTransitionsWaitingForRedisAreBounded(t *testing.T) {
	rec := newHookReceiver(t)
	r := startRedis(t)
	n := startHookNode(t, r, "A", rec.srv.URL, time.Second, func(o *webhook.Options) { o.QueueSize = 4 })
	waitNumSub(t, r, controlChannel(), 1)
	first := n.connect("first")
	first.subscribe("room") // the channel is ready: later subscribers need no Redis
	cs := make([]*wsClient, 20)
	for i := range cs {
		cs[i] = n.connect("c" + itoa(i))
	}
	r.signal(syscall.SIGSTOP)
	defer r.signal(syscall.SIGCONT)
	for _, c := range cs {
		c.subscribe("room") // one subscription_count transition each
	}
	if d := n.srv.Hub().Counters().WebhooksDropped.Load(); d == 0 {
		t.Fatal("no transition dropped with Redis frozen and a queue of 4")
	}
}

// BenchmarkWebhookPresenceBurst is the webhook target: 1,000 presence
// members join and leave in a burst (on one node, and spread over three
// nodes); exactly one member_added and one member_removed per user must
// arrive, within the delay + 2 s, batched. Reported: requests per event,
// and the worst seconds from a user's join (acknowledged) / leave to its
// member_added / member_removed (the latter minus the delay).
func BenchmarkWebhookPresenceBurst(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run("nodes="+itoa(nodes), func(b *testing.B) {
			for range b.N {
				burst(b, nodes, 1000)
			}
		})
	}
}

func burst(b *testing.B, count, users int) {
	const delay = 3 * time.Second
	rec := newHookReceiver(b)
	var ns []*node
	if count == 1 {
		ns = []*node{startHookNode(b, nil, "solo", rec.srv.URL, delay)}
	} else {
		_, ns = startHookCluster(b, count, rec.srv.URL, delay)
	}
	const room = "presence-burst"
	clients := make([]*burstClient, users)
	var wg sync.WaitGroup
	errs := make([]error, users)
	sem := make(chan struct{}, 32)
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			clients[i], errs[i] = dialBurst(ns[i%len(ns)], room, "u"+itoa(i))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	rec.wait("every member_added", 20*time.Second, func() bool { return rec.count("member_added", "") >= users })
	for _, c := range clients {
		c.close()
	}
	rec.wait("every member_removed", delay+20*time.Second, func() bool { return rec.count("member_removed", "") >= users })
	time.Sleep(500 * time.Millisecond)
	// Lag per user: from its join acknowledged / its socket closed to its
	// event's arrival (minus the delay for removals); the worst is reported.
	byUser := map[string]*burstClient{}
	for _, c := range clients {
		byUser[c.user] = c
	}
	var addLag, removeLag time.Duration
	seen := map[string]int{}
	rec.mu.Lock()
	for _, e := range rec.events {
		if !strings.HasPrefix(e.Name, "member_") {
			continue
		}
		seen[e.Name+":"+e.UserID]++
		if c := byUser[e.UserID]; c != nil && e.Name == "member_added" {
			addLag = max(addLag, e.at.Sub(c.joined))
		} else if c != nil {
			removeLag = max(removeLag, e.at.Sub(c.left)-delay)
		}
	}
	reqs, events := rec.reqs, len(rec.events)
	rec.mu.Unlock()
	var wrong []string
	for i := range users {
		for _, n := range []string{"member_added:u", "member_removed:u"} {
			if k := n + itoa(i); seen[k] != 1 {
				wrong = append(wrong, k)
			}
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 || len(seen) != 2*users {
		b.Fatalf("not exactly one added and one removed per user: %d distinct, wrong %v", len(seen), wrong[:min(len(wrong), 10)])
	}
	if addLag > 2*time.Second || removeLag > 2*time.Second {
		b.Errorf("member_added up to %v after its join, member_removed up to delay+%v after its leave; want within 2 s", addLag, removeLag)
	}
	if reqs >= events/10 {
		b.Errorf("%d requests for %d events: not batched", reqs, events)
	}
	b.ReportMetric(float64(reqs), "requests")
	b.ReportMetric(float64(events), "events")
	b.ReportMetric(addLag.Seconds(), "s-added-lag")
	b.ReportMetric(removeLag.Seconds(), "s-removed-lag-after-delay")
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(dst []byte, i int) []byte {
	if i >= 10 {
		dst = appendInt(dst, i/10)
	}
	return append(dst, byte('0'+i%10))
}

// burstClient is a presence member that reads and discards everything
// after its subscription succeeded (1,000 members get ~500,000
// member_added frames between them).
type burstClient struct {
	c            *wsClient
	user         string
	joined, left time.Time
}

// dialBurst connects and joins without failing from its goroutine: it
// returns an error instead (t.Fatal must not run off the test goroutine).
func dialBurst(n *node, room, user string) (*burstClient, error) {
	c := n.dial(user)
	m, ok := c.next(burstWait)
	if !ok || m.Event != "pusher:connection_established" {
		return nil, fmt.Errorf("%s: no connection_established (got %q)", user, m.raw)
	}
	var est struct {
		SocketID string `json:"socket_id"`
	}
	_ = json.Unmarshal([]byte(m.dataString()), &est)
	auth, err := n.api.AuthorizePresenceChannel([]byte("socket_id="+url.QueryEscape(est.SocketID)+"&channel_name="+url.QueryEscape(room)),
		pusherapi.MemberData{UserID: user})
	if err != nil {
		return nil, err
	}
	var a struct {
		Auth        string `json:"auth"`
		ChannelData string `json:"channel_data"`
	}
	_ = json.Unmarshal(auth, &a)
	c.send(`{"event":"pusher:subscribe","data":{"channel":` + jsonString(room) + `,"auth":` + jsonString(a.Auth) +
		`,"channel_data":` + jsonString(a.ChannelData) + `}}`)
	if m, ok = c.next(burstWait); !ok || m.Event != "pusher_internal:subscription_succeeded" {
		return nil, fmt.Errorf("%s: no subscription_succeeded within %v (got %q)", user, burstWait, m.raw)
	}
	joined := time.Now()
	go func() {
		for {
			select {
			case <-c.msgs:
			case <-c.done:
				return
			}
		}
	}()
	return &burstClient{c: c, user: user, joined: joined}, nil
}

// burstWait bounds one join of the burst; joins run 32 at a time so a busy
// machine slows the burst down rather than starving single joins.
const burstWait = 20 * time.Second

func (b *burstClient) close() {
	b.left = time.Now()
	b.c.leave()
}
