package loop_test

// Connection lifecycle, framing, ping/pong, limits and shutdown, through
// real loopback sockets (PROTOCOL.md §2, §3.2, §4.1, §7, §8.1, §8.3).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

func withPathPrefix(p string) func(*loop.Config) { return func(c *loop.Config) { c.Path = p } }

// TestRouting checks §1/§2.3: the app key in the path selects the app,
// unknown keys get 4001 then close 4001, other paths are 404, with and
// without a route prefix.
func TestRouting(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "/ws"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			s := startDefault(t, withPathPrefix(prefix))

			c := s.connect(t, withPath(prefix+"/app/"+testKey))
			c.sync()

			c = s.open(t, withPath(prefix+"/app/nope"))
			c.expectError(4001, "Application does not exist")
			c.expectClose(4001, "Application does not exist")

			bad := []string{prefix + "/app/" + testKey + "/", prefix + "/app", prefix + "/apps/" + testKey, "/other/app/" + testKey}
			if prefix != "" {
				bad = append(bad, "/app/"+testKey)
			} else {
				bad = append(bad, "/ws/app/"+testKey)
			}
			for _, p := range bad {
				_, err := s.dial(t, withPath(p))
				var se ws.StatusError
				if !errors.As(err, &se) || int(se) != 404 {
					t.Errorf("upgrade on %s: want HTTP 404, got %v", p, err)
				}
			}
		})
	}
}

// TestPrefixSpellings checks that "ws", "/ws" and "/ws/" all mean /ws (§1).
func TestPrefixSpellings(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"ws", "/ws/"} {
		s := startDefault(t, withPathPrefix(p))
		s.connect(t, withPath("/ws/app/"+testKey)).sync()
		resp, body := s.roundTrip(t, rawRequest("GET", "/ws/up", nil, ""))
		expectResponse(t, resp, body, 200, `{"health":"OK"}`)
	}
}

// TestConnectionEstablished checks §2.5 (shape, activity_timeout from the
// app), the X-Powered-By header (§2.2) and that ids are distinct.
func TestConnectionEstablished(t *testing.T) {
	t.Parallel()
	app := testApp()
	app.ActivityTimeout = 17
	s := startServer(t, []pusher.App{app})
	a := s.open(t)
	m := a.expectEvent("pusher:connection_established")
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	decodeInto(t, m.dataString(t), &d)
	if d.ActivityTimeout != 17 {
		t.Errorf("activity_timeout: want 17, got %d", d.ActivityTimeout)
	}
	if !socketIDShape.MatchString(d.SocketID) {
		t.Errorf("socket_id %q is not \\d+\\.\\d+", d.SocketID)
	}
	if got := a.header.Get("X-Powered-By"); got != "Laravel Reverb" {
		t.Errorf("X-Powered-By: want %q, got %q", "Laravel Reverb", got)
	}
	seen := map[string]bool{d.SocketID: true}
	for range 20 {
		c := s.connect(t)
		if seen[c.socketID] {
			t.Fatalf("socket id %s handed out twice", c.socketID)
		}
		seen[c.socketID] = true
	}

	// Default activity timeout is 30 (§2.5).
	s2 := startDefault(t)
	m = s2.open(t).expectEvent("pusher:connection_established")
	decodeInto(t, m.dataString(t), &d)
	if d.ActivityTimeout != 30 {
		t.Errorf("default activity_timeout: want 30, got %d", d.ActivityTimeout)
	}
}

// TestNoCompression checks the server ignores a permessage-deflate offer (§2.2).
func TestNoCompression(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c, err := s.dial(t, withDeflateOffer())
	if err != nil {
		t.Fatalf("handshake with a deflate offer: %v", err)
	}
	if len(c.hs.Extensions) != 0 {
		t.Fatalf("server accepted extensions %v; it must not (§2.2)", c.hs.Extensions)
	}
	c.expectEvent("pusher:connection_established")
	c.sync()
}

// TestProtocolQueryIgnored checks any or no protocol query is accepted (§2.1).
func TestProtocolQueryIgnored(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	for _, q := range []string{"", "protocol=4", "protocol=7&client=java&version=1"} {
		s.connect(t, withRawQuery(q)).sync()
	}
}

// TestConnectionQuota checks §2.3 step 2 and §8.4: over max_connections the
// socket gets 4004 then close 4004; a freed slot can be reused.
func TestConnectionQuota(t *testing.T) {
	t.Parallel()
	app := testApp()
	app.MaxConnections = 2
	s := startServer(t, []pusher.App{app})
	a := s.connect(t) // unsubscribed sockets count too (§8.4 [S])
	s.connect(t)
	c := s.open(t)
	c.expectError(4004, "Application is over connection quota")
	c.expectClose(4004, "*")

	a.close()
	eventually(t, "a slot to be freed after a disconnect", func() bool {
		c, err := s.dial(t)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		m := c.expectMsg()
		ok := m.Event == "pusher:connection_established"
		c.close()
		return ok
	})
}

// TestOrigins runs the §2.4 table through real handshakes.
func TestOrigins(t *testing.T) {
	t.Parallel()
	mk := func(key string, origins ...string) pusher.App {
		return pusher.App{ID: "id-" + key, Key: key, Secret: "s-" + key, AllowedOrigins: origins}
	}
	s := startServer(t, []pusher.App{
		mk("star", "*"),
		mk("exact", "laravel.com"),
		mk("wild", "*.laravel.com"),
		mk("local", "localhost", "*.localhost"),
		mk("mid", "app-*.example.com"),
	})
	const absent = "<absent>"
	cases := []struct {
		key    string
		origin string
		allow  bool
	}{
		{"star", "http://anything.example", true},
		{"star", absent, true},
		{"star", "garbage", true},
		{"exact", "http://laravel.com", true},
		{"exact", "https://laravel.com:8443", true},
		{"exact", "http://sub.laravel.com", false},
		{"exact", "http://localhost", false},
		{"exact", absent, false},
		{"exact", "laravel.com", false},
		{"exact", "http://LARAVEL.COM", false},
		{"wild", "http://laravel.com", false},
		{"wild", "http://sub.laravel.com", true},
		{"wild", "http://a.b.laravel.com", true},
		{"local", "http://sub.localhost", true},
		{"local", "http://localhost:3000", true},
		{"local", "http://example.com", false},
		{"mid", "https://app-eu.example.com", true},
		{"mid", "https://app.example.com", false},
	}
	for _, tc := range cases {
		t.Run(tc.key+"/"+tc.origin, func(t *testing.T) {
			opts := []dialOpt{withKey(tc.key)}
			if tc.origin != absent {
				opts = append(opts, withOrigin(tc.origin))
			}
			if tc.allow {
				s.connect(t, opts...).sync()
				return
			}
			c := s.open(t, opts...)
			c.expectError(4009, "Origin not allowed")
			c.expectClose(4009, "*")
		})
	}
}

// TestHandshakeErrors checks §2.2 and §1: non-upgrade GET on the socket
// path → 400 JSON, malformed handshake → 400, wrong version → 426, a head
// over max_request_size → 413.
func TestHandshakeErrors(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.MaxRequestSize = 2000 })
	up := "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	key := "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

	resp, body := s.roundTrip(t, rawRequest("GET", "/app/"+testKey, nil, ""))
	expectErrorBody(t, resp, body, 400)

	resp, body = s.roundTrip(t, rawRequest("GET", "/app/"+testKey, nil, up+"Sec-WebSocket-Version: 13\r\n"))
	if resp.StatusCode != 400 {
		t.Errorf("upgrade without Sec-WebSocket-Key: want 400, got %d %s", resp.StatusCode, body)
	}

	resp, body = s.roundTrip(t, rawRequest("GET", "/app/"+testKey, nil, up+key+"Sec-WebSocket-Version: 8\r\n"))
	if resp.StatusCode != 426 || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("version 8: want 426 with Sec-WebSocket-Version: 13, got %d %v %s", resp.StatusCode, resp.Header, body)
	}

	resp, body = s.roundTrip(t, rawRequest("POST", "/app/"+testKey, []byte("{}"), up+key+"Sec-WebSocket-Version: 13\r\n"))
	if resp.StatusCode == 101 {
		t.Errorf("POST upgrade must not switch protocols, got %d %s", resp.StatusCode, body)
	}

	pad := "X-Pad: " + strings.Repeat("a", 2100) + "\r\n"
	resp, body = s.roundTrip(t, rawRequest("GET", "/app/"+testKey, nil, up+key+"Sec-WebSocket-Version: 13\r\n"+pad))
	if resp.StatusCode != 413 {
		t.Errorf("oversized upgrade request: want 413, got %d %s", resp.StatusCode, body)
	}

	// A valid handshake still works after all that.
	s.connect(t).sync()
}

// TestClientClose checks a client close frame is echoed with its code, then
// TCP is closed (§2.6).
func TestClientClose(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	if err := c.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "bye"))); err != nil {
		t.Fatal(err)
	}
	f := c.next()
	code, _ := ws.ParseCloseFrameData(f.payload)
	if f.op != ws.OpClose || code != 1000 {
		t.Fatalf("want close frame 1000 echoed, got %s", f)
	}
	c.expectEOF()
}

// TestPusherPing checks §4.1: pusher:ping with any data gets exactly
// {"event":"pusher:pong"}.
func TestPusherPing(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	for _, msg := range []string{
		`{"event":"pusher:ping","data":{}}`,
		`{"event":"pusher:ping"}`,
		`{"event":"pusher:ping","data":""}`,
		`{"event":"pusher:ping","data":"{}"}`,
		`{"event":"pusher:ping","data":"not json"}`,
	} {
		c.send(msg)
		m := c.expectJSON(`{"event":"pusher:pong"}`)
		if len(m.fields) != 1 {
			t.Fatalf("pong for %s must have no data key, got %s", msg, m.raw)
		}
	}
	// pusher:pong from the client is never answered.
	c.send(`{"event":"pusher:pong","data":{}}`)
	c.sync()
}

// TestBinaryAndFragmentedMessages checks §2.2: binary messages are treated
// as text and fragmented messages are reassembled, with control frames
// allowed between fragments.
func TestBinaryAndFragmentedMessages(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	ping := []byte(`{"event":"pusher:ping","data":{}}`)

	must(t, c.writeFrame(ws.NewBinaryFrame(ping)))
	c.expectJSON(`{"event":"pusher:pong"}`)

	must(t, c.writeFrame(ws.NewFrame(ws.OpText, false, ping[:5])))
	must(t, c.writeFrame(ws.NewFrame(ws.OpContinuation, false, ping[5:12])))
	must(t, c.writeFrame(ws.NewPingFrame([]byte("mid"))))
	must(t, c.writeFrame(ws.NewFrame(ws.OpContinuation, true, ping[12:])))
	f := c.next()
	if f.op != ws.OpPong || string(f.payload) != "mid" {
		t.Fatalf("want pong frame %q between fragments, got %s", "mid", f)
	}
	c.expectJSON(`{"event":"pusher:pong"}`)
}

// TestSplitFrames checks frames are parsed however TCP cuts them: header and
// payload in separate writes, one byte per write, and several frames (with
// a control frame) in one write.
func TestSplitFrames(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	compile := func(f ws.Frame) []byte {
		b, err := ws.CompileFrame(ws.MaskFrame(f))
		must(t, err)
		return b
	}
	ping := compile(ws.NewTextFrame([]byte(`{"event":"pusher:ping","data":{}}`)))

	hdrLen := ws.HeaderSize(ws.Header{Length: int64(len(ping)), Masked: true}) // short payload: 2+4
	must(t, c.writeRaw(ping[:hdrLen]))
	must(t, c.writeRaw(ping[hdrLen:]))
	c.expectJSON(`{"event":"pusher:pong"}`)

	for i := range ping {
		must(t, c.writeRaw(ping[i:i+1]))
	}
	c.expectJSON(`{"event":"pusher:pong"}`)

	var many []byte
	many = append(many, ping...)
	many = append(many, compile(ws.NewPingFrame([]byte("x")))...)
	many = append(many, ping...)
	big := compile(ws.NewTextFrame([]byte(`{"event":"pusher:ping","data":{"p":"` + strings.Repeat("z", 300) + `"}}`)))
	many = append(many, big...) // 16-bit length header
	must(t, c.writeRaw(many))
	c.expectJSON(`{"event":"pusher:pong"}`)
	if f := c.next(); f.op != ws.OpPong || string(f.payload) != "x" {
		t.Fatalf("want pong frame %q, got %s", "x", f)
	}
	c.expectJSON(`{"event":"pusher:pong"}`)
	c.expectJSON(`{"event":"pusher:pong"}`)
}

// TestWebSocketPing checks §4.1: a WS ping gets a pong with the same payload;
// a WS pong gets nothing.
func TestWebSocketPing(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	for _, p := range []string{"", "hello", strings.Repeat("x", 125)} {
		must(t, c.writeFrame(ws.NewPingFrame([]byte(p))))
		f := c.next()
		if f.op != ws.OpPong || string(f.payload) != p {
			t.Fatalf("want pong %q, got %s", p, f)
		}
	}
	must(t, c.writeFrame(ws.NewPongFrame([]byte("unsolicited"))))
	c.sync()
}

// pingApp has a 1 s ping interval; pingConfig lowers the pong timeout.
func pingApp() pusher.App {
	a := testApp()
	a.PingInterval = time.Second
	return a
}

func pingConfig(c *loop.Config) { c.PongTimeout = 500 * time.Millisecond }

// pingDeadline bounds how long an idle socket may wait for the server's
// ping: per-socket timers or a sweep of at most the interval, plus slack.
const pingDeadline = 5 * time.Second

// expectServerPing waits for the idle ping and checks its kind (§7).
func expectServerPing(t *testing.T, c *wsClient, wsFrame bool) {
	t.Helper()
	f := c.nextWithin(pingDeadline)
	if wsFrame {
		if f.op != ws.OpPing {
			t.Fatalf("socket that used control frames: want a WebSocket ping frame, got %s", f)
		}
		return
	}
	if f.op != ws.OpText {
		t.Fatalf("socket that never sent control frames: want {\"event\":\"pusher:ping\"}, got %s", f)
	}
	assertJSON(t, "server ping", f.payload, `{"event":"pusher:ping"}`)
	if m := parseMessage(t, f.payload); len(m.fields) != 1 {
		t.Fatalf("server pusher:ping must have no data key, got %s", f.payload)
	}
}

// TestIdlePingAnswered checks §7: an idle socket is pinged with the right
// kind and, when it answers, is pinged again later instead of being closed.
func TestIdlePingAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{pingApp()}, pingConfig)
	t.Run("pusher ping", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		c.subscribe("news")
		expectServerPing(t, c, false)
		c.send(`{"event":"pusher:pong","data":{}}`)
		expectServerPing(t, c, false)
		c.send(`{"event":"pusher:pong","data":{}}`)
		c.sync()
	})
	t.Run("websocket ping", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		c.subscribe("news")
		must(t, c.writeFrame(ws.NewPingFrame([]byte("p"))))
		if f := c.next(); f.op != ws.OpPong {
			t.Fatalf("want pong, got %s", f)
		}
		expectServerPing(t, c, true)
		must(t, c.writeFrame(ws.NewPongFrame(nil)))
		expectServerPing(t, c, true)
		must(t, c.writeFrame(ws.NewPongFrame(nil)))
		c.sync()
	})
}

// TestIdlePingTiming checks §7: a socket is pinged only once it has been
// idle for ping_interval (1 s here), and every kind of inbound traffic
// counts as activity.
func TestIdlePingTiming(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{pingApp()}, pingConfig)
	notEarly := func(t *testing.T, f frame, last time.Time) {
		t.Helper()
		if el := time.Since(last); el < time.Second {
			t.Fatalf("server sent %s after %v of idleness, before ping_interval 1s", f, el)
		}
	}
	t.Run("after connect", func(t *testing.T) {
		t.Parallel()
		last := time.Now()
		c := s.connect(t)
		notEarly(t, c.nextWithin(pingDeadline), last)
	})
	t.Run("after pong", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		c.nextWithin(pingDeadline)
		last := time.Now()
		c.send(`{"event":"pusher:pong","data":{}}`)
		notEarly(t, c.nextWithin(pingDeadline), last)
	})
	t.Run("after websocket ping", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		last := time.Now()
		must(t, c.writeFrame(ws.NewPingFrame(nil)))
		if f := c.next(); f.op != ws.OpPong {
			t.Fatalf("want pong, got %s", f)
		}
		notEarly(t, c.nextWithin(pingDeadline), last)
	})
	t.Run("busy socket", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		// Invalid JSON still counts as activity (§7). Send every 100 ms for
		// 1.5 s: no ping may come in between.
		var last time.Time
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			last = time.Now()
			c.send(`not json`)
			c.expectError(4200, "Invalid message format")
			time.Sleep(100 * time.Millisecond)
		}
		notEarly(t, c.nextWithin(pingDeadline), last)
	})
}

// TestPongTimeout checks §7/§2.6: a pinged socket that does not answer gets
// 4201 then close 4201, subscribed or not, of both ping kinds, and its
// presence membership is removed.
func TestPongTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{pingApp()}, pingConfig)
	t.Run("unsubscribed", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		expectServerPing(t, c, false)
		c.expectError(4201, "Pong reply not received in time")
		c.expectClose(4201, "*")
	})
	t.Run("websocket ping unanswered", func(t *testing.T) {
		t.Parallel()
		c := s.connect(t)
		c.subscribe("news")
		must(t, c.writeFrame(ws.NewPongFrame(nil)))
		expectServerPing(t, c, true)
		c.expectError(4201, "Pong reply not received in time")
		c.expectClose(4201, "*")
	})
	t.Run("presence member removed", func(t *testing.T) {
		t.Parallel()
		a := s.api(t)
		ch := "presence-idle"
		obs := s.connect(t)
		obs.subscribePresence(a, ch, "obs", nil)
		idle := s.connect(t)
		idle.subscribePresence(a, ch, "idle", nil)
		obs.expectJSON(memberAddedJSON(t, ch, "idle", nil))
		// The idle socket is never read; the observer keeps itself alive
		// with WS pings until the idle one is pruned.
		deadline := time.Now().Add(3 * pingDeadline)
		for {
			if time.Now().After(deadline) {
				t.Fatal("idle presence member was not removed")
			}
			must(t, obs.writeFrame(ws.NewPingFrame(nil)))
			f := obs.next()
			if f.op == ws.OpPing {
				must(t, obs.writeFrame(ws.NewPongFrame(f.payload)))
				continue
			}
			if f.op == ws.OpPong {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			assertJSON(t, "observer", f.payload, memberRemovedJSON(t, ch, "idle"))
			break
		}
		idle.expectEvent("pusher:ping")
		idle.expectError(4201, "Pong reply not received in time")
		idle.expectClose(4201, "*")
	})
}

// TestInvalidMessages checks §3.2: every malformed message gets 4200 and the
// socket stays open.
func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	app := testApp()
	app.Signin = false
	s := startServer(t, []pusher.App{app})
	c := s.connect(t)
	for _, msg := range []string{
		`not json`,
		`{"event":"pusher:ping"`,
		`[]`,
		`"pusher:ping"`,
		`{}`,
		`{"event":1}`,
		`{"event":""}`,
		`{"event":null}`,
		`{"event":"pusher:nope","data":{}}`,
		`{"event":"pusher:signin","data":{"auth":"x","user_data":"{\"id\":\"1\"}"}}`,
		`{"event":"pusher:subscribe","data":[1]}`,
		`{"event":"pusher:subscribe","data":"hello"}`,
		`{"event":"pusher:subscribe","data":{}}`,
		`{"event":"pusher:subscribe","data":{"channel":null}}`,
		`{"event":"pusher:subscribe","data":{"channel":5}}`,
		`{"event":"pusher:subscribe","data":{"channel":""}}`,
		`{"event":"pusher:subscribe","data":{"channel":"x","auth":["a"]}}`,
		`{"event":"pusher:subscribe","data":{"channel":"x","channel_data":["a"]}}`,
		`{"event":"pusher:subscribe","data":{"channel":"x","channel_data":"Hello"}}`,
		`{"event":"pusher:unsubscribe","data":{}}`,
		`{"event":"client-typing","data":{}}`,
		`{"event":"client-typing","channel":"","data":{}}`,
		`{"event":"client-typing","channel":5,"data":{}}`,
	} {
		c.send(msg)
		c.expectError(4200, "Invalid message format")
	}
	c.sync()
	// The socket still works normally.
	c.subscribe("still-open")
}

// TestDataStringDecoded checks §3.1: a data-string holding JSON is decoded
// before a pusher:* event is handled.
func TestDataStringDecoded(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	c.send(`{"event":"pusher:subscribe","data":"{\"channel\":\"str\",\"auth\":\"\"}"}`)
	c.expectJSON(succeededJSON(t, "str"))
}

// TestIgnoredEvents checks §3.2 step 7: events with a channel that are not
// client-* are silently ignored, including pusher_internal:*.
func TestIgnoredEvents(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	c := s.connect(t)
	other := s.connect(t)
	other.subscribe("room")
	c.subscribe("room")
	c.send(`{"event":"hello","channel":"room","data":{}}`)
	c.send(`{"event":"pusher_internal:member_added","channel":"room","data":"{}"}`)
	c.sync()
	other.sync()
	other.expectQuiet()
}

// TestMaxMessageSize checks §8.1: exactly the limit is accepted; one more
// byte, whole or fragmented, closes with 1009 and no pusher:error.
func TestMaxMessageSize(t *testing.T) {
	t.Parallel()
	app := testApp()
	app.MaxMessageSize = 100
	s := startServer(t, []pusher.App{app})

	msg := func(n int) []byte {
		head := `{"event":"pusher:ping","data":{"p":"`
		tail := `"}}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	c := s.connect(t)
	must(t, c.writeFrame(ws.NewTextFrame(msg(100))))
	c.expectJSON(`{"event":"pusher:pong"}`)
	p := msg(100)
	must(t, c.writeFrame(ws.NewFrame(ws.OpText, false, p[:50])))
	must(t, c.writeFrame(ws.NewFrame(ws.OpContinuation, true, p[50:])))
	c.expectJSON(`{"event":"pusher:pong"}`)

	c.send(string(msg(101)))
	c.expectClose(1009, "Maximum message size exceeded")

	c = s.connect(t)
	p = msg(150)
	must(t, c.writeFrame(ws.NewFrame(ws.OpText, false, p[:60])))
	must(t, c.writeFrame(ws.NewFrame(ws.OpContinuation, false, p[60:120])))
	// The third fragment may fail to send if the server already closed.
	_ = c.writeFrame(ws.NewFrame(ws.OpContinuation, true, p[120:]))
	c.expectClose(1009, "Maximum message size exceeded")

	// A header announcing a huge frame is rejected before the payload arrives.
	c = s.connect(t)
	hdr := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: 1 << 30}
	must(t, ws.WriteHeader(c.conn, hdr))
	c.expectClose(1009, "Maximum message size exceeded")
}

// TestRateLimit checks §8.3: over max_attempts the message is answered with
// 4301 and not processed; the socket stays open unless terminate_on_limit.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, terminate := range []bool{false, true} {
		app := testApp()
		app.RateLimit = pusher.RateLimit{Enabled: true, MaxAttempts: 3, Decay: time.Minute, Terminate: terminate}
		s := startServer(t, []pusher.App{app})
		c := s.connect(t)
		c.sync()
		c.send(`not json`) // invalid messages count too
		c.expectError(4200, "Invalid message format")
		c.subscribe("limited")
		// Control frames are not counted.
		must(t, c.writeFrame(ws.NewPingFrame(nil)))
		if f := c.next(); f.op != ws.OpPong {
			t.Fatalf("want pong frame, got %s", f)
		}
		c.send(`{"event":"pusher:subscribe","data":{"channel":"over"}}`)
		c.expectError(4301, "Rate limit exceeded")
		if terminate {
			c.expectClose(4301, "*")
			continue
		}
		c.send(`{"event":"pusher:ping"}`)
		c.expectError(4301, "Rate limit exceeded")
		c.expectQuiet()
		// "over" was not subscribed: the rejected message was not processed.
		a := s.api(t)
		if _, err := a.Channel("over", chParams("subscription_count")); err != nil {
			t.Fatal(err)
		}
		a.expectLast(t, 200, `{"occupied":false}`)
	}
}

// TestShutdown checks §10.6: every socket gets close 4200, the listener is
// closed first (a client that reconnects the moment it reads its 4200 is
// refused, not accepted and dropped), and Shutdown returns.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.connect(t)
	a.subscribe("news")
	b := s.connect(t)
	done := make(chan error, 1)
	go func() { done <- s.shutdown() }()
	a.expectClose(4200, "Server is restarting")
	if conn, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("a reconnect right after close 4200 was accepted: the listener was still open")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("reconnect after 4200: %v, want connection refused", err)
	}
	b.expectClose(4200, "Server is restarting")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("listener still accepts after Shutdown")
	}
}

// TestShutdownHandsReconnectsToPeer: two processes' worth of servers share
// a port with SO_REUSEPORT (a rolling restart: the new one is up, the old
// one is told to stop). The old one's clients, reconnecting the moment they
// read their 4200, all reach the one that stays.
func TestShutdownHandsReconnectsToPeer(t *testing.T) {
	t.Parallel()
	// With several loops gnet opens one SO_REUSEPORT listener per loop,
	// and every one of them must go before the first 4200.
	for _, loops := range []int{1, 3} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			t.Parallel()
			handsReconnectsToPeer(t, loops)
		})
	}
}

func handsReconnectsToPeer(t *testing.T, loops int) {
	reuse := func(c *loop.Config) { c.ReusePort = true; c.Loops = loops }
	old := startDefault(t, reuse)
	cfg := old.cfg
	cfg.Addr = old.addr
	cfg.Loops = 1
	peer, err := loop.Start(cfg)
	if err != nil {
		t.Fatalf("second server on %s: %v", old.addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = peer.Shutdown(ctx)
	})
	app := cfg.Apps.ByKey(testApp().Key)
	// Connect until old holds some sockets (the kernel spreads them by hash).
	var onOld []*wsClient
	for i := 0; i < 64 && len(onOld) < 8; i++ {
		c := old.connect(t)
		if old.srv.Hub().Connections(app) > len(onOld) {
			onOld = append(onOld, c)
		}
	}
	if len(onOld) == 0 {
		t.Fatal("no connection reached the first server")
	}
	go old.shutdown()
	for _, c := range onOld {
		c.expectClose(4200, "Server is restarting")
		n := old.connect(t) // same address: only the peer may answer now
		n.sync()
	}
	if got := peer.Hub().Connections(app); got < len(onOld) {
		t.Fatalf("peer holds %d connections, want at least the %d reconnects", got, len(onOld))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
