//go:build linux

package bench

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scriptedServer answers each request read on a loopback connection with
// the next of replies, written in the given pieces with a pause between
// them; "" closes the connection instead of answering, a last piece
// closeAfter closes it after the answer. It returns the address and a
// channel with the bodies of the requests it read.
const closeAfter = "\x00close"

func scriptedServer(t *testing.T, replies [][]string) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	bodies := make(chan string, len(replies))
	go func() {
		next := 0
		for next < len(replies) {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for next < len(replies) {
				req, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				b, _ := io.ReadAll(req.Body)
				bodies <- req.Method + " " + req.URL.String() + " " + string(b)
				pieces := replies[next]
				next++
				if len(pieces) == 1 && pieces[0] == "" {
					break
				}
				closing := pieces[len(pieces)-1] == closeAfter
				if closing {
					pieces = pieces[:len(pieces)-1]
				}
				for _, p := range pieces {
					c.Write([]byte(p))
					time.Sleep(5 * time.Millisecond)
				}
				if closing {
					break
				}
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), bodies
}

// TestAPIConnResponses drives the publisher's HTTP connection through
// answers split across reads, keep-alive and close, error statuses, a
// malformed answer, a dropped connection and a keep-alive connection the
// server closed while idle: each post reports the right
// status or an error, redials when it must, and stamps the arrival of
// every answer it reads.
func TestAPIConnResponses(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	addr, bodies := scriptedServer(t, [][]string{
		{ok},
		{"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 11\r\n\r\n{\"a\":", "\"bcd\"}"}, // split anywhere
		{"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{ok}, // on a new connection
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{""}, // closed without an answer
		{"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\n{}", closeAfter}, // then an idle close
		{ok}, // the stale keep-alive connection is retried once on a new one
	})
	// As the Publisher does: keep timestamps on for the whole test, not
	// only while a connection that asked for them is open.
	st, stamped := enableRxTimestamps(5 * time.Second)
	defer st.Close()
	if !stamped {
		t.Fatal("the kernel gave no receive timestamps")
	}
	a := &apiConn{addr: addr}
	defer a.close()
	want := []struct {
		status int
		err    bool
	}{{200, false}, {200, false}, {401, false}, {200, false}, {200, true}, {0, true}, {413, false}, {200, false}}
	for i, w := range want {
		body := []byte(`{"n":` + strconv.Itoa(i) + `}`)
		t0 := time.Now()
		status, arrived, err := a.post(addr, []byte("/apps/1/events?x="+strconv.Itoa(i)), body, 2*time.Second)
		t1 := time.Now()
		if (err != nil) != w.err || (!w.err && status != w.status) {
			t.Fatalf("post %d: status %d err %v, want %d (error %v)", i, status, err, w.status, w.err)
		}
		if got := <-bodies; got != "POST /apps/1/events?x="+strconv.Itoa(i)+" "+string(body) {
			t.Fatalf("post %d: server read %q", i, got)
		}
		if status != 0 && (arrived.Before(t0) || arrived.After(t1)) {
			t.Fatalf("post %d: arrival %v outside [%v, %v]", i, arrived, t0, t1)
		}
	}
}

// TestAPIConnAbort cancels a run while a post waits for an answer that
// never comes: the post must return at once, not at its timeout.
func TestAPIConnAbort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c) // read, never answer
			c.Close()
		}
	}()
	a := &apiConn{addr: ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, a.abort)
	defer stop()
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, _, err := a.post(a.addr, []byte("/x"), []byte("{}"), time.Minute)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("post answered without a response")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("post did not return after the abort")
	}
	if _, _, err := a.post(a.addr, []byte("/x"), []byte("{}"), time.Minute); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("post after abort: %v", err)
	}
}

// TestAPIConnBodyBound: an answer with a body of maxResponseBody bytes is
// read whole; one byte more fails the trigger before anything is read.
func TestAPIConnBodyBound(t *testing.T) {
	answer := func(n int) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n" + strings.Repeat("x", n)
	}
	addr, bodies := scriptedServer(t, [][]string{{answer(maxResponseBody)}, {answer(maxResponseBody + 1)}})
	a := &apiConn{addr: addr}
	defer a.close()
	if status, _, err := a.post(addr, []byte("/x"), []byte("{}"), 5*time.Second); err != nil || status != 200 {
		t.Fatalf("body of %d bytes: status %d, %v", maxResponseBody, status, err)
	}
	<-bodies
	if _, _, err := a.post(addr, []byte("/x"), []byte("{}"), 5*time.Second); err == nil {
		t.Fatalf("a body of %d bytes was accepted", maxResponseBody+1)
	}
	<-bodies
	if got := cap(a.buf); got > 2*maxResponseBody {
		t.Fatalf("read buffer grew to %d bytes", got)
	}
}

// TestAPIConnHeadBound: an answer whose status line and headers fill
// maxResponseHead bytes before their blank line is read; one whose head
// runs past that without ending fails the trigger at once, not at the
// deadline, and the read buffer stays near the bound.
func TestAPIConnHeadBound(t *testing.T) {
	const start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: "
	fits := start + strings.Repeat("p", maxResponseHead-len(start)-4) + "\r\n\r\n"
	endless := start + strings.Repeat("p", maxResponseHead+4096)
	// The third reply is never asked for: it keeps the server reading,
	// so the connection stays open after the endless head.
	addr, bodies := scriptedServer(t, [][]string{{fits}, {endless}, {""}})
	a := &apiConn{addr: addr}
	defer a.close()
	if status, _, err := a.post(addr, []byte("/x"), []byte("{}"), 5*time.Second); err != nil || status != 200 {
		t.Fatalf("head of %d bytes: status %d, %v", len(fits), status, err)
	}
	<-bodies
	began := time.Now()
	if _, _, err := a.post(addr, []byte("/x"), []byte("{}"), 40*time.Second); err == nil {
		t.Fatalf("a head of more than %d bytes was accepted", maxResponseHead)
	}
	if waited := time.Since(began); waited > 30*time.Second {
		t.Fatalf("the endless head failed only after %v (the deadline)", waited)
	}
	<-bodies
	if got := cap(a.buf); got > 4*maxResponseHead {
		t.Fatalf("read buffer grew to %d bytes", got)
	}
}
