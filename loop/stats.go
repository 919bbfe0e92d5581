package loop

import (
	"sync/atomic"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
)

// Metrics counted by the loops. Each loop counts in plain fields of its own
// (loopStats, no atomics, no allocations per receiver) and folds them into
// the server-wide atomics (Stats) after each flush that changed them: one
// atomic add per touched app and histogram bucket per flush, however many
// sockets the flush wrote to.
//
// Delivery latency: the hub stamps each event once when the node accepts it
// (hub.Monotime in the delivery) and Drain records one hub.Delivered per
// (event, loop, drain slice) with the number of sockets handed its frame.
// After the flush that wrote those sockets the loop observes now − accepted
// once, with that number as the weight. So every delivery is counted, and
// each is given the time at which the last socket of its slice was written:
// an upper bound for the sockets written earlier in the same slice, exact
// for the last one. A slice is at most drainBudget sockets (drainSlice of
// time), so the bound is tight where it matters, and the cost is one clock
// read per flush instead of one per socket.

// appTotals are one app's server-wide counters.
type appTotals struct {
	sent, received atomic.Uint64
	latency        hub.LatencyHistogram
}

// loopApp is one app's counts on one loop since the last fold.
type loopApp struct {
	sent, received uint64
	lat            [hub.NumBuckets]uint64
	latSumNs       int64
	touched        bool
}

// loopStats is a loop's own counts. Loop only.
type loopStats struct {
	apps    []loopApp
	touched []int32 // indexes of apps with counts since the last fold
}

func (st *loopStats) app(i int) *loopApp {
	a := &st.apps[i]
	if !a.touched {
		a.touched = true
		st.touched = append(st.touched, int32(i))
	}
	return a
}

// countSent counts a frame queued for a WebSocket of an app. Loop only.
func (lc *loopCtx) countSent(cn *conn) {
	if cn.Open() {
		lc.stats.app(cn.AppIndex()).sent++
	}
}

// countReceived counts a data message read from a socket. Loop only.
func (lc *loopCtx) countReceived(cn *conn) {
	lc.stats.app(cn.AppIndex()).received++
}

// foldStats observes the deliveries the flush just wrote and adds the
// loop's counts to the server's. Called at the end of every flush (before
// the hub's ResetScratch, which forgets the deliveries); it does
// nothing when nothing was counted. Loop only.
func (lc *loopCtx) foldStats() {
	st := &lc.stats
	if ds := lc.local.Delivered(); len(ds) > 0 {
		now := hub.Monotime()
		for _, d := range ds {
			a := st.app(int(d.App))
			ns := now - d.At
			a.lat[hub.BucketOf(ns)] += uint64(d.N)
			a.latSumNs += ns * int64(d.N)
		}
	}
	if len(st.touched) == 0 {
		return
	}
	tot := lc.srv.totals
	for _, i := range st.touched {
		a, t := &st.apps[i], &tot[i]
		if a.sent > 0 {
			t.sent.Add(a.sent)
		}
		if a.received > 0 {
			t.received.Add(a.received)
		}
		if a.latSumNs != 0 {
			t.latency.AddSum(a.latSumNs)
		}
		for b, n := range a.lat {
			if n > 0 {
				t.latency.AddBucket(b, n)
			}
		}
		*a = loopApp{}
	}
	st.touched = st.touched[:0]
}

// AppMetrics are one app's counters on this server since it started.
type AppMetrics struct {
	App *pusher.App
	// Sent counts frames queued to the app's WebSockets (events, replies,
	// pings); Received counts data messages read from them.
	Sent, Received uint64
	// Latency is the delivery latency of events (see the comment at the top
	// of stats.go).
	Latency hub.Histogram
}

// AppMetrics calls visit once per app in configuration order. Any goroutine.
func (s *Server) AppMetrics(visit func(AppMetrics)) {
	for i, a := range s.cfg.Apps.All() {
		t := &s.totals[i]
		visit(AppMetrics{App: a, Sent: t.sent.Load(), Received: t.received.Load(), Latency: t.latency.Snapshot()})
	}
}

// API endpoints, as pusher.RouteName names them, in the order APIMetrics
// reports them.
var apiEndpoints = [...]string{"events", "batch_events", "channels", "channel", "channel_users", "connections", "terminate_connections", "up", "other"}

func endpointIndex(name string) int {
	for i, e := range apiEndpoints {
		if e == name {
			return i
		}
	}
	return len(apiEndpoints) - 1
}

// apiStats counts HTTP API requests by endpoint and status, with a
// duration histogram per endpoint. API requests are not the fan-out hot
// path: each costs a few atomic adds.
type apiStats struct {
	status [len(apiEndpoints)][600]atomic.Uint64
	dur    [len(apiEndpoints)]hub.LatencyHistogram
}

// countAPI records one answered request: its path (after the prefix), its
// status, and when it was read (hub.Monotime). Any goroutine.
func (s *Server) countAPI(path []byte, status int, start int64) {
	e := endpointIndex(pusher.RouteName(path))
	if status < 100 || status >= 600 {
		status = 599
	}
	s.apiStats.status[e][status].Add(1)
	s.apiStats.dur[e].Observe(hub.Monotime()-start, 1)
}

// APIMetric is the requests of one endpoint answered with one status.
type APIMetric struct {
	Endpoint string
	Status   int
	Count    uint64
}

// APIMetrics calls visit for every (endpoint, status) with requests, and
// dur for every endpoint with its duration histogram (from the request
// being read to its response being queued, waiting for a slot and the
// trip back to the loop included). Any goroutine.
func (s *Server) APIMetrics(visit func(APIMetric), dur func(endpoint string, h hub.Histogram)) {
	for e, name := range apiEndpoints {
		for st := range s.apiStats.status[e] {
			if n := s.apiStats.status[e][st].Load(); n > 0 {
				visit(APIMetric{Endpoint: name, Status: st, Count: n})
			}
		}
		if h := s.apiStats.dur[e].Snapshot(); h.Count > 0 {
			dur(name, h)
		}
	}
}
