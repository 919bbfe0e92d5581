//go:build linux

package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario names, as given on the command line.
const (
	ScenarioConnect = "connect"
	ScenarioFanout  = "fanout"
	ScenarioWhisper = "whisper"
	ScenarioChurn   = "churn"
	ScenarioHTTP    = "http"
)

// Job is a worker's share of a run: the first line the coordinator writes
// to the worker's stdin, as JSON.
type Job struct {
	Worker   int    `json:"worker"`
	Scenario string `json:"scenario"`
	// Addr and Port are the server's IPv4 address and port; HostHeader is
	// what the upgrade request sends as Host.
	Addr       string `json:"addr"`
	Port       int    `json:"port"`
	HostHeader string `json:"host_header"`
	// Path is the server path prefix (PROTOCOL.md §1), "" or "/ws".
	Path   string `json:"path"`
	Key    string `json:"key"`
	Secret string `json:"secret"`
	Origin string `json:"origin,omitempty"`
	// First and Count select the global connection indices [First,
	// First+Count) this worker opens; for churn, Count is unused and First
	// seeds the indices of new cycles.
	First int `json:"first"`
	Count int `json:"count"`
	// Channels is the number of channels of the run, named Names(i).
	Channels    int    `json:"channels"`
	ChannelType string `json:"channel_type"`
	Prefix      string `json:"prefix"`
	// Group is the presence group size of the whisper scenario.
	Group int `json:"group,omitempty"`
	// SrcIPs are the local addresses sockets bind to, in rotation; empty
	// lets the kernel choose.
	SrcIPs []string `json:"src_ips,omitempty"`
	// Ramp is this worker's connection rate (per second); 0 opens as fast
	// as MaxInflight allows.
	Ramp float64 `json:"ramp"`
	// Rate is this worker's client events per second (whisper) or cycles
	// per second (churn).
	Rate float64 `json:"rate"`
	// Size pads whisper payloads to about this many bytes.
	Size int `json:"size,omitempty"`
	// Loops is the number of epoll loops; <= 0 means one per CPU.
	Loops int `json:"loops"`
	// MaxInflight caps handshakes in progress per loop (SYN backlog).
	MaxInflight int `json:"max_inflight"`
	// ConnectTimeout bounds dial to subscription_succeeded (and a churn
	// close), in nanoseconds.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// PollGap: after a poll that returned events (but not a full batch)
	// each loop sleeps this long before polling again (Config.PollGap).
	PollGap time.Duration `json:"poll_gap,omitempty"`
	// Deadline is the unix-ns instant after which the worker gives up
	// whatever the coordinator says, so no run outlives its budget.
	Deadline int64 `json:"deadline"`
}

// Command is a coordinator → worker control line after the Job.
type Command struct {
	// Cmd is "go" (start the measured phase), "quiet" (stop sending client
	// events or churn cycles) or "stop" (close everything and report).
	Cmd string `json:"cmd"`
	// First and End bound the publish sequence numbers of the measured
	// phase (stop only): seq s in [First, End) went to channel s%Channels.
	First int64 `json:"first,omitempty"`
	End   int64 `json:"end,omitempty"`
	// Failed lists sequence numbers whose trigger the server rejected.
	Failed []int64 `json:"failed,omitempty"`
}

// WorkerMsg is one worker → coordinator JSON line.
type WorkerMsg struct {
	// Type is "progress" (every progressEvery), "ready" (all connections settled),
	// "result" (final, after stop) or "fatal" (Error says why).
	Type   string        `json:"type"`
	Worker int           `json:"worker"`
	Snap   Snapshot      `json:"snap"`
	Result *WorkerResult `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Snapshot is a worker's running totals.
type Snapshot struct {
	Dialed     uint64 `json:"dialed"`
	Subscribed uint64 `json:"subscribed"`
	Failed     uint64 `json:"failed"`
	Open       int64  `json:"open"`
	Dropped    uint64 `json:"dropped"`
	Recv       uint64 `json:"recv"`
	Sent       uint64 `json:"sent"`
	Cycles     uint64 `json:"cycles"`
	Errors     uint64 `json:"errors"`
	// Pings counts pusher:ping messages answered with pusher:pong.
	Pings uint64 `json:"pings"`
	// Nice is the worker's nice value (merged: the highest).
	Nice int `json:"nice,omitempty"`
	// CPU is the worker's user+system time in ns; RSS its resident KiB.
	CPU int64 `json:"cpu_ns"`
	RSS int64 `json:"rss_kib"`
}

// add sums o's counters into s (not RSS, which is a level, not a count).
func (s *Snapshot) add(o *Snapshot) {
	s.Dialed += o.Dialed
	s.Subscribed += o.Subscribed
	s.Failed += o.Failed
	s.Open += o.Open
	s.Dropped += o.Dropped
	s.Recv += o.Recv
	s.Sent += o.Sent
	s.Cycles += o.Cycles
	s.Errors += o.Errors
	s.Pings += o.Pings
	s.Nice = max(s.Nice, o.Nice)
	s.CPU += o.CPU
}

// addCounts adds src's counts into dst.
func addCounts[K comparable](dst, src map[K]uint64) {
	for k, v := range src {
		dst[k] += v
	}
}

// WorkerResult is a worker's final report.
type WorkerResult struct {
	Snap Snapshot `json:"snap"`
	// Latency is send-to-receipt of events and client events; Connect is
	// dial to subscription_succeeded; Cycle is a whole churn cycle.
	Latency Histogram `json:"latency"`
	Connect Histogram `json:"connect"`
	Cycle   Histogram `json:"cycle"`
	// Fails counts connections that never got subscribed, by reason.
	Fails map[string]uint64 `json:"fails,omitempty"`
	// ErrorCodes counts pusher:error codes; CloseCodes the close codes of
	// subscribed sockets the server closed (1006 = no close frame).
	ErrorCodes map[int]uint64 `json:"error_codes,omitempty"`
	CloseCodes map[int]uint64 `json:"close_codes,omitempty"`
	// Expected, Lost, Dup and Stray compare per-event receipts with this
	// worker's subscribers at "go" (fanout, http).
	Expected uint64 `json:"expected"`
	Lost     uint64 `json:"lost"`
	Dup      uint64 `json:"dup"`
	Stray    uint64 `json:"stray"`
	// Subs is subscribed sockets per channel at "go"; SentPerChannel the
	// client events sent per channel (whisper) — the coordinator derives
	// the expected receipts from both.
	Subs           []int32  `json:"subs,omitempty"`
	SentPerChannel []uint64 `json:"sent_per_channel,omitempty"`
	// CPUGo/CPUStop are the worker's CPU ns at "go" and at "stop";
	// RSSBase/RSSReady its RSS (KiB) before dialling and when ready.
	CPUGo    int64 `json:"cpu_go_ns"`
	CPUStop  int64 `json:"cpu_stop_ns"`
	RSSBase  int64 `json:"rss_base_kib"`
	RSSReady int64 `json:"rss_ready_kib"`
	Loops    int   `json:"loops"`
}

// progressEvery is how often workers report totals; the coordinator's
// drain decision needs a few reports per second.
const progressEvery = 250 * time.Millisecond

// Worker phases, stored in worker.phase.
const (
	phaseSetup int32 = iota
	phaseGo
	phaseQuiet
	phaseStop
)

// worker is one process's share: a few client loops and the control line.
type worker struct {
	job      Job
	ip       [4]byte
	src      [][4]byte
	names    [][]byte // channel names
	upgrade  []byte   // the whole upgrade request
	trackSeq bool
	phase    atomic.Int32
	loops    []*clientLoop
}

// RunWorker runs one worker: it reads a Job and then Commands from in, and
// writes WorkerMsg lines to out until it has sent its result, the input
// ends, or the job's deadline passes. It is what `reverb-bench worker` runs
// with stdin/stdout; tests run it in-process over pipes. It blocks.
func RunWorker(in io.Reader, out io.Writer) error {
	rd := bufio.NewReader(in)
	line, err := rd.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return err
	}
	var job Job
	if err := json.Unmarshal(line, &job); err != nil {
		return err
	}
	enc := &lineWriter{w: out}
	w, err := newWorker(job)
	if err != nil {
		enc.send(WorkerMsg{Type: "fatal", Worker: job.Worker, Error: err.Error()})
		return err
	}
	return w.run(rd, enc)
}

// lineWriter serialises JSON lines from the control and progress goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) send(m WorkerMsg) {
	b, _ := json.Marshal(m)
	b = append(b, '\n')
	l.mu.Lock()
	l.w.Write(b)
	l.mu.Unlock()
}

func newWorker(job Job) (*worker, error) {
	ip, err := netip.ParseAddr(job.Addr)
	if err != nil || !ip.Is4() {
		return nil, errors.New("bench: worker needs an IPv4 server address, got " + strconv.Quote(job.Addr))
	}
	w := &worker{job: job, ip: ip.As4()}
	for _, s := range job.SrcIPs {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, errors.New("bench: bad source address " + strconv.Quote(s))
		}
		w.src = append(w.src, a.As4())
	}
	if job.Channels < 1 {
		w.job.Channels = 1
	}
	if w.job.Loops <= 0 {
		w.job.Loops = runtime.NumCPU()
	}
	if w.job.MaxInflight <= 0 {
		w.job.MaxInflight = 512
	}
	if w.job.ConnectTimeout <= 0 {
		w.job.ConnectTimeout = 15 * time.Second
	}
	for i := range w.job.Channels {
		w.names = append(w.names, []byte(ChannelName(job.ChannelType, job.Prefix, i)))
	}
	w.trackSeq = job.Scenario == ScenarioFanout || job.Scenario == ScenarioHTTP
	w.upgrade = appendUpgradeRequest(nil, job)
	return w, nil
}

// ChannelName returns the name of channel i of a run: the type's prefix
// ("private-", "presence-" or none), the run prefix, then i.
func ChannelName(typ, prefix string, i int) string {
	switch typ {
	case "private", "presence":
		return typ + "-" + prefix + strconv.Itoa(i)
	}
	return prefix + strconv.Itoa(i)
}

// wsKey is the Sec-WebSocket-Key of every bench socket (RFC 6455's sample);
// the server cannot tell, and one key means one accept value to check.
const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

func appendUpgradeRequest(dst []byte, job Job) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, job.Path...)
	dst = append(dst, "/app/"...)
	dst = append(dst, job.Key...)
	dst = append(dst, "?protocol=7&client=reverb-bench&version=1.0&flash=false HTTP/1.1\r\nHost: "...)
	dst = append(dst, job.HostHeader...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "+wsKey+"\r\nSec-WebSocket-Version: 13\r\n"...)
	if job.Origin != "" {
		dst = append(dst, "Origin: "...)
		dst = append(dst, job.Origin...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// channelOf maps a global connection index to its channel.
func (w *worker) channelOf(idx int) int {
	switch w.job.Scenario {
	case ScenarioWhisper:
		g := max(w.job.Group, 1)
		return (idx / g) % w.job.Channels
	case ScenarioHTTP:
		return 0
	}
	return idx % w.job.Channels
}

func (w *worker) run(rd *bufio.Reader, enc *lineWriter) error {
	res := &WorkerResult{Loops: w.job.Loops}
	res.RSSBase = selfRSS()
	n := w.job.Loops
	for i := range n {
		l, err := newClientLoop(w, i)
		if err != nil {
			for _, o := range w.loops {
				o.p.close()
			}
			enc.send(WorkerMsg{Type: "fatal", Worker: w.job.Worker, Error: err.Error()})
			return err
		}
		w.loops = append(w.loops, l)
	}
	reserveProcs(len(w.loops))
	defer releaseProcs(len(w.loops))
	var wg sync.WaitGroup
	for _, l := range w.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run()
		}()
	}

	cmds := make(chan Command, 4)
	go func() {
		defer close(cmds)
		for {
			line, err := rd.ReadBytes('\n')
			if len(line) > 0 {
				var c Command
				if json.Unmarshal(line, &c) == nil {
					cmds <- c
				}
			}
			if err != nil {
				return
			}
		}
	}()

	deadline := time.Unix(0, w.job.Deadline)
	if w.job.Deadline == 0 {
		deadline = time.Now().Add(10 * time.Minute)
	}
	hard := time.NewTimer(time.Until(deadline))
	defer hard.Stop()
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()

	ready := false
	var stop Command
loop:
	for {
		select {
		case <-poll.C:
			if !ready && w.settled() {
				ready = true
				poll.Stop() // 50 wake-ups a second of an idle process otherwise
				res.RSSReady = selfRSS()
				enc.send(WorkerMsg{Type: "ready", Worker: w.job.Worker, Snap: w.snapshot()})
			}
		case <-progress.C:
			enc.send(WorkerMsg{Type: "progress", Worker: w.job.Worker, Snap: w.snapshot()})
		case c, ok := <-cmds:
			if !ok {
				break loop // the coordinator is gone: clean up and leave
			}
			switch c.Cmd {
			case "go":
				res.CPUGo = selfCPU()
				w.setPhase(phaseGo)
			case "quiet":
				w.setPhase(phaseQuiet)
			case "stop":
				stop = c
				break loop
			}
		case <-hard.C:
			break loop
		}
	}
	res.CPUStop = selfCPU()
	if res.RSSReady == 0 {
		res.RSSReady = selfRSS()
	}
	w.setPhase(phaseStop)
	wg.Wait()
	w.merge(res, stop)
	enc.send(WorkerMsg{Type: "result", Worker: w.job.Worker, Snap: res.Snap, Result: res})
	return nil
}

func (w *worker) setPhase(p int32) {
	w.phase.Store(p)
	for _, l := range w.loops {
		l.p.wake()
	}
}

// settled reports whether every planned connection is subscribed or failed.
func (w *worker) settled() bool {
	if w.job.Scenario == ScenarioChurn {
		return true
	}
	var done uint64
	for _, l := range w.loops {
		done += l.pub.subscribed.Load() + l.pub.failed.Load()
	}
	return done >= uint64(w.job.Count)
}

func (w *worker) snapshot() Snapshot {
	var s Snapshot
	for _, l := range w.loops {
		p := &l.pub
		s.Dialed += p.dialed.Load()
		s.Subscribed += p.subscribed.Load()
		s.Failed += p.failed.Load()
		s.Open += p.open.Load()
		s.Dropped += p.dropped.Load()
		s.Recv += p.recv.Load()
		s.Sent += p.sent.Load()
		s.Cycles += p.cycles.Load()
		s.Errors += p.errors.Load()
		s.Pings += p.pings.Load()
	}
	s.CPU = selfCPU()
	s.RSS = selfRSS()
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		s.Nice = 20 - p // the raw syscall returns 20 - nice
	}
	return s
}

// merge folds the stopped loops into res and computes per-event loss
// against the subscribers each channel had at "go".
func (w *worker) merge(res *WorkerResult, stop Command) {
	res.Snap = w.snapshot()
	res.Fails = map[string]uint64{}
	res.ErrorCodes = map[int]uint64{}
	res.CloseCodes = map[int]uint64{}
	subs := make([]int32, w.job.Channels)
	sent := make([]uint64, w.job.Channels)
	var got []uint32
	for _, l := range w.loops {
		res.Latency.Merge(&l.lat)
		res.Connect.Merge(&l.connect)
		res.Cycle.Merge(&l.cycle)
		addCounts(res.Fails, l.fails)
		addCounts(res.ErrorCodes, l.errCodes)
		addCounts(res.CloseCodes, l.closeCodes)
		for i, v := range l.subsAtGo {
			subs[i] += v
		}
		for i, v := range l.sentPerCh {
			sent[i] += v
		}
		if len(l.got) > len(got) {
			got = append(got, make([]uint32, len(l.got)-len(got))...)
		}
		for i, v := range l.got {
			got[i] += v
		}
		res.Stray += l.stray
	}
	if w.job.Scenario == ScenarioWhisper {
		res.Subs, res.SentPerChannel = subs, sent
	}
	if !w.trackSeq {
		return
	}
	failed := make(map[int64]bool, len(stop.Failed))
	for _, s := range stop.Failed {
		failed[s] = true
	}
	for seq := stop.First; seq < stop.End; seq++ {
		var exp uint64
		if !failed[seq] {
			exp = uint64(subs[int(seq%int64(w.job.Channels))])
		}
		var g uint64
		if seq < int64(len(got)) {
			g = uint64(got[seq])
		}
		res.Expected += exp
		switch {
		case g < exp:
			res.Lost += exp - g
		case g > exp:
			res.Dup += g - exp
		}
	}
	for seq := range got {
		if (int64(seq) < stop.First || int64(seq) >= stop.End) && got[seq] > 0 {
			res.Stray += uint64(got[seq])
		}
	}
}
