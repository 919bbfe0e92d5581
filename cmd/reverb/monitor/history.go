package monitor

import (
	"encoding/json"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/loop"
)

// The dashboard shows rates and the last minute of delivery latency, which
// need the counters as they were a second and a minute ago: the sampler
// keeps one snapshot per second for the last minute.

const (
	sampleEvery = time.Second
	keepSamples = 61 // a minute of differences
)

type appSample struct {
	sent, received uint64
	latency        hub.Histogram
}

type sample struct {
	at   time.Time
	apps []appSample
}

type history struct {
	srv *loop.Server

	mu      sync.Mutex
	samples []sample // oldest first
}

func newHistory(srv *loop.Server) *history {
	h := &history{srv: srv}
	h.take(time.Now())
	return h
}

func (h *history) run(stop <-chan struct{}) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			h.take(now)
		}
	}
}

func (h *history) take(now time.Time) {
	s := sample{at: now}
	h.srv.AppMetrics(func(a loop.AppMetrics) {
		s.apps = append(s.apps, appSample{sent: a.Sent, received: a.Received, latency: a.Latency})
	})
	h.mu.Lock()
	if len(h.samples) == keepSamples {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:keepSamples-1]
	}
	h.samples = append(h.samples, s)
	h.mu.Unlock()
}

// window returns the newest sample, the one before it and the oldest kept
// (up to a minute old).
func (h *history) window() (last, prev, first sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.samples)
	last, prev, first = h.samples[n-1], h.samples[max(n-2, 0)], h.samples[0]
	return
}

// Stats is the dashboard's JSON (GET /api/stats).
type Stats struct {
	Node      string      `json:"node"`
	Version   string      `json:"version"`
	Clustered bool        `json:"clustered"`
	Time      int64       `json:"time_ms"`
	Apps      []AppStats  `json:"apps"`
	Bounds    []float64   `json:"latency_bounds"` // seconds; the last bucket is +Inf
	Counters  Counters    `json:"counters"`
	Nodes     []NodeStats `json:"nodes"`
	Cluster   *Cluster    `json:"cluster,omitempty"`
}

// AppStats is one app on this node.
type AppStats struct {
	ID            string  `json:"id"`
	Connections   int64   `json:"connections"`
	Channels      int64   `json:"channels"`
	Subscriptions int64   `json:"subscriptions"`
	Members       int64   `json:"presence_members"`
	Sent          uint64  `json:"messages_sent"`
	Received      uint64  `json:"messages_received"`
	SentRate      float64 `json:"sent_per_second"`
	ReceivedRate  float64 `json:"received_per_second"`
	Latency       Latency `json:"latency"`
}

// Latency is the delivery latency over the last minute.
type Latency struct {
	Counts  []uint64 `json:"counts"` // per bucket of latency_bounds, then +Inf
	Count   uint64   `json:"count"`
	Seconds float64  `json:"window_seconds"`
	P50     float64  `json:"p50"` // seconds; NaN-free: 0 without data
	P90     float64  `json:"p90"`
	P99     float64  `json:"p99"`
	Mean    float64  `json:"mean"`
}

// Counters are the node's bound and webhook counters.
type Counters struct {
	SlowConsumerCloses   uint64 `json:"slow_consumer_closes"`
	NodeBudgetCloses     uint64 `json:"node_budget_closes"`
	BytesHeld            int64  `json:"bytes_held"`
	RefusedSubscriptions uint64 `json:"refused_subscriptions"`
	WebhooksSent         uint64 `json:"webhooks_sent"`
	WebhooksFailed       uint64 `json:"webhooks_failed"`
	WebhooksRetried      uint64 `json:"webhooks_retried"`
	WebhooksDropped      uint64 `json:"webhooks_dropped"`
	WebhookQueue         int64  `json:"webhook_queue"`
}

// NodeStats is one node's figures per app: this node's own, the others'
// as their last heartbeat (once a second) reported them.
type NodeStats struct {
	ID          string             `json:"id"`
	Self        bool               `json:"self"`
	Connections map[string]int64   `json:"connections"`
	Apps        map[string]NodeApp `json:"apps,omitempty"`
}

// Cluster is the Redis bridge as this node sees it.
type Cluster struct {
	Connected  bool    `json:"connected"`
	Queue      int     `json:"publish_queue"`
	Dropped    uint64  `json:"dropped"`
	Reconnects uint64  `json:"reconnects"`
	Latency    Latency `json:"latency"` // since start
}

func (m *Monitor) stats() Stats {
	st := Stats{
		Node:      m.node,
		Version:   m.cfg.Version,
		Clustered: m.broker != nil,
		Time:      time.Now().UnixMilli(),
		Bounds:    hub.LatencyBuckets[:],
	}
	st.Apps = m.appStats()
	st.Nodes = append(st.Nodes, NodeStats{ID: m.node, Self: true, Connections: map[string]int64{}, Apps: nodeApps(st.Apps)})
	for _, a := range st.Apps {
		st.Nodes[0].Connections[a.ID] = a.Connections
	}
	m.statsRest(&st)
	return st
}

// appStats is this node's apps with their rates and last-minute latency.
func (m *Monitor) appStats() []AppStats {
	var apps []AppStats
	last, prev, first := m.hist.window()
	i := 0
	m.srv.Hub().AppStats(func(s hub.AppStat) {
		a := AppStats{
			ID:            s.App.ID,
			Connections:   s.Connections,
			Channels:      s.Channels,
			Subscriptions: s.Subscriptions,
			Members:       s.Members,
		}
		if i < len(last.apps) {
			l := last.apps[i]
			a.Sent, a.Received = l.sent, l.received
			if dt := last.at.Sub(prev.at).Seconds(); dt > 0 && i < len(prev.apps) {
				a.SentRate = float64(l.sent-prev.apps[i].sent) / dt
				a.ReceivedRate = float64(l.received-prev.apps[i].received) / dt
			}
			var base hub.Histogram
			if i < len(first.apps) {
				base = first.apps[i].latency
			}
			a.Latency = latencyOf(l.latency, base, last.at.Sub(first.at).Seconds())
		}
		apps = append(apps, a)
		i++
	})
	return apps
}

// NodeApp is one app on one node, as the node's dashboard shows it; each
// node sends its own in its heartbeat (cluster.Broker.SetStatsExtra).
type NodeApp struct {
	Channels     int64   `json:"channels"`
	SentRate     float64 `json:"sent_per_second"`
	ReceivedRate float64 `json:"received_per_second"`
	P50          float64 `json:"p50"`
	P99          float64 `json:"p99"`
	Deliveries   uint64  `json:"deliveries"` // in the last minute
}

func nodeApps(apps []AppStats) map[string]NodeApp {
	out := make(map[string]NodeApp, len(apps))
	for _, a := range apps {
		out[a.ID] = NodeApp{
			Channels: a.Channels, SentRate: a.SentRate, ReceivedRate: a.ReceivedRate,
			P50: a.Latency.P50, P99: a.Latency.P99, Deliveries: a.Latency.Count,
		}
	}
	return out
}

// appendNodeApps appends this node's NodeApp per app id as one JSON object
// (the heartbeat's extra; stats goroutine, once a second).
func (m *Monitor) appendNodeApps(dst []byte) []byte {
	b, err := json.Marshal(nodeApps(m.appStats()))
	if err != nil {
		return append(dst, "{}"...)
	}
	return append(dst, b...)
}

func (m *Monitor) statsRest(st *Stats) {
	k := m.srv.Hub().Counters()
	st.Counters = Counters{
		SlowConsumerCloses:   k.SlowConsumerCloses.Load(),
		NodeBudgetCloses:     k.NodeBudgetCloses.Load(),
		BytesHeld:            k.BytesHeld.Load(),
		RefusedSubscriptions: k.RefusedSubscriptions.Load(),
		WebhooksSent:         k.WebhooksSent.Load(),
		WebhooksFailed:       k.WebhooksFailed.Load(),
		WebhooksRetried:      k.WebhooksRetried.Load(),
		WebhooksDropped:      k.WebhooksDropped.Load(),
		WebhookQueue:         k.WebhookQueue.Load(),
	}
	if b := m.broker; b != nil {
		bm := b.Metrics()
		st.Cluster = &Cluster{
			Connected:  bm.Connected,
			Queue:      bm.QueueLength,
			Dropped:    bm.Dropped,
			Reconnects: bm.Reconnects,
			Latency:    latencyOf(bm.Latency, hub.Histogram{}, 0),
		}
		peers := map[string]*NodeStats{}
		b.PeerConnections(func(node, appID string, n int64) {
			p := peers[node]
			if p == nil {
				p = &NodeStats{ID: node, Connections: map[string]int64{}}
				peers[node] = p
			}
			if appID != "" {
				p.Connections[appID] = n
			}
		})
		b.PeerExtra(func(node string, x []byte) {
			if p := peers[node]; p != nil && len(x) > 0 {
				_ = json.Unmarshal(x, &p.Apps) // a peer's figures, shown as sent
			}
		})
		for _, p := range peers {
			st.Nodes = append(st.Nodes, *p)
		}
		sortNodes(st.Nodes[1:])
	}
}

// latencyOf is the histogram cur − base with its percentiles.
func latencyOf(cur, base hub.Histogram, window float64) Latency {
	l := Latency{Counts: make([]uint64, hub.NumBuckets), Seconds: window}
	for i := range l.Counts {
		l.Counts[i] = cur.Counts[i] - base.Counts[i]
		l.Count += l.Counts[i]
	}
	if l.Count == 0 {
		return l
	}
	l.Mean = (cur.Sum - base.Sum) / float64(l.Count)
	l.P50 = quantile(0.50, l.Counts, l.Count)
	l.P90 = quantile(0.90, l.Counts, l.Count)
	l.P99 = quantile(0.99, l.Counts, l.Count)
	return l
}

// quantile estimates the q-quantile from bucket counts the way Prometheus'
// histogram_quantile does: linear within the bucket that holds it; a
// quantile in the +Inf bucket is reported as the largest finite bound.
func quantile(q float64, counts []uint64, total uint64) float64 {
	rank := q * float64(total)
	var cum float64
	for i, c := range counts {
		if cum+float64(c) >= rank && c > 0 {
			if i == len(hub.LatencyBuckets) {
				return hub.LatencyBuckets[i-1]
			}
			lo := 0.0
			if i > 0 {
				lo = hub.LatencyBuckets[i-1]
			}
			hi := hub.LatencyBuckets[i]
			return lo + (hi-lo)*math.Max(0, rank-cum)/float64(c)
		}
		cum += float64(c)
	}
	return hub.LatencyBuckets[len(hub.LatencyBuckets)-1]
}

func (m *Monitor) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(m.stats())
}
