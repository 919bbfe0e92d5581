package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/hub/webhook"
	"github.com/goreverb/reverb/pusher"
)

const (
	key    = "278d425bdf160c739803"
	secret = "7ad3773142a6692b25b8"
)

// receiver is an HTTP endpoint that accepts only what the official Go SDK's
// Client.Webhook verifies (key and signature), like an app would.
type receiver struct {
	srv     *httptest.Server
	sdk     *pusherapi.Client
	mu      sync.Mutex
	got     []*pusherapi.Webhook
	raw     [][]byte
	headers []http.Header
	bad     int
	// status, when set, answers a request instead of 200 (per attempt).
	status func(n int) int
	hang   bool
	tries  int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{sdk: &pusherapi.Client{AppID: "1", Key: key, Secret: secret}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.tries++
	n, status, hang := r.tries, r.status, r.hang
	r.mu.Unlock()
	if hang {
		<-req.Context().Done()
		return
	}
	if status != nil {
		if code := status(n); code != 200 {
			w.WriteHeader(code)
			return
		}
	}
	wh, err := r.sdk.Webhook(req.Header, body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.got = append(r.got, wh)
	r.raw = append(r.raw, body)
	r.headers = append(r.headers, req.Header.Clone())
	w.WriteHeader(http.StatusOK)
}

// events returns the names "name:channel[:user]" of every verified event.
func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, wh := range r.got {
		for _, e := range wh.Events {
			s := e.Name + ":" + e.Channel
			if e.UserID != "" {
				s += ":" + e.UserID
			}
			out = append(out, s)
		}
	}
	return out
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newSender(t *testing.T, hooks []pusher.Webhook, o webhook.Options) (*webhook.Sender, *pusher.App, *hub.Counters) {
	t.Helper()
	apps, err := pusher.NewAppSet([]pusher.App{{ID: "1", Key: key, Secret: secret, Webhooks: hooks}})
	if err != nil {
		t.Fatal(err)
	}
	s := webhook.New(apps, o)
	c := new(hub.Counters)
	s.Start(c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s, apps.ByID("1"), c
}

func TestSignatureVector(t *testing.T) {
	body := `{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"my-channel"}]}`
	if got, want := webhook.Sign(secret, []byte(body)), "c19001ae3963ccb13bf618e5b16ba9848e7e74df0993aa0689168e341c6833cf"; got != want {
		t.Fatalf("signature %s, want %s (PROTOCOL.md §6.4)", got, want)
	}
}

func TestBatchIsSignedAndVerifiedByGoSDK(t *testing.T) {
	r := newReceiver(t)
	s, app, c := newSender(t, []pusher.Webhook{{URL: r.srv.URL, Headers: map[string]string{"X-Extra": "yes"}}},
		webhook.Options{Batch: 200 * time.Millisecond})
	s.ClientEvent(app, "presence-room", "client-typing", []byte(`{"a":"é\"x"}`), "1.2", "7")
	s.ClientEvent(app, "private-x", "client-s", []byte(`"plain"`), "1.3", "")
	s.CacheMiss(app, "cache-c")
	s.SubscriptionCount(app, "public", 3)
	waitFor(t, "one request", 3*time.Second, func() bool { return c.WebhooksSent.Load() == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := r.requests(); n != 1 {
		t.Fatalf("%d requests for 4 events within the batch window, want 1", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	wh, h := r.got[0], r.headers[0]
	if h.Get("X-Extra") != "yes" || h.Get("X-Pusher-Key") != key {
		t.Fatalf("headers %v", h)
	}
	if d := time.Since(time.UnixMilli(int64(wh.TimeMs))); d < 0 || d > 5*time.Second {
		t.Fatalf("time_ms %d is %v away from now", wh.TimeMs, d)
	}
	want := []pusherapi.WebhookEvent{
		{Name: "client_event", Channel: "presence-room", Event: "client-typing", Data: `{"a":"é\"x"}`, SocketID: "1.2", UserID: "7"},
		{Name: "client_event", Channel: "private-x", Event: "client-s", Data: "plain", SocketID: "1.3"},
		{Name: "cache_miss", Channel: "cache-c"},
		{Name: "subscription_count", Channel: "public"},
	}
	if len(wh.Events) != len(want) {
		t.Fatalf("events %+v", wh.Events)
	}
	for i := range want {
		if wh.Events[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, wh.Events[i], want[i])
		}
	}
	var raw struct {
		Events []map[string]any `json:"events"`
	}
	_ = json.Unmarshal(r.raw[0], &raw)
	if n := raw.Events[3]["subscription_count"]; n != float64(3) {
		t.Errorf("subscription_count %v, want 3", n)
	}
	if _, ok := raw.Events[1]["user_id"]; ok {
		t.Errorf("client_event off presence carries user_id: %s", r.raw[0])
	}
	if c.WebhooksSent.Load() != 1 || c.WebhookQueue.Load() != 0 {
		t.Errorf("sent %d queue %d, want 1 and 0", c.WebhooksSent.Load(), c.WebhookQueue.Load())
	}
}

func TestVacatedAndRemovedWaitAndAreCancelled(t *testing.T) {
	r := newReceiver(t)
	s, app, _ := newSender(t, []pusher.Webhook{{URL: r.srv.URL}},
		webhook.Options{Batch: 50 * time.Millisecond, Delay: 400 * time.Millisecond})
	s.Occupancy(app, "presence-a", true)
	s.Member(app, "presence-a", "1", true)
	waitFor(t, "occupied and added", 2*time.Second, func() bool { return len(r.events()) == 2 })
	// Leave and come back within the delay: nothing to tell.
	s.Member(app, "presence-a", "1", false)
	s.Occupancy(app, "presence-a", false)
	time.Sleep(150 * time.Millisecond)
	s.Occupancy(app, "presence-a", true)
	s.Member(app, "presence-a", "1", true)
	time.Sleep(700 * time.Millisecond)
	if ev := r.events(); len(ev) != 2 {
		t.Fatalf("events after a return within the delay: %v", ev)
	}
	start := time.Now()
	s.Member(app, "presence-a", "1", false)
	s.Occupancy(app, "presence-a", false)
	waitFor(t, "removed and vacated", 2*time.Second, func() bool { return len(r.events()) == 4 })
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("removal sent after %v, before the 400 ms delay", d)
	}
	want := []string{"channel_occupied:presence-a", "member_added:presence-a:1", "member_removed:presence-a:1", "channel_vacated:presence-a"}
	ev := r.events()
	for i := range want {
		if ev[i] != want[i] {
			t.Fatalf("events %v, want %v", ev, want)
		}
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	r := newReceiver(t)
	r.status = func(n int) int {
		if n == 1 {
			return 503
		}
		return 200
	}
	s, app, c := newSender(t, []pusher.Webhook{{URL: r.srv.URL}}, webhook.Options{Batch: 20 * time.Millisecond})
	s.CacheMiss(app, "cache-x")
	// The counters move once the sender has the answer, after the receiver
	// recorded the request.
	waitFor(t, "the retried request", 5*time.Second, func() bool { return c.WebhooksSent.Load() == 1 })
	if c.WebhooksFailed.Load() != 1 || c.WebhooksRetried.Load() != 1 || c.WebhooksSent.Load() != 1 || c.WebhookQueue.Load() != 0 {
		t.Fatalf("failed %d retried %d sent %d queue %d, want 1 1 1 0", c.WebhooksFailed.Load(),
			c.WebhooksRetried.Load(), c.WebhooksSent.Load(), c.WebhookQueue.Load())
	}
}

func TestDroppedAfterRetryWindowAndTimeouts(t *testing.T) {
	r := newReceiver(t)
	r.hang = true
	s, app, c := newSender(t, []pusher.Webhook{{URL: r.srv.URL}},
		webhook.Options{Batch: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, RetryFor: 2 * time.Second})
	s.CacheMiss(app, "cache-x")
	// Attempts at 0, 1 s (+timeouts); the next backoff (2 s) passes the window.
	waitFor(t, "the drop", 6*time.Second, func() bool { return c.WebhooksDropped.Load() == 1 })
	if f := c.WebhooksFailed.Load(); f != 2 {
		t.Errorf("%d failed attempts, want 2", f)
	}
	if q := c.WebhookQueue.Load(); q != 0 {
		t.Errorf("queue %d after the drop, want 0", q)
	}
}

func TestQueueIsBounded(t *testing.T) {
	apps, _ := pusher.NewAppSet([]pusher.App{{ID: "1", Key: key, Secret: secret, Webhooks: []pusher.Webhook{{URL: "http://127.0.0.1:1/"}}}})
	s := webhook.New(apps, webhook.Options{QueueSize: 3})
	c := new(hub.Counters)
	s.Start(c) // the closed port fails every attempt; nothing leaves the queue for a while
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		s.Close(ctx)
	}()
	for range 5 {
		s.CacheMiss(apps.ByID("1"), "cache-x")
	}
	if q, d := c.WebhookQueue.Load(), c.WebhooksDropped.Load(); q != 3 || d != 2 {
		t.Fatalf("queue %d dropped %d, want 3 and 2", q, d)
	}
}

func TestEventTypesAndChannelFilters(t *testing.T) {
	r := newReceiver(t)
	var events pusher.HookMask
	events = events.With(pusher.HookChannelOccupied)
	s, app, _ := newSender(t, []pusher.Webhook{{URL: r.srv.URL, Events: events, Prefix: "private-", Suffix: ".1"}},
		webhook.Options{Batch: 20 * time.Millisecond})
	s.Occupancy(app, "private-a.1", true)
	s.Occupancy(app, "private-a.2", true)
	s.Occupancy(app, "public.1", true)
	s.CacheMiss(app, "private-a.1")
	s.Occupancy(app, "private-b.1", true)
	waitFor(t, "two events", 2*time.Second, func() bool { return len(r.events()) >= 2 })
	time.Sleep(200 * time.Millisecond)
	ev := r.events()
	if len(ev) != 2 || ev[0] != "channel_occupied:private-a.1" || ev[1] != "channel_occupied:private-b.1" {
		t.Fatalf("events %v", ev)
	}
}
