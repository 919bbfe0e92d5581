package cluster_test

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCrossNodeDelivery measures one event published on node A's hub
// until a WebSocket client on node B has read it, through Redis. Allocations
// count both nodes, the Redis client library and the test client.
func BenchmarkCrossNodeDelivery(b *testing.B) {
	r, nodes := startCluster(b, 2)
	cl := nodes[1].connect("b1")
	cl.subscribe("bench")
	waitNumSub(b, r, redisChannel("bench"), 1)
	h := nodes[0].srv.Hub()
	app := h.Apps().ByID(appID)
	channels := []string{"bench"}
	data := []byte(`{"id":42,"status":"shipped"}`)
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		h.Publish(app, channels, "tick", data, "")
		if _, ok := cl.next(ioTimeout); !ok {
			b.Fatal("event did not arrive")
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCrossNodeThroughput publishes back to back on A and waits until B
// has read every event: events per second through one publisher and one
// subscriber, pipelined.
func BenchmarkCrossNodeThroughput(b *testing.B) {
	r, nodes := startCluster(b, 2)
	cl := nodes[1].connect("b1")
	cl.subscribe("bench")
	waitNumSub(b, r, redisChannel("bench"), 1)
	h := nodes[0].srv.Hub()
	app := h.Apps().ByID(appID)
	channels := []string{"bench"}
	const burst = 500 // below the test client's buffer and the node's queue
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		for i := range burst {
			h.Publish(app, channels, "tick", []byte(strconv.Itoa(i)), "")
		}
		for range burst {
			if _, ok := cl.next(ioTimeout); !ok {
				b.Fatal("event did not arrive")
			}
		}
		n += burst
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
