package hub

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goreverb/reverb/pusher"
)

// rawFrame is the Framer used in these tests: the payload unchanged, so
// what a fake conn receives is the Pusher JSON itself.
func rawFrame(dst, payload []byte) []byte { return append(dst, payload...) }

type fakeConn struct {
	frames [][]byte
	closed int
	reason string
	count  int // frames delivered, kept when record is false
	record bool
}

func (c *fakeConn) Send(frame []byte) {
	c.count++
	if c.record {
		c.frames = append(c.frames, append([]byte(nil), frame...))
	}
}

func (c *fakeConn) Close(code int, reason string) { c.closed, c.reason = code, reason }

// events returns the decoded messages received so far and forgets them.
func (c *fakeConn) events(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range c.frames {
		var m map[string]any
		if err := json.Unmarshal(f, &m); err != nil {
			t.Fatalf("frame %q is not JSON: %v", f, err)
		}
		out = append(out, m)
	}
	c.frames = nil
	return out
}

type manualPoster struct{ woken int }

func (p *manualPoster) Wake() { p.woken++ }

type testHub struct {
	h   *Hub
	app *pusher.App
	l   []*Local
}

func newTestHub(t testing.TB, loops int, mod func(*pusher.App)) *testHub {
	a := pusher.App{ID: "1", Key: "key", Secret: "secret", Signin: true}
	if mod != nil {
		mod(&a)
	}
	apps, err := pusher.NewAppSet([]pusher.App{a})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Apps: apps, Loops: loops, Frame: rawFrame})
	th := &testHub{h: h, app: apps.ByKey("key")}
	for i := 0; i < loops; i++ {
		l := h.Local(i)
		l.Bind(&manualPoster{})
		th.l = append(th.l, l)
	}
	return th
}

func (th *testHub) drain() {
	for _, l := range th.l {
		l.Drain(0)
		l.ResetScratch()
	}
}

type client struct {
	s    Session
	c    fakeConn
	loop *Local
}

func (th *testHub) connect(t testing.TB, loop int) *client {
	t.Helper()
	cl := &client{loop: th.l[loop]}
	cl.c.record = true
	if !cl.loop.Open(&cl.s, &cl.c, "key", nil) {
		t.Fatal("open rejected")
	}
	cl.c.frames = nil
	return cl
}

func (cl *client) send(msg string) { cl.loop.Message(&cl.s, []byte(msg)) }

func (th *testHub) sign(cl *client, channel, data string) string {
	parts := [][]byte{[]byte(cl.s.ID()), []byte(":"), []byte(channel)}
	if data != "" {
		parts = append(parts, []byte(":"), []byte(data))
	}
	return "key:" + string(pusher.AppendHMAC(nil, th.app.Secret, parts...))
}

func (th *testHub) joinPresence(t *testing.T, cl *client, channel, userID string) {
	t.Helper()
	cd := fmt.Sprintf(`{"user_id":%q,"user_info":{"name":"u%s"}}`, userID, userID)
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]any{
		"channel": channel, "auth": th.sign(cl, channel, cd), "channel_data": cd}})
	cl.send(string(msg))
}

func names(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e["event"].(string))
	}
	return out
}

func TestPublishReachesSubscribersOnEveryLoopExceptExcluded(t *testing.T) {
	th := newTestHub(t, 2, nil)
	a, b, c := th.connect(t, 0), th.connect(t, 1), th.connect(t, 1)
	for _, cl := range []*client{a, b, c} {
		cl.send(`{"event":"pusher:subscribe","data":{"channel":"orders"}}`)
		if got := names(cl.c.events(t)); len(got) != 1 || got[0] != "pusher_internal:subscription_succeeded" {
			t.Fatalf("subscribe answered %v", got)
		}
	}
	th.h.Publish(th.app, []string{"orders", "nobody"}, "Shipped", []byte(`{"id":1}`), b.s.ID())
	th.drain()
	for _, tc := range []struct {
		cl   *client
		want int
	}{{a, 1}, {b, 0}, {c, 1}} {
		evs := tc.cl.c.events(t)
		if len(evs) != tc.want {
			t.Fatalf("socket %s got %d events, want %d", tc.cl.s.ID(), len(evs), tc.want)
		}
		if tc.want == 1 && (evs[0]["event"] != "Shipped" || evs[0]["channel"] != "orders" || evs[0]["data"] != `{"id":1}`) {
			t.Fatalf("event = %v", evs[0])
		}
	}
	if info := th.h.Channel(th.app, "orders"); !info.Occupied || info.SubscriptionCount != 3 {
		t.Fatalf("channel info = %+v", info)
	}
}

func TestPresenceMembershipAcrossSocketsOfOneUser(t *testing.T) {
	th := newTestHub(t, 2, nil)
	a1, a2, b := th.connect(t, 0), th.connect(t, 1), th.connect(t, 1)
	th.joinPresence(t, b, "presence-room", "2")
	b.c.events(t)

	th.joinPresence(t, a1, "presence-room", "1")
	th.drain()
	if got := names(b.c.events(t)); len(got) != 1 || got[0] != "pusher_internal:member_added" {
		t.Fatalf("b got %v after user 1 joined", got)
	}
	evs := a1.c.events(t)
	if len(evs) != 1 {
		t.Fatalf("joiner got %v", names(evs))
	}
	var pres struct {
		Presence struct {
			Count int
			IDs   []string
			Hash  map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(evs[0]["data"].(string)), &pres); err != nil {
		t.Fatal(err)
	}
	if pres.Presence.Count != 2 || strings.Join(pres.Presence.IDs, ",") != "2,1" || pres.Presence.Hash["1"]["name"] != "u1" {
		t.Fatalf("presence payload = %+v", pres)
	}

	// The same user on a second socket: no member_added for anyone.
	th.joinPresence(t, a2, "presence-room", "1")
	th.drain()
	if got := b.c.events(t); len(got) != 0 {
		t.Fatalf("second socket of user 1 produced %v", names(got))
	}
	if n := th.h.Channel(th.app, "presence-room").UserCount; n != 2 {
		t.Fatalf("user_count = %d, want 2", n)
	}

	// One of user 1's sockets leaves: still present. The last one leaves: removed.
	a1.send(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	th.drain()
	if got := b.c.events(t); len(got) != 0 {
		t.Fatalf("partial leave produced %v", names(got))
	}
	th.l[1].Closed(&a2.s)
	th.drain()
	evs = b.c.events(t)
	if len(evs) != 1 || evs[0]["event"] != "pusher_internal:member_removed" || evs[0]["data"] != `{"user_id":"1"}` {
		t.Fatalf("after last socket left b got %v", evs)
	}
}

func TestCacheChannelKeepsEventForLaterSubscriber(t *testing.T) {
	th := newTestHub(t, 1, nil)
	th.h.Publish(th.app, []string{"cache-prices"}, "Tick", []byte("42"), "")
	cl := th.connect(t, 0)
	cl.send(`{"event":"pusher:subscribe","data":{"channel":"cache-prices"}}`)
	evs := cl.c.events(t)
	if len(evs) != 2 || evs[1]["event"] != "Tick" || evs[1]["data"] != "42" {
		t.Fatalf("cache subscribe got %v", evs)
	}
	cl.send(`{"event":"pusher:subscribe","data":{"channel":"cache-empty"}}`)
	if got := names(cl.c.events(t)); len(got) != 2 || got[1] != "pusher:cache_miss" {
		t.Fatalf("empty cache channel got %v", got)
	}
}

func TestTerminateClosesSignedInAndPresenceSockets(t *testing.T) {
	th := newTestHub(t, 2, nil)
	a, b, c := th.connect(t, 0), th.connect(t, 1), th.connect(t, 1)
	th.joinPresence(t, a, "presence-x", "7")
	ud := `{"id":"7"}`
	sig := "key:" + string(pusher.AppendHMAC(nil, th.app.Secret, []byte(b.s.ID()+"::user::"+ud)))
	msg, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": sig, "user_data": ud}})
	b.send(string(msg))
	if got := names(b.c.events(t)); len(got) != 1 || got[0] != "pusher:signin_success" {
		t.Fatalf("signin answered %v", got)
	}
	th.joinPresence(t, c, "presence-x", "8")
	th.h.Terminate(th.app, "7")
	th.drain()
	if a.c.closed != 4009 || b.c.closed != 4009 || c.c.closed != 0 {
		t.Fatalf("closed codes a=%d b=%d c=%d", a.c.closed, b.c.closed, c.c.closed)
	}
}

func TestClientEventModes(t *testing.T) {
	for _, tc := range []struct {
		mode       pusher.ClientEvents
		subscribed bool
		wantRelay  bool
		wantErr    float64
	}{
		{pusher.ClientEventsAll, false, true, 0},
		{pusher.ClientEventsMembers, false, false, 4009},
		{pusher.ClientEventsMembers, true, true, 0},
		{pusher.ClientEventsNone, true, false, 4301},
	} {
		t.Run(fmt.Sprintf("%v/subscribed=%v", tc.mode, tc.subscribed), func(t *testing.T) {
			th := newTestHub(t, 1, func(a *pusher.App) { a.ClientEvents = tc.mode })
			sender, recv := th.connect(t, 0), th.connect(t, 0)
			recv.send(`{"event":"pusher:subscribe","data":{"channel":"chat"}}`)
			if tc.subscribed {
				sender.send(`{"event":"pusher:subscribe","data":{"channel":"chat"}}`)
			}
			recv.c.events(t)
			sender.c.events(t)
			sender.send(`{"event":"client-typing","channel":"chat","data":{"x":{}}}`)
			th.drain()
			got := recv.c.events(t)
			if relayed := len(got) == 1 && got[0]["event"] == "client-typing"; relayed != tc.wantRelay {
				t.Fatalf("receiver got %v", got)
			}
			own := sender.c.events(t)
			if tc.wantErr == 0 {
				if len(own) != 0 {
					t.Fatalf("sender got %v (echo or error)", own)
				}
				return
			}
			if len(own) != 1 || own[0]["event"] != "pusher:error" {
				t.Fatalf("sender got %v, want an error", own)
			}
			var e struct{ Code float64 }
			_ = json.Unmarshal([]byte(own[0]["data"].(string)), &e)
			if e.Code != tc.wantErr {
				t.Fatalf("error code %v, want %v", e.Code, tc.wantErr)
			}
		})
	}
}

// TestFanoutDoesNotAllocatePerReceiver guards the hot path: a publish costs
// the same few allocations with 10 or 2,000 receivers.
func TestFanoutDoesNotAllocatePerReceiver(t *testing.T) {
	allocs := func(n int) float64 {
		th := newTestHub(t, 1, nil)
		for i := 0; i < n; i++ {
			cl := th.connect(t, 0)
			cl.c.record = false
			cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
		}
		data := []byte(`{"message":"hello"}`)
		chans := []string{"room"}
		return testing.AllocsPerRun(50, func() {
			th.h.Publish(th.app, chans, "Msg", data, "")
			th.drain()
		})
	}
	small, large := allocs(10), allocs(2000)
	if large > small+1 {
		t.Fatalf("allocations grow with receivers: %v for 10, %v for 2000", small, large)
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			th := newTestHub(b, 1, nil)
			for i := 0; i < n; i++ {
				cl := th.connect(b, 0)
				cl.c.record = false
				cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
			}
			data := []byte(`{"message":"hello world"}`)
			chans := []string{"room"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				th.h.Publish(th.app, chans, "Msg", data, "")
				th.drain()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/receiver")
		})
	}
}

// BenchmarkFanoutAcrossLoops: 10,000 subscribers spread over 4 loops, each
// loop drained on its own goroutine like gnet's event loops.
func BenchmarkFanoutAcrossLoops(b *testing.B) {
	const loops, subs = 4, 10_000
	a := pusher.App{ID: "1", Key: "key", Secret: "secret"}
	apps, _ := pusher.NewAppSet([]pusher.App{a})
	h := New(Options{Apps: apps, Loops: loops, Frame: rawFrame})
	app := apps.ByKey("key")
	type loopRig struct {
		wake chan struct{}
		done chan int
	}
	rigs := make([]*loopRig, loops)
	for i := range rigs {
		r := &loopRig{wake: make(chan struct{}, 1), done: make(chan int, 1)}
		rigs[i] = r
		l := h.Local(i)
		l.Bind(chanPoster(r.wake))
	}
	conns := make([]*client, subs)
	for i := range conns {
		l := h.Local(i % loops)
		cl := &client{loop: l}
		l.Open(&cl.s, &cl.c, "key", nil)
		cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
		conns[i] = cl
	}
	stop := make(chan struct{})
	for i, r := range rigs {
		go func(l *Local, r *loopRig) {
			for {
				select {
				case <-stop:
					return
				case <-r.wake:
					l.Drain(0)
					l.ResetScratch()
					r.done <- 1
				}
			}
		}(h.Local(i), r)
	}
	data := []byte(`{"message":"hello world"}`)
	chans := []string{"room"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Publish(app, chans, "Msg", data, "")
		for _, r := range rigs {
			<-r.done
		}
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/receiver")
	time.Sleep(time.Millisecond)
}

type chanPoster chan struct{}

func (p chanPoster) Wake() {
	select {
	case p <- struct{}{}:
	default:
	}
}

// BenchmarkClientEventFanout is the receive→fan-out path of a whisper: one
// inbound client event decoded, relayed to every other subscriber.
func BenchmarkClientEventFanout(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			th := newTestHub(b, 1, func(a *pusher.App) { a.ClientEvents = pusher.ClientEventsMembers })
			var sender *client
			for i := 0; i < n; i++ {
				cl := th.connect(b, 0)
				cl.c.record = false
				cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
				sender = cl
			}
			msg := []byte(`{"event":"client-typing","channel":"room","data":{"name":"Ann"}}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sender.loop.Message(&sender.s, msg)
				th.drain()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/receiver")
		})
	}
}

// TestQueuedDeliveryDoesNotReachLaterSubscriber: a delivery still waiting in
// an inbox when another socket subscribes must not reach that socket, or a
// presence joiner would get member_added for a member its own
// subscription_succeeded already listed.
func TestQueuedDeliveryDoesNotReachLaterSubscriber(t *testing.T) {
	th := newTestHub(t, 1, nil)
	watcher, a, b := th.connect(t, 0), th.connect(t, 0), th.connect(t, 0)
	th.joinPresence(t, watcher, "presence-q", "w")
	th.drain()
	watcher.c.events(t)

	th.joinPresence(t, a, "presence-q", "a") // member_added(a) queued, not drained
	th.h.Publish(th.app, []string{"presence-q"}, "Early", []byte("1"), "")
	th.joinPresence(t, b, "presence-q", "b") // joins before the drain
	th.drain()

	if got := names(b.c.events(t)); len(got) != 1 || got[0] != "pusher_internal:subscription_succeeded" {
		t.Fatalf("late subscriber got %v, want only its subscription_succeeded", got)
	}
	if got := names(watcher.c.events(t)); strings.Join(got, ",") != "pusher_internal:member_added,Early,pusher_internal:member_added" {
		t.Fatalf("earlier subscriber got %v", got)
	}
}

// TestBudgetedDrainKeepsOrderAndCoalesces drains in slices of 3 sockets:
// every socket gets every event exactly once and in order, a run of events
// for one channel reaches a socket in one go, and a later post waits behind
// the unfinished batch.
func TestBudgetedDrainKeepsOrderAndCoalesces(t *testing.T) {
	th := newTestHub(t, 1, nil)
	var all []*client
	for i := 0; i < 10; i++ {
		cl := th.connect(t, 0)
		cl.send(`{"event":"pusher:subscribe","data":{"channel":"a"}}`)
		if i%2 == 0 {
			cl.send(`{"event":"pusher:subscribe","data":{"channel":"b"}}`)
		}
		cl.c.events(t)
		all = append(all, cl)
	}
	l := th.l[0]
	pub := func(ch, ev string) { th.h.Publish(th.app, []string{ch}, ev, []byte(`1`), "") }
	pub("a", "a1")
	pub("a", "a2")
	pub("b", "b1")

	// One slice: the first 3 sockets of channel a got a1 and a2 together.
	if !l.Drain(3) {
		t.Fatal("Drain(3) finished 10 sockets")
	}
	got := 0
	for _, cl := range all {
		switch n := len(cl.c.frames); n {
		case 0:
		case 2:
			got++
		default:
			t.Fatalf("a socket got %d frames in the first slice; a1 and a2 must arrive together", n)
		}
	}
	if got != 3 {
		t.Fatalf("%d sockets served by the first slice, want 3", got)
	}
	pub("a", "a3") // posted mid-batch: must come after b1
	for l.Drain(3) {
	}
	for i, cl := range all {
		want := "a1,a2,a3"
		if i%2 == 0 {
			want = "a1,a2,b1,a3"
		}
		if got := strings.Join(names(cl.c.events(t)), ","); got != want {
			t.Fatalf("socket %d got %s, want %s", i, got, want)
		}
	}
	if l.Drain(3) {
		t.Fatal("Drain reports work left after everything was delivered")
	}
}

type recordingBroker struct {
	mu        sync.Mutex
	published []string
	interest  []string
	presence  []string
}

func (b *recordingBroker) Presence(appID, channel, key string, id, info []byte, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.presence = append(b.presence, fmt.Sprintf("%s %s %s %s %s %v", appID, channel, key, id, info, on))
}

func (b *recordingBroker) Publish(appID, channel string, payload []byte, except string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, appID+" "+channel+" "+except+" "+string(payload))
}

func (b *recordingBroker) Terminate(appID, userID string) {}

func (b *recordingBroker) Interest(appID, channel string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.interest = append(b.interest, fmt.Sprintf("%s %s %v", appID, channel, on))
}

// TestBrokerSeesInterestAndOwnPublishes: the broker learns when this node
// gains its first and loses its last subscriber of a channel, and gets every
// publish (HTTP API and client events, with the sender's socket id) while
// local subscribers are served without it.
func TestBrokerSeesInterestAndOwnPublishes(t *testing.T) {
	th, br := newClusteredHub(t, 1)
	x, y := th.connect(t, 0), th.connect(t, 0)
	x.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
	y.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
	th.drain()
	if got := y.c.events(t); len(got) != 0 {
		t.Fatalf("acknowledged before the broker confirmed the channel: %v", names(got))
	}
	th.h.InterestReady("1", "room")
	th.drain()
	for _, cl := range []*client{x, y} {
		if got := names(cl.c.events(t)); strings.Join(got, ",") != "pusher_internal:subscription_succeeded" {
			t.Fatalf("after InterestReady a subscriber got %v", got)
		}
	}
	x.send(`{"event":"client-hi","channel":"room","data":{}}`)
	th.h.Publish(th.app, []string{"room"}, "Ev", []byte("d"), "")
	th.drain()
	if got := names(y.c.events(t)); strings.Join(got, ",") != "client-hi,Ev" {
		t.Fatalf("local subscriber got %v", got)
	}
	x.send(`{"event":"pusher:unsubscribe","data":{"channel":"room"}}`)
	th.l[0].Closed(&y.s)

	br.mu.Lock()
	defer br.mu.Unlock()
	if got := strings.Join(br.interest, "|"); got != "1 room true|1 room false" {
		t.Fatalf("interest calls: %s", got)
	}
	if len(br.published) != 2 ||
		br.published[0] != `1 room `+x.s.ID()+` {"event":"client-hi","channel":"room","data":{}}` ||
		br.published[1] != `1 room  {"event":"Ev","data":"d","channel":"room"}` {
		t.Fatalf("published: %q", br.published)
	}
}

// TestClusteredAckWaitsAtMostReadyTimeout: when the broker never confirms a
// channel (Redis frozen), the acknowledgement still goes out after the
// timeout; a second subscriber on the same channel waits with the first.
func TestClusteredAckWaitsAtMostReadyTimeout(t *testing.T) {
	th, _ := newClusteredHub(t, 2)
	h := th.h
	x, y := th.connect(t, 0), th.connect(t, 1)
	x.send(`{"event":"pusher:subscribe","data":{"channel":"cache-late"}}`)
	y.send(`{"event":"pusher:subscribe","data":{"channel":"cache-late"}}`)
	start := time.Unix(h.Now(), 0)
	h.Tick(start.Add(time.Second))
	th.drain()
	if got := x.c.events(t); len(got) != 0 {
		t.Fatalf("acknowledged after 1 s without confirmation: %v", names(got))
	}
	h.Tick(start.Add(readyTimeout * time.Second))
	th.drain()
	for _, cl := range []*client{x, y} {
		if got := strings.Join(names(cl.c.events(t)), ","); got != "pusher_internal:subscription_succeeded,pusher:cache_miss" {
			t.Fatalf("after the timeout a subscriber got %s", got)
		}
	}
}

// TestDeliveredCountsEverySocket: each event is recorded once per drain
// with the number of sockets handed its frame (the sender of a client event
// excluded), stamped with the moment the hub accepted it.
func TestDeliveredCountsEverySocket(t *testing.T) {
	th := newTestHub(t, 1, func(a *pusher.App) { a.ClientEvents = pusher.ClientEventsMembers })
	var cls []*client
	for i := 0; i < 5; i++ {
		cl := th.connect(t, 0)
		cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
		cls = append(cls, cl)
	}
	th.drain()
	before := Monotime()
	th.h.Publish(th.app, []string{"room"}, "Msg", []byte(`{}`), "")
	cls[0].send(`{"event":"client-typing","channel":"room","data":{}}`)
	l := th.l[0]
	l.Drain(0)
	got := append([]Delivered(nil), l.Delivered()...)
	l.ResetScratch()
	if len(got) != 2 || got[0].N != 5 || got[1].N != 4 {
		t.Fatalf("delivered %+v, want two events to 5 and 4 sockets", got)
	}
	for _, d := range got {
		if d.At < before || d.At > Monotime() || d.App != 0 {
			t.Fatalf("delivery %+v stamped outside [%d, now] or wrong app", d, before)
		}
	}
	if n := len(l.Delivered()); n != 0 {
		t.Fatalf("%d deliveries left after ResetScratch", n)
	}
}
