package hub

import (
	"sync/atomic"
	"time"

	"github.com/goreverb/reverb/pusher"
)

// What the hub gives the metrics: when each event was accepted, how many
// sockets each loop handed it to, and per-app gauges read at scrape time.
// The fan-out itself touches no atomic for any of it: Drain adds to plain
// fields of the loop-owned batch and keeps one Delivered per (event, drain
// slice), which the loop folds into its histograms after its flush.

var monoBase = time.Now()

// Monotime is a monotonic clock in nanoseconds since the process started.
// Any goroutine.
func Monotime() int64 { return int64(time.Since(monoBase)) }

// Delivered is one event handed to N sockets of a loop within one drain
// slice: At is the Monotime the node accepted it (HTTP API, client event or
// another node's message), App its app's index in Apps().All().
type Delivered struct {
	At  int64
	N   int32
	App int32
}

// localStats is the loop-owned list of deliveries since the loop last took
// them.
type localStats struct {
	delivered []Delivered
}

// noteRun records the sockets each delivery of run reached in this slice
// and resets the per-slice counts. Loop only.
func (l *Local) noteRun(run []delivery) {
	for i := range run {
		if d := &run[i]; d.sent > 0 {
			l.stats.delivered = append(l.stats.delivered, Delivered{At: d.at, N: d.sent, App: int32(d.ch.as.idx)})
			d.sent = 0
		}
	}
}

// Delivered returns the deliveries recorded since the last ResetScratch.
// The loop calls it after the flush that handed their frames to the
// kernel, before ResetScratch. Loop only.
func (l *Local) Delivered() []Delivered { return l.stats.delivered }

func (l *Local) resetDelivered() {
	if cap(l.stats.delivered) > 4096 {
		l.stats.delivered = nil
	}
	l.stats.delivered = l.stats.delivered[:0]
}

// AppIndex is the index of the socket's app in Apps().All() (only for an
// open session).
func (s *Session) AppIndex() int { return s.as.idx }

// AppStat is one app's state on this node, read at scrape time.
type AppStat struct {
	App *pusher.App
	// Connections are the app's established sockets on this node.
	Connections int64
	// Channels are the app's channels with a subscriber on this node, and
	// Subscriptions the (socket, channel) pairs.
	Channels, Subscriptions int64
	// Members counts the users of those channels that are presence
	// channels (each node holds the cluster-wide member list), summed over
	// channels.
	Members int64
}

// AppStats calls visit once per configured app, in configuration order. It
// locks each shard of each app briefly (once per scrape, not per event).
// Any goroutine.
func (h *Hub) AppStats(visit func(AppStat)) {
	for _, a := range h.byID.All() {
		as := h.apps[a]
		st := AppStat{App: a, Connections: as.conns.Load()}
		for i := range as.shards {
			sh := &as.shards[i]
			sh.mu.Lock()
			for _, ch := range sh.chans {
				if ch.subs > 0 {
					st.Channels++
					st.Subscriptions += int64(ch.subs)
					st.Members += int64(len(ch.members))
				}
			}
			sh.mu.Unlock()
		}
		visit(st)
	}
}

// LatencyBuckets are the upper bounds, in seconds, of the buckets of the
// delivery-latency and HTTP API duration histograms (the +Inf bucket is
// implicit).
var LatencyBuckets = [...]float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// NumBuckets is len(LatencyBuckets) + 1 (the +Inf bucket).
const NumBuckets = len(LatencyBuckets) + 1

// latencyNanos are LatencyBuckets in nanoseconds.
var latencyNanos = func() (b [len(LatencyBuckets)]int64) {
	for i, s := range LatencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// BucketOf returns the bucket of a duration in nanoseconds.
func BucketOf(ns int64) int {
	for i, ub := range latencyNanos {
		if ns <= ub {
			return i
		}
	}
	return len(latencyNanos)
}

// Histogram is a cumulative histogram snapshot: per-bucket counts (not
// cumulative), their total and the sum of observations in seconds.
type Histogram struct {
	Counts [NumBuckets]uint64
	Count  uint64
	Sum    float64
}

// LatencyHistogram is a histogram over LatencyBuckets that any goroutine
// may add to and read. Its owners add per batch, not per socket.
type LatencyHistogram struct {
	counts [NumBuckets]atomic.Uint64
	sumNs  atomic.Int64
}

// Observe adds n observations of ns nanoseconds (negative counts as 0).
func (h *LatencyHistogram) Observe(ns int64, n uint64) {
	ns = max(ns, 0)
	h.counts[BucketOf(ns)].Add(n)
	h.sumNs.Add(ns * int64(n))
}

// AddBucket adds n observations to bucket b, for owners that count in
// fields of their own and fold them in.
func (h *LatencyHistogram) AddBucket(b int, n uint64) { h.counts[b].Add(n) }

// AddSum adds ns nanoseconds to the sum of observations.
func (h *LatencyHistogram) AddSum(ns int64) { h.sumNs.Add(ns) }

// Snapshot reads the histogram. Any goroutine.
func (h *LatencyHistogram) Snapshot() Histogram {
	var s Histogram
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = float64(h.sumNs.Load()) / 1e9
	return s
}
