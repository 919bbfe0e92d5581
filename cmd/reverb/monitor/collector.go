package monitor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/loop"
)

// The collector computes every reverb_* metric when Prometheus scrapes:
// the counting itself happens in the loops, the hub and the broker, which
// own their numbers; the library only formats them.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("reverb_"+name, help, labels, nil)
}

var (
	dConnections   = desc("connections", "Open WebSocket connections of the app on this node.", "app_id")
	dChannels      = desc("channels", "Channels of the app with at least one subscriber on this node.", "app_id")
	dSubscriptions = desc("subscriptions", "Channel subscriptions (socket, channel) of the app on this node.", "app_id")
	dMembers       = desc("presence_members", "Users of the app's presence channels followed by this node, summed over channels.", "app_id")
	dSent          = desc("messages_sent_total", "WebSocket data frames queued to the app's sockets (events, replies, pings).", "app_id")
	dReceived      = desc("messages_received_total", "WebSocket data messages read from the app's sockets.", "app_id")
	dLatency       = desc("delivery_latency_seconds", "From the node accepting an event (HTTP API, client event, another node's message) to its frame being written to a socket; one observation per socket.", "app_id")

	dSlow        = desc("slow_consumer_closes_total", "Sockets closed with 4100 because their unsent backlog passed the per-socket bound.")
	dBudget      = desc("node_budget_closes_total", "Sockets closed because the bytes held for the node's sockets reached the node budget.")
	dHeld        = desc("bytes_held", "Bytes of frames held for sockets that have not yet taken them.")
	dRefusedSub  = desc("refused_subscriptions_total", "Subscriptions refused by the per-socket channel cap.")
	dHeadClose   = desc("head_deadline_closes_total", "Connections closed because their HTTP request head was not complete in time.")
	dRefusedPre  = desc("refused_pre_upgrade_total", "Connections refused because too many were not yet upgraded.")
	dRedisSilent = desc("redis_silent_total", "Redis connections replaced because Redis left a command or PING unanswered past REDIS_LIVENESS.")

	dWhSent    = desc("webhooks_sent_total", "Webhook requests answered with 2xx.")
	dWhFailed  = desc("webhooks_failed_total", "Webhook attempts that failed (non-2xx, connection error, timeout).")
	dWhRetried = desc("webhooks_retried_total", "Webhook retries scheduled.")
	dWhDropped = desc("webhooks_dropped_total", "Webhook batches dropped after the retry window or for a full queue.")
	dWhQueue   = desc("webhook_queue_length", "Webhook events waiting to be sent.")

	dAPIRequests = desc("http_requests_total", "HTTP API requests answered, by endpoint and status.", "endpoint", "status")
	dAPIDuration = desc("http_request_duration_seconds", "HTTP API requests from being read to their response being queued.", "endpoint")

	dClusterQueue     = desc("cluster_publish_queue_length", "Envelopes waiting for Redis.")
	dClusterQueueCap  = desc("cluster_publish_queue_capacity", "Envelopes that may wait for Redis before publishes are dropped.")
	dClusterStateQ    = desc("cluster_state_queue_length", "Presence operations waiting for Redis.")
	dClusterStateQCap = desc("cluster_state_queue_capacity", "Presence operations that may wait for Redis before they are dropped and presence is resynchronised.")
	dClusterPublished = desc("cluster_published_total", "Envelopes Redis accepted from this node.")
	dClusterReceived  = desc("cluster_received_total", "Envelopes of other nodes handed to this node's hub.")
	dClusterDropped   = desc("cluster_dropped_total", "Envelopes that never reached Redis (queue full, refused, connection failed mid-batch).")
	dClusterReconn    = desc("cluster_reconnects_total", "Redis connections (publisher, pub/sub, state) lost and restored.")
	dClusterUp        = desc("cluster_connected", "1 while the Redis pub/sub connection is up.")
	dClusterLatency   = desc("cluster_latency_seconds", "Cross-node latency: from another node queuing a message to this node receiving it (includes the clock difference of the two machines).")
	dClusterPeers     = desc("cluster_peer_connections", "Open WebSocket connections of other nodes, as their last heartbeat reported.", "node", "app_id")

	dInfo = desc("build_info", "Always 1; the labels say which build and node this is.", "version", "node")
)

type collector struct{ m *Monitor }

func newCollector(m *Monitor) *collector { return &collector{m} }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		dConnections, dChannels, dSubscriptions, dMembers, dSent, dReceived, dLatency,
		dSlow, dBudget, dHeld, dRefusedSub, dHeadClose, dRefusedPre, dRedisSilent,
		dWhSent, dWhFailed, dWhRetried, dWhDropped, dWhQueue,
		dAPIRequests, dAPIDuration, dInfo,
	} {
		ch <- d
	}
	if c.m.broker != nil {
		for _, d := range []*prometheus.Desc{
			dClusterQueue, dClusterQueueCap, dClusterStateQ, dClusterStateQCap, dClusterPublished, dClusterReceived, dClusterDropped,
			dClusterReconn, dClusterUp, dClusterLatency, dClusterPeers,
		} {
			ch <- d
		}
	}
}

// promBuckets turns per-bucket counts into Prometheus' cumulative buckets
// (the +Inf bucket is the total count, which the library adds).
func promBuckets(h hub.Histogram) map[float64]uint64 {
	b := make(map[float64]uint64, len(hub.LatencyBuckets))
	var cum uint64
	for i, ub := range hub.LatencyBuckets {
		cum += h.Counts[i]
		b[ub] = cum
	}
	return b
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	hist := func(d *prometheus.Desc, h hub.Histogram, labels ...string) {
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, promBuckets(h), labels...)
	}

	gauge(dInfo, 1, m.cfg.Version, m.node)
	m.srv.Hub().AppStats(func(s hub.AppStat) {
		id := s.App.ID
		gauge(dConnections, float64(s.Connections), id)
		gauge(dChannels, float64(s.Channels), id)
		gauge(dSubscriptions, float64(s.Subscriptions), id)
		gauge(dMembers, float64(s.Members), id)
	})
	m.srv.AppMetrics(func(a loop.AppMetrics) {
		id := a.App.ID
		counter(dSent, a.Sent, id)
		counter(dReceived, a.Received, id)
		hist(dLatency, a.Latency, id)
	})

	k := m.srv.Hub().Counters()
	counter(dSlow, k.SlowConsumerCloses.Load())
	counter(dBudget, k.NodeBudgetCloses.Load())
	gauge(dHeld, float64(k.BytesHeld.Load()))
	counter(dRefusedSub, k.RefusedSubscriptions.Load())
	counter(dHeadClose, k.HeadDeadlineCloses.Load())
	counter(dRefusedPre, k.RefusedPreUpgrade.Load())
	counter(dRedisSilent, k.RedisSilent.Load())
	counter(dWhSent, k.WebhooksSent.Load())
	counter(dWhFailed, k.WebhooksFailed.Load())
	counter(dWhRetried, k.WebhooksRetried.Load())
	counter(dWhDropped, k.WebhooksDropped.Load())
	gauge(dWhQueue, float64(k.WebhookQueue.Load()))

	m.srv.APIMetrics(func(a loop.APIMetric) {
		counter(dAPIRequests, a.Count, a.Endpoint, strconv.Itoa(a.Status))
	}, func(endpoint string, h hub.Histogram) {
		hist(dAPIDuration, h, endpoint)
	})

	if b := m.broker; b != nil {
		bm := b.Metrics()
		gauge(dClusterQueue, float64(bm.QueueLength))
		gauge(dClusterQueueCap, float64(bm.QueueCapacity))
		gauge(dClusterStateQ, float64(bm.StateQueueLength))
		gauge(dClusterStateQCap, float64(bm.StateQueueCapacity))
		counter(dClusterPublished, bm.Published)
		counter(dClusterReceived, bm.Received)
		counter(dClusterDropped, bm.Dropped)
		counter(dClusterReconn, bm.Reconnects)
		up := 0.0
		if bm.Connected {
			up = 1
		}
		gauge(dClusterUp, up)
		hist(dClusterLatency, bm.Latency)
		type peer struct {
			node, app string
			n         int64
		}
		var peers []peer // not sent while the broker's table is locked
		b.PeerConnections(func(node, appID string, n int64) {
			if appID != "" {
				peers = append(peers, peer{node, appID, n})
			}
		})
		for _, p := range peers {
			gauge(dClusterPeers, float64(p.n), p.node, p.app)
		}
	}
}
