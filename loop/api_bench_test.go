package loop_test

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goreverb/reverb/loop"
)

// BenchmarkAPI measures HTTP API requests on one keep-alive connection to a
// one-loop server: one request per round trip, and 16 pipelined in one
// write. ns/op is per request. The client reads fixed-size responses
// without parsing them, so the server dominates the time.
func BenchmarkAPI(b *testing.B) {
	for _, mode := range []struct {
		name  string
		async bool
	}{{"inline", false}, {"async", true}} {
		for _, depth := range []int{1, 16} {
			b.Run(mode.name+"/depth="+strconv.Itoa(depth), func(b *testing.B) {
				s := startDefault(b, func(c *loop.Config) {
					c.Loops = 1
					c.AsyncAPI = mode.async
				})
				req := s.signedRequest("GET", "/apps/"+testAppID+"/connections", nil, nil, "")
				benchAPI(b, s, req, depth)
			})
		}
	}
}

func benchAPI(b *testing.B, s *testServer, req string, depth int) {
	h := s.httpConn(b)
	h.write(req)
	resp, body := h.read()
	if resp.StatusCode != 200 || !bytes.Equal(body, []byte(`{"connections":0}`)) {
		b.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	// The responses are all alike; measure one to read the rest by size.
	h.write(req)
	h.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	one := make([]byte, 4096)
	n, err := h.conn.Read(one)
	if err != nil || !bytes.HasSuffix(one[:n], body) {
		b.Fatalf("sizing read: %v %q", err, one[:n])
	}
	size := n
	batch := []byte(strings.Repeat(req, depth))
	in := make([]byte, size*depth)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		h.conn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := h.conn.Write(batch); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(h.conn, in); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.HasSuffix(in, body) {
		b.Fatalf("last response: %q", in[len(in)-size:])
	}
}
