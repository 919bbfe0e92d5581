package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

const (
	appID  = "1001"
	appKey = "key-a"
	secret = "secret-a"
	token  = "t0ken-for-tests"
)

type rig struct {
	srv *loop.Server
	mon *Monitor
}

// start runs a real server and its metrics listener on loopback ports.
func start(t *testing.T, tok string) *rig {
	t.Helper()
	apps, err := pusher.NewAppSet([]pusher.App{
		pusher.App{ID: appID, Key: appKey, Secret: secret, ClientEvents: pusher.ClientEventsMembers}.WithDefaults(),
		pusher.App{ID: "2002", Key: "key-b", Secret: "secret-b"}.WithDefaults(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var srv *loop.Server
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if srv, err = loop.Start(loop.Config{Addr: addr, Apps: apps, Loops: 2}); err == nil {
			break
		} else if attempt == 4 {
			t.Fatal(err)
		}
	}
	mon, err := Start(Config{Addr: "127.0.0.1:0", Token: tok, Version: "test"}, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = mon.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &rig{srv, mon}
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (r *rig) dial(t *testing.T, key string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, "ws://"+r.srv.Addr()+"/app/"+key+"?protocol=7")
	if err != nil {
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(c)
	}
	cl := &client{t, c, br}
	t.Cleanup(func() { c.Close() })
	cl.expect("pusher:connection_established")
	return cl
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.c, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads the next message and checks its event name.
func (c *client) expect(event string) {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rw := struct {
		io.Reader
		io.Writer
	}{c.r, c.c}
	msg, err := wsutil.ReadServerText(rw)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", event, err)
	}
	var m struct{ Event string }
	if err := json.Unmarshal(msg, &m); err != nil || m.Event != event {
		c.t.Fatalf("got %s, want event %s", msg, event)
	}
}

func (c *client) subscribe(ch string) {
	c.t.Helper()
	c.send(`{"event":"pusher:subscribe","data":{"channel":"` + ch + `"}}`)
	c.expect("pusher_internal:subscription_succeeded")
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)

// scrape reads /metrics into series → value.
func (r *rig) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := get(t, "http://"+r.mon.Addr()+"/metrics", "Bearer "+token)
	if code != 200 {
		t.Fatalf("GET /metrics with the token: %d %s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if m := sampleLine.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("bad sample %q", line)
			}
			out[m[1]] = v
		}
	}
	return out
}

// waitMetrics scrapes until every want holds (the loops fold their counts
// after each flush, which may run just after a client saw its frame).
func (r *rig) waitMetrics(t *testing.T, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.scrape(t)
		var bad []string
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				bad = append(bad, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
			}
		}
		if len(bad) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not match:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsTokenEnforced(t *testing.T) {
	r := start(t, token)
	base := "http://" + r.mon.Addr()
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", 401},
		{"/metrics", "Bearer wrong", 401},
		{"/metrics", "Basic " + token, 401},
		{"/metrics", "Bearer " + token, 200},
		{"/metrics?token=" + token, "", 200},
		{"/api/stats", "", 401},
		{"/api/stats", "Bearer " + token, 200},
		{"/api/stats?token=" + token, "", 200},
		// The page and its script carry no data.
		{"/", "", 200},
		{"/dashboard.js", "", 200},
	} {
		if code, body := get(t, base+tc.path, tc.auth); code != tc.want {
			t.Errorf("GET %s (Authorization %q): %d, want %d (%s)", tc.path, tc.auth, code, tc.want, body)
		}
	}
	// Without a token configured, everything is open.
	r2 := start(t, "")
	if code, _ := get(t, "http://"+r2.mon.Addr()+"/metrics", ""); code != 200 {
		t.Fatalf("no token configured: %d", code)
	}
}

// TestMetricsMatchRealSockets: connections, channels, subscriptions,
// messages in and out, delivery latency and HTTP API requests as /metrics
// reports them equal what real clients did.
func TestMetricsMatchRealSockets(t *testing.T) {
	r := start(t, token)
	var cls []*client
	for i := 0; i < 7; i++ {
		cls = append(cls, r.dial(t, appKey))
	}
	other := r.dial(t, "key-b")
	for _, c := range cls[:5] {
		c.subscribe("news")
	}
	for _, c := range cls[:3] {
		c.send(`{"event":"pusher:subscribe","data":{"channel":"private-x"}}`)
		c.expect("pusher:error") // no auth
	}
	for _, c := range cls[:3] {
		c.subscribe("alerts")
	}
	_ = other

	api := pusherapi.Client{AppID: appID, Key: appKey, Secret: secret, Host: r.srv.Addr()}
	if err := api.Trigger("news", "greeting", map[string]string{"hi": "there"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cls[:5] {
		c.expect("greeting")
	}
	// A client event: relayed to the other two subscribers of alerts.
	cls[0].send(`{"event":"client-typing","channel":"alerts","data":{}}`)
	cls[1].expect("client-typing")
	cls[2].expect("client-typing")

	a := `{app_id="1001"}`
	got := r.waitMetrics(t, map[string]float64{
		"reverb_connections" + a:            7,
		`reverb_connections{app_id="2002"}`: 1,
		"reverb_channels" + a:               2,
		"reverb_subscriptions" + a:          8,
		// 5 + 3 subscribes that succeeded, 3 that failed, 1 client event
		"reverb_messages_received_total" + a: 12,
		// 7 connection_established, 8 subscription_succeeded, 3 errors,
		// 5 greetings, 2 client events
		"reverb_messages_sent_total" + a:            25,
		`reverb_messages_sent_total{app_id="2002"}`: 1,
		// every delivery of an event to a socket, and nothing else
		"reverb_delivery_latency_seconds_count" + a:                       7,
		`reverb_delivery_latency_seconds_bucket{app_id="1001",le="+Inf"}`: 7,
		`reverb_http_requests_total{endpoint="events",status="200"}`:      1,
		`reverb_http_request_duration_seconds_count{endpoint="events"}`:   1,
		"reverb_slow_consumer_closes_total":                               0,
		"reverb_node_budget_closes_total":                                 0,
		"reverb_bytes_held":                                               0,
		"reverb_redis_silent_total":                                       0,
		"reverb_webhooks_sent_total":                                      0,
		"reverb_webhook_queue_length":                                     0,
		`reverb_build_info{node="` + r.mon.node + `",version="test"}`:     1,
	})
	if s := got["reverb_delivery_latency_seconds_sum"+a]; s <= 0 || s > 7 {
		t.Errorf("latency sum %v s for 7 deliveries on loopback", s)
	}
	for _, k := range []string{"go_goroutines", "process_open_fds", "go_memstats_heap_alloc_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("runtime/process metric %s missing", k)
		}
	}

	// Closing sockets lowers the gauges.
	cls[6].c.Close()
	cls[4].c.Close()
	r.waitMetrics(t, map[string]float64{
		"reverb_connections" + a:   5,
		"reverb_subscriptions" + a: 7,
		"reverb_channels" + a:      2,
	})

	// The dashboard's JSON tells the same.
	code, body := get(t, "http://"+r.mon.Addr()+"/api/stats", "Bearer "+token)
	if code != 200 {
		t.Fatalf("/api/stats: %d", code)
	}
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Apps) != 2 || st.Apps[0].ID != appID || st.Apps[0].Connections != 5 || st.Apps[0].Channels != 2 || st.Apps[0].Subscriptions != 7 {
		t.Fatalf("/api/stats apps: %+v", st.Apps)
	}
	if st.Clustered || len(st.Nodes) != 1 || st.Nodes[0].Connections[appID] != 5 {
		t.Fatalf("/api/stats nodes: %+v", st.Nodes)
	}
}

// TestDashboardLatencyWindow: the dashboard's last-minute histogram counts
// the deliveries since the oldest sample it keeps, with percentiles inside
// the buckets that hold them.
func TestDashboardLatencyWindow(t *testing.T) {
	r := start(t, "")
	var cls []*client
	for i := 0; i < 4; i++ {
		c := r.dial(t, appKey)
		c.subscribe("room")
		cls = append(cls, c)
	}
	r.mon.hist.take(time.Now()) // the window starts here
	api := pusherapi.Client{AppID: appID, Key: appKey, Secret: secret, Host: r.srv.Addr()}
	for i := 0; i < 3; i++ {
		if err := api.Trigger("room", "tick", "x"); err != nil {
			t.Fatal(err)
		}
		for _, c := range cls {
			c.expect("tick")
		}
	}
	r.waitMetrics(t, map[string]float64{`reverb_delivery_latency_seconds_count{app_id="1001"}`: 12})
	r.mon.hist.take(time.Now().Add(time.Second))
	st := r.mon.stats()
	l := st.Apps[0].Latency
	if l.Count != 12 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > 5 {
		t.Fatalf("last-minute latency %+v, want 12 deliveries with ordered percentiles", l)
	}
	if st.Apps[0].SentRate <= 0 {
		t.Fatalf("sent rate %v after 12 deliveries in the last sample", st.Apps[0].SentRate)
	}
}

func TestQuantile(t *testing.T) {
	counts := make([]uint64, len(hub.LatencyBuckets)+1)
	counts[4] = 100 // all in (0.0005, 0.001]
	if q := quantile(0.5, counts, 100); q <= 0.0005 || q > 0.001 {
		t.Fatalf("p50 %v outside its bucket", q)
	}
	counts[4], counts[len(counts)-1] = 0, 10
	if q := quantile(0.99, counts, 10); q != 5 {
		t.Fatalf("p99 in the +Inf bucket: %v, want the largest bound", q)
	}
}
