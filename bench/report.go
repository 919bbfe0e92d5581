//go:build linux

package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of one run, printed as the JSON result line. Only
// the section of the run's scenario is set among Fanout, Whisper, Churn and
// HTTP. CPU figures are seconds; rates are per second; sizes KiB.
type Result struct {
	Scenario string        `json:"scenario"`
	Target   string        `json:"target"`
	Started  time.Time     `json:"started"`
	Params   Params        `json:"params"`
	Conns    ConnResult    `json:"conns"`
	Hold     *HoldResult   `json:"hold,omitempty"`
	Server   *ServerResult `json:"server,omitempty"`
	Client   ClientResult  `json:"client"`
	Fanout   *Deliveries   `json:"fanout,omitempty"`
	Whisper  *Deliveries   `json:"whisper,omitempty"`
	Churn    *ChurnResult  `json:"churn,omitempty"`
	HTTP     *HTTPResult   `json:"http,omitempty"`
	ElapsedS float64       `json:"elapsed_s"`
}

// Params echoes the effective configuration.
type Params struct {
	Conns       int     `json:"conns"`
	Channels    int     `json:"channels"`
	ChannelType string  `json:"channel_type"`
	Rate        float64 `json:"rate"`
	DurationS   float64 `json:"duration_s"`
	Ramp        float64 `json:"ramp"`
	Group       int     `json:"group,omitempty"`
	Workers     int     `json:"workers"`
	Loops       int     `json:"loops_per_worker"`
	SrcIPs      int     `json:"src_ips"`
	Size        int     `json:"size"`
	HTTPConns   int     `json:"http_conns"`
	PollGapMS   float64 `json:"poll_gap_ms,omitempty"`
}

// ConnResult describes the connection phase and connection health.
type ConnResult struct {
	Planned    int               `json:"planned"`
	Subscribed uint64            `json:"subscribed"`
	Failed     uint64            `json:"failed"`
	Fails      map[string]uint64 `json:"fails,omitempty"`
	// Dropped counts subscribed sockets the server closed (slow-consumer
	// closes such as 4100 included), by code in CloseCodes.
	Dropped     uint64         `json:"dropped"`
	CloseCodes  map[int]uint64 `json:"close_codes,omitempty"`
	ErrorCodes  map[int]uint64 `json:"error_codes,omitempty"`
	ConnectTime LatencySummary `json:"connect_time"`
	// ReadyS is the time from start until every connection settled;
	// PerSec the resulting connection rate.
	ReadyS float64 `json:"ready_s"`
	PerSec float64 `json:"per_s"`
}

// HoldResult is the idle phase of --hold: every socket subscribed and
// quiet but for the server's pings and the harness's pongs.
type HoldResult struct {
	Seconds float64 `json:"seconds"`
	// Pings answered and subscribed sockets closed by the server during
	// the hold; Open the sockets open at its end.
	Pings   uint64 `json:"pings"`
	Dropped uint64 `json:"dropped"`
	Open    int64  `json:"open"`
	// ServerCPUS is the CPU time of every --server-pid process over the
	// hold; ServerCPUPct that as a share of one core. ClientCPU* the same
	// for the harness (workers and coordinator).
	ServerCPUS   float64 `json:"server_cpu_s"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	ClientCPUS   float64 `json:"client_cpu_s"`
	ClientCPUPct float64 `json:"client_cpu_pct"`
	ServerRSSKiB int64   `json:"server_rss_kib"`
}

// ServerResult is what /proc says about the server processes.
type ServerResult struct {
	PIDs        []int `json:"pids"`
	RSSStartKiB int64 `json:"rss_start_kib"`
	RSSReadyKiB int64 `json:"rss_ready_kib"`
	RSSEndKiB   int64 `json:"rss_end_kib"`
	RSSMaxKiB   int64 `json:"rss_max_kib"`
	// KiBPerConn is (ready - start) RSS per subscribed connection.
	KiBPerConn float64 `json:"kib_per_conn"`
	// ConnectCPUS is CPU spent while connecting; CPUS and CPUPct cover
	// the measured phase (from "go" to the end of draining).
	ConnectCPUS float64 `json:"connect_cpu_s"`
	CPUS        float64 `json:"cpu_s"`
	CPUPct      float64 `json:"cpu_pct"`
	// CPUPerMillion is server CPU seconds per million deliveries.
	CPUPerMillion float64 `json:"cpu_s_per_million,omitempty"`
}

// ClientResult is the harness's own cost, so a reader can tell whether the
// client was the bottleneck.
type ClientResult struct {
	Workers int `json:"workers"`
	Loops   int `json:"loops_per_worker"`
	// CPUS is workers + coordinator over the measured phase.
	CPUS         float64 `json:"cpu_s"`
	CPUPct       float64 `json:"cpu_pct"`
	WorkerCPUS   float64 `json:"worker_cpu_s"`
	CoordCPUS    float64 `json:"coordinator_cpu_s"`
	USPerDeliver float64 `json:"us_per_delivery,omitempty"`
	RSSKiB       int64   `json:"rss_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
	// Nice is the workers' nice value (--worker-nice), when not 0.
	Nice int `json:"nice,omitempty"`
}

// Deliveries is the fanout or whisper outcome.
type Deliveries struct {
	Publish *PublishSummary `json:"publish,omitempty"`
	// Sent is client events sent (whisper).
	Sent     uint64  `json:"sent,omitempty"`
	SentPerS float64 `json:"sent_per_s,omitempty"`
	Expected uint64  `json:"expected"`
	Received uint64  `json:"received"`
	Lost     uint64  `json:"lost"`
	LossPct  float64 `json:"loss_pct"`
	Dup      uint64  `json:"dup"`
	Stray    uint64  `json:"stray"`
	PerSec   float64 `json:"deliveries_per_s"`
	// Latency is trigger (or whisper send) to receipt.
	Latency LatencySummary `json:"latency"`
}

// PublishSummary describes the HTTP triggers of one publish phase.
type PublishSummary struct {
	TargetRate float64           `json:"target_rate"`
	Achieved   float64           `json:"achieved_rate"`
	Sent       uint64            `json:"sent"`
	OK         uint64            `json:"ok"`
	Errors     map[string]uint64 `json:"errors,omitempty"`
	Late       uint64            `json:"late"`
	HTTP       LatencySummary    `json:"http_latency"`
	// HTTPSocket is the same triggers timed to the response's arrival at
	// the publisher's socket (kernel receive timestamp): what the server
	// and the network took, without the publisher's own wait for a CPU.
	HTTPSocket LatencySummary `json:"http_latency_at_socket"`
	// ServerCPUS is server CPU during the phase (with --server-pid) and
	// ServerUSPerReq that divided by the triggers.
	ServerCPUS     float64 `json:"server_cpu_s,omitempty"`
	ServerUSPerReq float64 `json:"server_us_per_trigger,omitempty"`
}

// ChurnResult is the churn outcome.
type ChurnResult struct {
	Cycles    uint64         `json:"cycles"`
	PerSec    float64        `json:"cycles_per_s"`
	Errors    uint64         `json:"errors"`
	CycleTime LatencySummary `json:"cycle_time"`
	// RSSDriftKiB is server RSS after settling minus before the run.
	RSSDriftKiB int64 `json:"rss_drift_kib"`
}

// HTTPResult is the http scenario outcome.
type HTTPResult struct {
	NoSubscriber  PublishSummary `json:"no_subscriber"`
	OneSubscriber PublishSummary `json:"one_subscriber"`
	Receipt       Deliveries     `json:"receipt"`
}

type resultTimes struct {
	s0, s1, sGo, sEnd      ProcSample
	readyAt, goAt, sendEnd time.Time
	cliGo, cliEnd          int64
}

// mergeResults adds up the workers' final reports.
func (c *coord) mergeResults() *WorkerResult {
	m := &WorkerResult{Fails: map[string]uint64{}, ErrorCodes: map[int]uint64{}, CloseCodes: map[int]uint64{}}
	for _, h := range c.ws {
		r := h.res
		m.Snap.add(&r.Snap)
		m.Latency.Merge(&r.Latency)
		m.Connect.Merge(&r.Connect)
		m.Cycle.Merge(&r.Cycle)
		addCounts(m.Fails, r.Fails)
		addCounts(m.ErrorCodes, r.ErrorCodes)
		addCounts(m.CloseCodes, r.CloseCodes)
		m.Expected += r.Expected
		m.Lost += r.Lost
		m.Dup += r.Dup
		m.Stray += r.Stray
		if len(r.Subs) > len(m.Subs) {
			m.Subs = append(m.Subs, make([]int32, len(r.Subs)-len(m.Subs))...)
			m.SentPerChannel = append(m.SentPerChannel, make([]uint64, len(r.Subs)-len(m.SentPerChannel))...)
		}
		for i, v := range r.Subs {
			m.Subs[i] += v
		}
		for i, v := range r.SentPerChannel {
			m.SentPerChannel[i] += v
		}
		m.CPUStop += r.CPUStop - r.CPUGo
		m.RSSBase += r.RSSBase
		m.RSSReady += r.RSSReady
	}
	return m
}

func (c *coord) fill(res *Result, w *WorkerResult, t resultTimes, pubs []PublishResult) {
	cfg := &c.cfg
	res.Conns = ConnResult{Planned: cfg.Conns, Subscribed: w.Snap.Subscribed, Failed: w.Snap.Failed, Fails: w.Fails,
		Dropped: w.Snap.Dropped, CloseCodes: w.CloseCodes, ErrorCodes: w.ErrorCodes, ConnectTime: w.Connect.Summary(),
		ReadyS: t.readyAt.Sub(c.start).Seconds()}
	if cfg.Scenario == ScenarioChurn {
		res.Conns.Planned = int(w.Snap.Dialed)
	}
	if res.Conns.ReadyS > 0 {
		res.Conns.PerSec = float64(w.Snap.Subscribed) / res.Conns.ReadyS
	}
	measured := t.sEnd.At.Sub(t.sGo.At).Seconds()
	var deliveries uint64
	switch cfg.Scenario {
	case ScenarioFanout:
		d := deliveries1(w.Expected, w.Snap.Recv, w.Lost, w.Dup, w.Stray, &w.Latency, t.sendEnd.Sub(t.goAt))
		ps := c.summarizePublish(0, pubs[0])
		d.Publish = &ps
		res.Fanout = &d
		deliveries = w.Snap.Recv
	case ScenarioWhisper:
		var exp uint64
		for i, n := range w.SentPerChannel {
			if s := w.Subs[i]; s > 1 {
				exp += n * uint64(s-1)
			}
		}
		var lost, dup uint64
		if exp > w.Snap.Recv {
			lost = exp - w.Snap.Recv
		} else {
			dup = w.Snap.Recv - exp
		}
		d := deliveries1(exp, w.Snap.Recv, lost, dup, w.Stray, &w.Latency, t.sendEnd.Sub(t.goAt))
		d.Sent = w.Snap.Sent
		d.SentPerS = float64(w.Snap.Sent) / t.sendEnd.Sub(t.goAt).Seconds()
		res.Whisper = &d
		deliveries = w.Snap.Recv
	case ScenarioChurn:
		res.Churn = &ChurnResult{Cycles: w.Snap.Cycles, PerSec: float64(w.Snap.Cycles) / t.sendEnd.Sub(t.goAt).Seconds(),
			Errors: w.Snap.Errors, CycleTime: w.Cycle.Summary()}
		if len(cfg.ServerPIDs) > 0 {
			res.Churn.RSSDriftKiB = t.sEnd.RSS - t.s0.RSS
		}
	case ScenarioHTTP:
		res.HTTP = &HTTPResult{NoSubscriber: c.summarizePublish(0, pubs[0]), OneSubscriber: c.summarizePublish(1, pubs[1]),
			Receipt: deliveries1(w.Expected, w.Snap.Recv, w.Lost, w.Dup, w.Stray, &w.Latency, pubs[1].Elapsed)}
	}
	if len(cfg.ServerPIDs) > 0 {
		s := &ServerResult{PIDs: cfg.ServerPIDs, RSSStartKiB: t.s0.RSS, RSSReadyKiB: t.s1.RSS, RSSEndKiB: t.sEnd.RSS,
			RSSMaxKiB: c.rssMax, ConnectCPUS: (t.s1.CPU - t.s0.CPU).Seconds(), CPUS: (t.sEnd.CPU - t.sGo.CPU).Seconds()}
		if w.Snap.Subscribed >= 100 && cfg.Scenario != ScenarioChurn {
			s.KiBPerConn = float64(t.s1.RSS-t.s0.RSS) / float64(w.Snap.Subscribed)
		}
		if measured > 0 {
			s.CPUPct = 100 * s.CPUS / measured
		}
		if deliveries > 0 {
			s.CPUPerMillion = s.CPUS / float64(deliveries) * 1e6
		}
		res.Server = s
	}
	coordCPU := float64(t.cliEnd-t.cliGo) / 1e9
	workerCPU := float64(w.CPUStop) / 1e9
	res.Client = ClientResult{Workers: cfg.Workers, Loops: cfg.Loops, WorkerCPUS: workerCPU, CoordCPUS: coordCPU,
		CPUS: workerCPU + coordCPU, RSSKiB: w.RSSReady, Nice: w.Snap.Nice}
	if measured > 0 {
		res.Client.CPUPct = 100 * res.Client.CPUS / measured
	}
	if deliveries > 0 {
		res.Client.USPerDeliver = workerCPU / float64(deliveries) * 1e6
	}
	if w.Snap.Subscribed >= 100 && cfg.Scenario != ScenarioChurn {
		res.Client.KiBPerConn = float64(w.RSSReady-w.RSSBase) / float64(w.Snap.Subscribed)
	}
}

func deliveries1(exp, recv, lost, dup, stray uint64, h *Histogram, d time.Duration) Deliveries {
	out := Deliveries{Expected: exp, Received: recv, Lost: lost, Dup: dup, Stray: stray, Latency: h.Summary()}
	if exp > 0 {
		out.LossPct = 100 * float64(lost) / float64(exp)
	}
	if d > 0 {
		out.PerSec = float64(recv) / d.Seconds()
	}
	return out
}

func (c *coord) summarizePublish(phase int, r PublishResult) PublishSummary {
	s := PublishSummary{TargetRate: c.cfg.Rate, Sent: uint64(r.End - r.First), OK: r.OK, Errors: r.Errors, Late: r.Late, HTTP: r.HTTP.Summary(), HTTPSocket: r.Socket.Summary()}
	if len(c.cfg.ServerPIDs) > 0 && phase < len(c.pubCPU) {
		s.ServerCPUS = c.pubCPU[phase].Seconds()
		if s.Sent > 0 {
			s.ServerUSPerReq = s.ServerCPUS / float64(s.Sent) * 1e6
		}
	}
	if len(s.Errors) == 0 {
		s.Errors = nil
	}
	if r.Elapsed > 0 {
		s.Achieved = float64(s.Sent) / r.Elapsed.Seconds()
	}
	return s
}

// PrintSummary writes the human-readable report of r.
func PrintSummary(w io.Writer, r *Result) {
	p := r.Params
	rate := ""
	if r.Scenario != ScenarioConnect {
		rate = fmt.Sprintf("rate %g/s, ", p.Rate)
	}
	conns := strconv.Itoa(p.Conns) + " conns, "
	if r.Scenario == ScenarioChurn {
		conns = ""
	}
	gap := ""
	if p.PollGapMS > 0 {
		gap = fmt.Sprintf(", poll gap %gms", p.PollGapMS)
	}
	fmt.Fprintf(w, "%s against %s: %s%d %s channels, %s%gs, ramp %g/s, %d worker(s) x %d loop(s), %d source IP(s)%s\n",
		r.Scenario, r.Target, conns, p.Channels, p.ChannelType, rate, p.DurationS, p.Ramp, p.Workers, p.Loops, p.SrcIPs, gap)
	c := r.Conns
	if r.Scenario == ScenarioChurn {
		fmt.Fprintf(w, "  connections   %d dialled, %d subscribed, %d failed%s\n", c.Planned, c.Subscribed, c.Failed, counts(c.Fails))
	} else {
		fmt.Fprintf(w, "  connections   %d/%d subscribed in %.2fs (%.0f/s), %d failed%s, %d dropped%s\n",
			c.Subscribed, c.Planned, c.ReadyS, c.PerSec, c.Failed, counts(c.Fails), c.Dropped, codes(c.CloseCodes))
	}
	if len(c.ErrorCodes) > 0 {
		fmt.Fprintf(w, "  pusher:error %s\n", codes(c.ErrorCodes))
	}
	fmt.Fprintf(w, "  connect time  %s\n", lat(c.ConnectTime))
	if h := r.Hold; h != nil {
		fmt.Fprintf(w, "  hold          %.1fs idle: %d pings answered, %d dropped, %d open; server CPU %.1f%% of a core, client %.1f%%, server RSS %.1f MiB\n",
			h.Seconds, h.Pings, h.Dropped, h.Open, h.ServerCPUPct, h.ClientCPUPct, float64(h.ServerRSSKiB)/1024)
	}
	if d := r.Fanout; d != nil {
		pub(w, "publish", d.Publish)
		deliv(w, d)
	}
	if d := r.Whisper; d != nil {
		fmt.Fprintf(w, "  whisper       %d client events sent (%.0f/s)\n", d.Sent, d.SentPerS)
		deliv(w, d)
	}
	if ch := r.Churn; ch != nil {
		fmt.Fprintf(w, "  churn         %d cycles (%.0f/s), %d errors\n", ch.Cycles, ch.PerSec, ch.Errors)
		fmt.Fprintf(w, "  cycle time    %s\n", lat(ch.CycleTime))
		if r.Server != nil {
			fmt.Fprintf(w, "  server rss    drift %+d KiB (start %d KiB, max %d KiB, end %d KiB)\n", ch.RSSDriftKiB, r.Server.RSSStartKiB, r.Server.RSSMaxKiB, r.Server.RSSEndKiB)
		}
	}
	if h := r.HTTP; h != nil {
		pub(w, "no subscriber", &h.NoSubscriber)
		pub(w, "one subscr.", &h.OneSubscriber)
		deliv(w, &h.Receipt)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "  server        pids %v  rss %.1f -> %.1f MiB (%.2f KiB/conn), end %.1f MiB, max %.1f MiB\n",
			s.PIDs, mib(s.RSSStartKiB), mib(s.RSSReadyKiB), s.KiBPerConn, mib(s.RSSEndKiB), mib(s.RSSMaxKiB))
		fmt.Fprintf(w, "                cpu %.2fs connecting, %.2fs measured (%.0f%% of a core)", s.ConnectCPUS, s.CPUS, s.CPUPct)
		if s.CPUPerMillion > 0 {
			fmt.Fprintf(w, ", %.2fs per 1M deliveries", s.CPUPerMillion)
		}
		fmt.Fprintln(w)
	}
	cl := r.Client
	fmt.Fprintf(w, "  client        cpu %.2fs measured (%.0f%% of a core; workers %.2fs, coordinator %.2fs)", cl.CPUS, cl.CPUPct, cl.WorkerCPUS, cl.CoordCPUS)
	if cl.USPerDeliver > 0 {
		fmt.Fprintf(w, ", %.2f µs/delivery", cl.USPerDeliver)
	}
	fmt.Fprintf(w, "; rss %.1f MiB (%.2f KiB/conn)\n", mib(cl.RSSKiB), cl.KiBPerConn)
}

func pub(w io.Writer, name string, p *PublishSummary) {
	fmt.Fprintf(w, "  %-13s %d triggers, %d ok, %.0f/s (target %g/s), %d late%s\n", name, p.Sent, p.OK, p.Achieved, p.TargetRate, p.Late, counts(p.Errors))
	fmt.Fprintf(w, "  http latency  %s\n", lat(p.HTTP))
	fmt.Fprintf(w, "   at socket    %s\n", lat(p.HTTPSocket))
	if p.ServerCPUS > 0 {
		fmt.Fprintf(w, "  server cpu    %.2fs (%.1f µs per trigger)\n", p.ServerCPUS, p.ServerUSPerReq)
	}
}

func deliv(w io.Writer, d *Deliveries) {
	fmt.Fprintf(w, "  deliveries    %d of %d (%.0f/s), lost %d (%.3f%%), dup %d, stray %d\n", d.Received, d.Expected, d.PerSec, d.Lost, d.LossPct, d.Dup, d.Stray)
	fmt.Fprintf(w, "  latency       %s\n", lat(d.Latency))
}

func lat(s LatencySummary) string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  (n=%d)", s.P50, s.P90, s.P99, s.P999, s.Max, s.Count)
}

func mib(k int64) float64 { return float64(k) / 1024 }

func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" [")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + ": " + strconv.FormatUint(m[k], 10))
	}
	b.WriteString("]")
	return b.String()
}

func codes(m map[int]uint64) string {
	s := make(map[string]uint64, len(m))
	for k, v := range m {
		s[strconv.Itoa(k)] = v
	}
	return counts(s)
}
