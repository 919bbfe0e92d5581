package cluster_test

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchCluster starts three nodes with one subscriber of "bench" on each of
// B and C, and returns those clients and a publish function on A's hub.
func benchCluster(b *testing.B) (clients []*wsClient, publish func(data []byte)) {
	r, nodes := startCluster(b, 3)
	for _, n := range nodes[1:] {
		cl := n.connect(n.name + "1")
		cl.subscribe("bench")
		clients = append(clients, cl)
	}
	waitNumSub(b, r, redisChannel("bench"), 2)
	h := nodes[0].srv.Hub()
	app := h.Apps().ByID(appID)
	channels := []string{"bench"}
	return clients, func(data []byte) { h.Publish(app, channels, "tick", data, "") }
}

// BenchmarkCrossNodeDelivery measures one event published on node A's hub
// until WebSocket clients on nodes B and C have both read it, through
// Redis. Allocations count all three nodes, the Redis client library and
// the test clients.
func BenchmarkCrossNodeDelivery(b *testing.B) {
	clients, publish := benchCluster(b)
	data := []byte(`{"id":42,"status":"shipped"}`)
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		publish(data)
		for _, cl := range clients {
			if _, ok := cl.next(ioTimeout); !ok {
				b.Fatal("event did not arrive")
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCrossNodeThroughput publishes back to back on A and waits until
// the clients on B and C have read every event: events per second through
// one publisher to two other nodes, pipelined.
func BenchmarkCrossNodeThroughput(b *testing.B) {
	clients, publish := benchCluster(b)
	const burst = 500 // below the test client's buffer and the node's queue
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		for i := range burst {
			publish([]byte(strconv.Itoa(i)))
		}
		for _, cl := range clients {
			for range burst {
				if _, ok := cl.next(ioTimeout); !ok {
					b.Fatal("event did not arrive")
				}
			}
		}
		n += burst
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
