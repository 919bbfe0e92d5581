package loop_test

// Config.AsyncAPI: HTTP API requests served off the event loop while the
// backend blocks, as a clustered node's does when it asks the other nodes.

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// slowBackend is the hub behind the HTTP API, except that Channel and
// Channels for a name or prefix starting with "slow" take delay.
type slowBackend struct {
	pusher.Backend
	delay   time.Duration
	entered chan string // the name of each slow query as it starts

	active    atomic.Int32 // slow queries running now
	maxActive atomic.Int32
}

func newSlowBackend(delay time.Duration) *slowBackend {
	return &slowBackend{delay: delay, entered: make(chan string, 64)}
}

func (b *slowBackend) block(name string) {
	if !strings.HasPrefix(name, "slow") {
		return
	}
	n := b.active.Add(1)
	for m := b.maxActive.Load(); n > m && !b.maxActive.CompareAndSwap(m, n); m = b.maxActive.Load() {
	}
	select {
	case b.entered <- name:
	default:
	}
	time.Sleep(b.delay)
	b.active.Add(-1)
}

func (b *slowBackend) Channel(app *pusher.App, name string) pusher.ChannelInfo {
	b.block(name)
	return b.Backend.Channel(app, name)
}

func (b *slowBackend) Channels(app *pusher.App, prefix string, visit func(string, pusher.ChannelInfo)) {
	b.block(prefix)
	b.Backend.Channels(app, prefix, visit)
}

// waitEntered waits until a slow query for name has started.
func (b *slowBackend) waitEntered(t testing.TB, name string) {
	t.Helper()
	deadline := time.After(ioTimeout)
	for {
		select {
		case got := <-b.entered:
			if got == name {
				return
			}
		case <-deadline:
			t.Fatalf("the backend never saw a query for %q", name)
		}
	}
}

// withSlowAPI serves the API off the loop (AsyncAPI) over b.
func withSlowAPI(b *slowBackend) func(*loop.Config) {
	return func(c *loop.Config) {
		c.AsyncAPI = true
		loop.WithAPIBackend(func(h pusher.Backend) pusher.Backend {
			b.Backend = h
			return b
		})(c)
	}
}

func oneLoop(c *loop.Config) { c.Loops = 1 }

type httpResult struct {
	resp *http.Response
	body []byte
	err  error
	took time.Duration
}

// readAsync reads one response on its own goroutine; took counts from start.
func (h *httpConn) readAsync(start time.Time) <-chan httpResult {
	ch := make(chan httpResult, 1)
	go func() {
		resp, body, err := h.tryRead()
		ch <- httpResult{resp, body, err, time.Since(start)}
	}()
	return ch
}

func (s *testServer) channelRequest(name, info, extraHeaders string) string {
	var q url.Values
	if info != "" {
		q = url.Values{"info": {info}}
	}
	return s.signedRequest("GET", "/apps/"+testAppID+"/channels/"+name, q, nil, extraHeaders)
}

func expectInFlight(t testing.TB, s *testServer, b *slowBackend) {
	t.Helper()
	eventually(t, "no API request in flight", func() bool {
		return b.active.Load() == 0 && loop.APIInFlight(s.srv) == 0
	})
}

// TestAsyncAPIKeepsLoopResponsive: while an API request waits 400 ms for
// the backend, sockets on the same (only) loop get pongs and events at once.
// Served inline, every round trip below would wait for the backend.
func TestAsyncAPIKeepsLoopResponsive(t *testing.T) {
	t.Parallel()
	const delay, bound = 400 * time.Millisecond, 150 * time.Millisecond
	b := newSlowBackend(delay)
	s := startDefault(t, oneLoop, withSlowAPI(b))
	c := s.connect(t)
	c.subscribe("slow-room")

	h := s.httpConn(t)
	start := time.Now()
	h.write(s.channelRequest("slow-room", "subscription_count", ""))
	slow := h.readAsync(start)
	b.waitEntered(t, "slow-room")

	for i := 0; i < 5; i++ {
		t0 := time.Now()
		c.sync()
		if rtt := time.Since(t0); rtt > bound {
			t.Fatalf("pusher:ping round trip %d took %v while an API request was in flight (want < %v)", i, rtt, bound)
		}
	}
	// Another API request on the same loop is not queued behind the slow one.
	t0 := time.Now()
	resp, body := s.roundTrip(t, s.signedRequest("POST", "/apps/"+testAppID+"/events", nil,
		[]byte(`{"name":"ev","channel":"slow-room","data":"hi"}`), ""))
	expectResponse(t, resp, body, 200, `{}`)
	c.expectAppEvent("slow-room", "ev", "hi")
	if took := time.Since(t0); took > bound {
		t.Fatalf("trigger and delivery took %v while an API request was in flight (want < %v)", took, bound)
	}
	select {
	case r := <-slow:
		t.Fatalf("the slow request finished after %v, before the checks above ended: %v", r.took, r.err)
	default:
	}

	r := <-slow
	if r.err != nil {
		t.Fatalf("slow request: %v", r.err)
	}
	expectResponse(t, r.resp, r.body, 200, `{"occupied":true,"subscription_count":1}`)
	if r.took < delay {
		t.Fatalf("the slow request took %v, less than the backend's %v", r.took, delay)
	}
	c.sync()
}

// TestAsyncAPIPipelinedInOrder: slow, fast, slow, slow, a 404 and /up on
// one keep-alive connection are answered in order, one at a time, whether
// they arrive in one write or the rest while the first is in flight.
func TestAsyncAPIPipelinedInOrder(t *testing.T) {
	t.Parallel()
	t.Run("one write", func(t *testing.T) { testPipelined(t, false) })
	t.Run("two writes", func(t *testing.T) { testPipelined(t, true) })
}

func testPipelined(t *testing.T, split bool) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	b := newSlowBackend(delay)
	s := startDefault(t, oneLoop, withSlowAPI(b))
	s.connect(t).subscribe("slow-a")
	s.connect(t).subscribe("slow-b")
	s.connect(t).subscribe("slow-b")

	reqs := []struct{ req, want string }{
		{s.channelRequest("slow-a", "subscription_count", ""), `{"occupied":true,"subscription_count":1}`},
		{s.signedRequest("GET", "/apps/"+testAppID+"/connections", nil, nil, ""), `{"connections":3}`},
		{s.signedRequest("GET", "/apps/"+testAppID+"/channels", url.Values{"filter_by_prefix": {"slow-"}}, nil, ""),
			`{"channels":{"slow-a":{},"slow-b":{}}}`},
		{s.channelRequest("slow-b", "subscription_count", ""), `{"occupied":true,"subscription_count":2}`},
		{rawRequest("GET", "/nothing-here", nil, ""), ""},
		{rawRequest("GET", "/up", nil, ""), `{"health":"OK"}`},
	}
	var rest strings.Builder
	for _, r := range reqs[1:] {
		rest.WriteString(r.req)
	}
	h := s.httpConn(t)
	start := time.Now()
	if split {
		h.write(reqs[0].req)
		b.waitEntered(t, "slow-a")
		h.write(rest.String())
	} else {
		h.write(reqs[0].req + rest.String())
	}
	for i, r := range reqs {
		resp, body := h.read()
		if r.want == "" {
			expectErrorBody(t, resp, body, 404)
			continue
		}
		if resp.StatusCode != 200 || !jsonEqual(body, r.want) {
			t.Fatalf("response %d: want 200 %s, got %d %s", i, r.want, resp.StatusCode, body)
		}
	}
	if took := time.Since(start); took < 3*delay {
		t.Fatalf("three slow requests answered in %v: they did not run one after another", took)
	}
	if m := b.maxActive.Load(); m != 1 {
		t.Fatalf("%d slow queries of one connection ran at once, want 1", m)
	}
	h.write(rawRequest("GET", "/up", nil, ""))
	resp, body := h.read()
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)
}

// TestAsyncAPIClientGoneMidRequest: a client that hangs up while its request
// is served costs nothing: the answer is dropped, never written to the next
// connection (which likely got the same descriptor), and the server goes on.
func TestAsyncAPIClientGoneMidRequest(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	b := newSlowBackend(delay)
	s := startDefault(t, oneLoop, withSlowAPI(b))
	conns := s.signedRequest("GET", "/apps/"+testAppID+"/connections", nil, nil, "")
	ws := s.connect(t)
	for i := 0; i < 3; i++ {
		h := s.httpConn(t)
		h.write(s.channelRequest("slow-x", "", "") + conns)
		b.waitEntered(t, "slow-x")
		h.conn.Close()
		time.Sleep(50 * time.Millisecond) // let the server close its end first

		next := s.httpConn(t)
		next.write(conns)
		resp, body := next.read()
		expectResponse(t, resp, body, 200, `{"connections":1}`)
		expectInFlight(t, s, b)
		next.expectQuiet()
		ws.sync()
		next.write(conns)
		resp, body = next.read()
		expectResponse(t, resp, body, 200, `{"connections":1}`)
	}
}

// TestAsyncAPIConnectionClose: Connection: close is honoured after an
// answer served off the loop; what was pipelined behind it is not served.
func TestAsyncAPIConnectionClose(t *testing.T) {
	t.Parallel()
	b := newSlowBackend(200 * time.Millisecond)
	s := startDefault(t, oneLoop, withSlowAPI(b))
	for _, name := range []string{"slow-y", "fast-y"} {
		h := s.httpConn(t)
		h.write(s.channelRequest(name, "", "Connection: close\r\n") + rawRequest("GET", "/up", nil, ""))
		resp, body := h.read()
		expectResponse(t, resp, body, 200, `{"occupied":false}`)
		if !resp.Close {
			t.Fatalf("%s: want Connection: close in the response, got %v", name, resp.Header)
		}
		h.expectEOF(ioTimeout)
	}
	expectInFlight(t, s, b)
}

// TestAsyncAPITrigger: events posted through an API served off the loop
// reach subscribers, and the error statuses keep their headers.
func TestAsyncAPITrigger(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.AsyncAPI = true })
	api := s.api(t)
	c := s.connect(t)
	c.subscribe("news")
	must(t, api.Trigger("news", "ev", "d1"))
	api.expectLast(t, 200, `{}`)
	c.expectAppEvent("news", "ev", "d1")
	must(t, api.TriggerMulti([]string{"news", "other"}, "ev", "d2"))
	c.expectAppEvent("news", "ev", "d2")

	resp, body := s.roundTrip(t, s.signedRequest("GET", "/apps/"+testAppID+"/events", nil, nil, ""))
	expectErrorBody(t, resp, body, 405)
	if got := resp.Header.Get("Allow"); got != "POST" {
		t.Fatalf("405 must carry Allow: POST, got %q", got)
	}
	q := signQuery("GET", "/apps/"+testAppID+"/connections", nil, nil, testKey, "wrong", time.Now().Unix())
	resp, body = s.roundTrip(t, rawRequest("GET", "/apps/"+testAppID+"/connections?"+q, nil, ""))
	expectErrorBody(t, resp, body, 401)
}

// TestAsyncAPIIdleTimeout: a connection whose request outlasts
// HTTPIdleTimeout is not closed as idle; once answered, its idle clock runs.
func TestAsyncAPIIdleTimeout(t *testing.T) {
	t.Parallel()
	const delay = 2500 * time.Millisecond
	b := newSlowBackend(delay)
	s := startDefault(t, oneLoop, withSlowAPI(b), func(c *loop.Config) { c.HTTPIdleTimeout = time.Second })
	h := s.httpConn(t)
	h.write(s.channelRequest("slow-z", "", ""))
	resp, body := h.read()
	expectResponse(t, resp, body, 200, `{"occupied":false}`)
	// The clock has one-second steps: closed 0–2 s after the response.
	h.expectEOF(4 * time.Second)
}

// TestAsyncAPIShutdown: a request in flight when the server shuts down is
// answered (with Connection: close) before the engine stops.
func TestAsyncAPIShutdown(t *testing.T) {
	t.Parallel()
	b := newSlowBackend(300 * time.Millisecond)
	s := startDefault(t, oneLoop, withSlowAPI(b))
	idle := s.httpConn(t)
	idle.write(rawRequest("GET", "/up", nil, ""))
	idle.read()
	h := s.httpConn(t)
	h.write(s.channelRequest("slow-s", "", "") + rawRequest("GET", "/up", nil, ""))
	b.waitEntered(t, "slow-s")
	done := make(chan error, 1)
	go func() { done <- s.shutdown() }()
	idle.expectEOF(ioTimeout)
	resp, body := h.read()
	expectResponse(t, resp, body, 200, `{"occupied":false}`)
	if !resp.Close {
		t.Fatalf("want Connection: close while shutting down, got %v", resp.Header)
	}
	h.expectEOF(ioTimeout)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestAsyncAPIPipelineBound: a client that keeps sending while its request
// is in flight is cut off at 16 × MaxRequestSize.
func TestAsyncAPIPipelineBound(t *testing.T) {
	t.Parallel()
	b := newSlowBackend(time.Second)
	s := startDefault(t, oneLoop, withSlowAPI(b), func(c *loop.Config) { c.MaxRequestSize = 1000 })
	h := s.httpConn(t)
	h.write(s.channelRequest("slow-p", "", ""))
	b.waitEntered(t, "slow-p")
	up := rawRequest("GET", "/up", nil, "")
	h.write(strings.Repeat(up, 15*1000/len(up))) // within the bound
	h.expectQuiet()
	h.write(strings.Repeat(up, 2*1000/len(up)+1)) // beyond it
	h.expectEOF(ioTimeout)
	expectInFlight(t, s, b)
	resp, body := s.roundTrip(t, rawRequest("GET", "/up", nil, ""))
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)
}
