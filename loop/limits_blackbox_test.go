package loop_test

// Bounds on what one client can hold: channels per socket, the time a
// request may take to arrive, connections not yet upgraded (issue 9), and
// loop counts beyond the hub's old 64.

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// TestChannelCapOverSockets: at the app's channel cap a subscribe to a new
// channel gets pusher:error 4303; the socket stays open and keeps receiving
// on its channels; after an unsubscribe there is room for exactly one more.
func TestChannelCapOverSockets(t *testing.T) {
	t.Parallel()
	app := testApp()
	app.MaxChannels = 3
	s := startServer(t, []pusher.App{app})
	a := s.api(t)
	c := s.connect(t)
	for _, ch := range []string{"a", "b", "c"} {
		c.subscribe(ch)
	}
	c.sendSubscribe("d", "", "")
	c.expectError(4303, "Maximum channels per connection reached")
	c.subscribe("b") // already on it: acknowledged again, nothing refused
	must(t, a.Trigger("a", "ev", "still-here"))
	c.expectAppEvent("a", "ev", "still-here")

	c.unsubscribe("a")
	c.subscribe("d")
	c.sendSubscribe("e", "", "")
	c.expectError(4303, "Maximum channels per connection reached")
	must(t, a.TriggerMulti([]string{"a", "d"}, "ev", "after"))
	c.expectAppEvent("d", "ev", "after") // not on a any more
	c.sync()
	if n := s.srv.Hub().Counters().RefusedSubscriptions.Load(); n != 2 {
		t.Fatalf("RefusedSubscriptions = %d, want 2", n)
	}
}

// TestHeadDeadlineClosesDribbler: a request head sent one byte every 300 ms
// is answered 408 and closed once the head deadline (1 s here) has passed
// since its first byte, although bytes kept arriving; a keep-alive API
// connection idle between requests for longer than that stays open.
func TestHeadDeadlineClosesDribbler(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) {
		c.HeadTimeout = time.Second
		c.HTTPIdleTimeout = 20 * time.Second
	})
	keep := s.httpConn(t)
	keep.write("GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := keep.read(); resp.StatusCode != 200 {
		t.Fatalf("/up: %d", resp.StatusCode)
	}

	drib := s.httpConn(t)
	head := "GET /app/" + testKey + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < len(head); i++ {
			if _, err := drib.conn.Write([]byte{head[i]}); err != nil {
				done <- err
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		done <- nil
	}()
	drib.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, body, err := drib.tryRead()
	if err != nil {
		t.Fatalf("dribbler: no response: %v", err)
	}
	if resp.StatusCode != 408 {
		t.Fatalf("dribbler: want 408, got %d %s", resp.StatusCode, body)
	}
	drib.expectEOF(ioTimeout)
	// Deadline 1 s on a coarse one-second clock: closed after 1-3 s; the
	// bound is loose for a loaded machine but well before the whole head
	// (about 15 s of dribbling) could have arrived.
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("dribbler closed after %v", el)
	}
	if err := <-done; err == nil {
		t.Fatal("the whole head was accepted byte by byte")
	}
	if n := s.srv.Hub().Counters().HeadDeadlineCloses.Load(); n != 1 {
		t.Fatalf("HeadDeadlineCloses = %d, want 1", n)
	}

	// The keep-alive connection has been idle for longer than the head
	// deadline: its idle timeout applies, not the deadline.
	keep.write("GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := keep.read(); resp.StatusCode != 200 {
		t.Fatalf("/up after idling past the head deadline: %d", resp.StatusCode)
	}
}

// TestPendingBoundRefusesNext: with at most 3 connections not yet
// upgraded, a 4th is answered 503 and closed at once; when one of the 3
// upgrades to WebSocket its place is free again, and the upgraded socket
// works.
func TestPendingBoundRefusesNext(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.MaxPendingConnections = 3 })
	var silent []net.Conn
	for range 3 {
		c, err := net.DialTimeout("tcp", s.addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}
	waitPending(t, s, 3)
	over := s.httpConn(t)
	over.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	b, _ := io.ReadAll(over.conn)
	if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") || !strings.Contains(string(b), "Connection: close") {
		t.Fatalf("4th pending connection: want a 503 and close, got %q", b)
	}
	if n := s.srv.Hub().Counters().RefusedPreUpgrade.Load(); n != 1 {
		t.Fatalf("RefusedPreUpgrade = %d, want 1", n)
	}
	// The refused one was never counted; the first silent one upgrades.
	req := "GET /app/" + testKey + "?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := silent[0].Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	silent[0].SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 4096)
	n, err := silent[0].Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101 ") {
		t.Fatalf("upgrade: %q %v", buf[:n], err)
	}
	waitPending(t, s, 2)
	c := s.connect(t) // takes the freed place, upgrades and is served
	c.subscribe("room")
	waitPending(t, s, 2)
}

func waitPending(t *testing.T, s *testServer, want int64) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for loop.PendingConnections(s.srv) != want {
		if time.Now().After(deadline) {
			t.Fatalf("pending connections = %d, want %d", loop.PendingConnections(s.srv), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestManyLoopsEndToEnd: an engine with 80 event loops (the hub panicked
// above 64) serves sockets on every loop: each of 100 subscribers gets a
// broadcast, and a presence channel spanning the loops reports them all.
func TestManyLoopsEndToEnd(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.Loops = 80 })
	a := s.api(t)
	var cs []*wsClient
	for i := range 110 {
		c := s.connect(t)
		if i%11 == 10 {
			// Presence members on other sockets (their member_added
			// traffic is not read).
			c.subscribePresence(a, "presence-room", fmt.Sprint(i), nil)
			continue
		}
		c.subscribe("room")
		cs = append(cs, c)
	}
	must(t, a.Trigger("room", "ev", "to-all"))
	for _, c := range cs {
		c.expectAppEvent("room", "ev", "to-all")
	}
	users, err := a.GetChannelUsers("presence-room")
	if err != nil || len(users.List) != 10 {
		t.Fatalf("presence users: %v %v", users, err)
	}
}
