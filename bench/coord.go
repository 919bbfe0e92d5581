//go:build linux

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errWorkerGone is returned when a worker exits or reports a fatal error
// before its result.
var errWorkerGone = errors.New("bench: a worker exited early")

type wmsg struct {
	w   int
	m   WorkerMsg
	eof bool
}

type whandle struct {
	job   Job
	cmd   *exec.Cmd
	stdin io.WriteCloser
	snap  Snapshot
	ready bool
	res   *WorkerResult
	gone  bool
	fatal string
}

// coord drives one run: it owns the workers, the publisher and the
// progress line. One goroutine (Run's) uses it.
type coord struct {
	cfg     Config
	ws      []*whandle
	msgs    chan wmsg
	start   time.Time
	stderr  io.Writer
	pub     *Publisher
	phase   string
	rssMax  int64
	lastAt  time.Time
	lastRcv uint64
	lastPub uint64
	lastSrv time.Duration
	lastCli int64
	pubCPU  []time.Duration // server CPU of each publish phase
	tick    *time.Ticker    // the progress line's clock, kept across pump calls
}

// reportWait bounds the wait for every worker's result after the stop.
const reportWait = 30 * time.Second

// drainLimit bounds the wait for in-flight deliveries after the last
// trigger. A big run's broadcast takes seconds to reach everyone and busy
// workers report late, so it grows with the sockets: a million get 210 s.
func drainLimit(conns int) time.Duration {
	return 10*time.Second + time.Duration(conns)*200*time.Microsecond
}

// connectLimit bounds the connect phase: the ramp, then the slowest
// handshake's timeout, and 10 s for the workers to start and report.
func connectLimit(cfg Config) time.Duration {
	ramp := time.Duration(0)
	if cfg.Ramp > 0 {
		ramp = time.Duration(float64(cfg.Conns) / cfg.Ramp * float64(time.Second))
	}
	return ramp + cfg.ConnectTimeout + 10*time.Second
}

// runBudget is the deadline of a whole run: every phase at its own limit
// (connecting, hold, publishing, drain, settle, results) plus a minute of
// slack, so a slow but healthy run is never cut off while it reports.
func runBudget(cfg Config) time.Duration {
	return connectLimit(cfg) + cfg.Hold + 2*cfg.Duration + drainLimit(cfg.Conns) + cfg.Settle + reportWait + 60*time.Second
}

// Run executes one scenario of cfg against the server and returns the
// merged result. Progress lines go to progress (nil or cfg.NoProgress:
// none). Workers are child processes running `<this binary> worker`
// (cfg.InProcess: goroutines); they are killed when Run returns, and the
// whole run is bounded by a deadline derived from the configuration.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	target, err := resolveIPv4(cfg.Host)
	if err != nil {
		return nil, err
	}
	budget := runBudget(cfg)
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	if cfg.NoProgress {
		progress = nil
	}
	c := &coord{cfg: cfg, msgs: make(chan wmsg, 64), start: time.Now(), stderr: progress}
	defer c.killAll()
	defer c.stopProgress()
	res := &Result{Scenario: cfg.Scenario, Target: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), Started: c.start}
	res.Params = Params{Conns: cfg.Conns, Channels: cfg.Channels, ChannelType: cfg.ChannelType, Rate: cfg.Rate,
		DurationS: cfg.Duration.Seconds(), Ramp: cfg.Ramp, Group: cfg.Group, Workers: cfg.Workers, Loops: cfg.Loops,
		Size: cfg.Size, HTTPConns: cfg.HTTPConns, PollGapMS: float64(cfg.PollGap) / 1e6}
	if cfg.Scenario != ScenarioWhisper {
		res.Params.Group = 0
	}

	s0, err := SampleProcs(cfg.ServerPIDs)
	if err != nil {
		return nil, fmt.Errorf("bench: reading server process: %w", err)
	}
	c.rssMax = s0.RSS
	src := sourceIPs(&cfg, target)
	res.Params.SrcIPs = len(src)
	if err := c.spawn(target.String(), src, time.Now().Add(budget+10*time.Second)); err != nil {
		return nil, err
	}

	c.phase = "connect"
	if err := c.pump(ctx, connectLimit(cfg), false, c.allReady); err != nil {
		return nil, fmt.Errorf("bench: waiting for connections: %w", err)
	}
	readyAt := time.Now()
	s1, _ := SampleProcs(cfg.ServerPIDs)
	c.noteRSS(s1.RSS)

	if cfg.Scenario != ScenarioConnect && cfg.Scenario != ScenarioChurn {
		// Give presence joins and subscription bookkeeping a moment to
		// settle so the measured phase starts from a quiet server.
		c.pump(ctx, 300*time.Millisecond, true, nil)
	}
	if cfg.Hold > 0 && cfg.Scenario == ScenarioFanout {
		if res.Hold, err = c.hold(ctx); err != nil {
			return nil, err
		}
	}

	cliGo := selfCPU()
	sGo, _ := SampleProcs(cfg.ServerPIDs)
	c.broadcast(Command{Cmd: "go"})
	goAt := time.Now()
	stop := Command{Cmd: "stop"}
	var pubs []PublishResult
	var pub *Publisher
	if cfg.Scenario == ScenarioFanout || cfg.Scenario == ScenarioHTTP {
		pub = NewPublisher(cfg.Host, cfg.Port, cfg.Path, cfg.AppID, cfg.Key, cfg.Secret, cfg.HTTPConns, cfg.Size)
		defer pub.Close()
		c.pub = pub
	}
	switch cfg.Scenario {
	case ScenarioConnect:
		c.phase = "hold"
		if err := c.pump(ctx, cfg.Duration, true, nil); err != nil {
			return nil, err
		}
	case ScenarioFanout:
		c.phase = "publish"
		r, err := c.publish(ctx, pub, 0, cfg.Duration, func(s int64) string { return ChannelName(cfg.ChannelType, cfg.Prefix, int(s%int64(cfg.Channels))) })
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, r)
		stop.First, stop.End, stop.Failed = r.First, r.End, r.Failed
	case ScenarioHTTP:
		c.phase = "http-nosub"
		empty := ChannelName(cfg.ChannelType, cfg.Prefix+"empty-", 0)
		a, err := c.publish(ctx, pub, 0, cfg.Duration/2, func(int64) string { return empty })
		if err != nil {
			return nil, err
		}
		c.phase = "http-onesub"
		one := ChannelName(cfg.ChannelType, cfg.Prefix, 0)
		b, err := c.publish(ctx, pub, a.End, cfg.Duration/2, func(int64) string { return one })
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, a, b)
		stop.First, stop.End, stop.Failed = b.First, b.End, b.Failed
	case ScenarioWhisper, ScenarioChurn:
		c.phase = cfg.Scenario
		if err := c.pump(ctx, cfg.Duration, true, nil); err != nil {
			return nil, err
		}
		c.broadcast(Command{Cmd: "quiet"})
	}
	sendEnd := time.Now()
	if cfg.Scenario != ScenarioConnect {
		c.phase = "drain"
		if err := c.drain(ctx, c.expected(pubs)); err != nil {
			return nil, err
		}
	}
	if cfg.Scenario == ScenarioChurn {
		// Let the server free what the last cycles left behind before
		// reading its RSS: the leak check compares settled states.
		c.phase = "settle"
		c.pump(ctx, c.cfg.Settle, true, nil)
	}
	sEnd, _ := SampleProcs(cfg.ServerPIDs)
	c.noteRSS(sEnd.RSS)
	cliEnd := selfCPU()
	c.broadcast(stop)
	c.phase = "report"
	if err := c.pump(ctx, reportWait, false, c.allResults); err != nil {
		return nil, fmt.Errorf("bench: collecting results: %w", err)
	}

	w := c.mergeResults()
	c.fill(res, w, resultTimes{s0: s0, s1: s1, sGo: sGo, sEnd: sEnd, readyAt: readyAt, goAt: goAt, sendEnd: sendEnd,
		cliGo: cliGo, cliEnd: cliEnd}, pubs)
	res.ElapsedS = time.Since(c.start).Seconds()
	return res, nil
}

// spawn starts the workers and hands each its job.
func (c *coord) spawn(addr string, src []string, deadline time.Time) error {
	cfg := &c.cfg
	host := cfg.Host
	if cfg.Port != 80 {
		host = net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	}
	per, rem := cfg.Conns/cfg.Workers, cfg.Conns%cfg.Workers
	first := 0
	for i := range cfg.Workers {
		n := per
		if i < rem {
			n++
		}
		job := Job{Worker: i, Scenario: cfg.Scenario, Addr: addr, Port: cfg.Port, HostHeader: host, Path: cfg.Path,
			Key: cfg.Key, Secret: cfg.Secret, Origin: cfg.Origin, First: first, Count: n, Channels: cfg.Channels,
			ChannelType: cfg.ChannelType, Prefix: cfg.Prefix, Group: cfg.Group, SrcIPs: src, Size: cfg.Size,
			Loops: cfg.Loops, ConnectTimeout: cfg.ConnectTimeout, PollGap: cfg.PollGap, Deadline: deadline.UnixNano()}
		if cfg.Conns > 0 {
			job.Ramp = cfg.Ramp * float64(n) / float64(cfg.Conns)
		}
		job.Rate = cfg.Rate / float64(cfg.Workers)
		if cfg.Scenario == ScenarioChurn {
			// Churn indices only name channels; keep workers' apart.
			job.First = i * (1 << 24)
		}
		first += n
		if err := c.startWorker(job); err != nil {
			return err
		}
	}
	return nil
}

func (c *coord) startWorker(job Job) error {
	h := &whandle{job: job}
	var out io.ReadCloser
	if c.cfg.InProcess {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go func() {
			RunWorker(inR, outW)
			outW.Close()
			inR.Close()
		}()
		h.stdin, out = inW, outR
	} else {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command(exe, "worker")
		if n := c.cfg.WorkerNice; n != nil {
			// nice(1) adds to the current value; every thread of the
			// worker inherits it from the start.
			cur, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
			if err != nil {
				return err
			}
			cmd = exec.Command("nice", "-n", strconv.Itoa(*n-(20-cur)), exe, "worker")
		}
		cmd.Stderr = os.Stderr
		// A worker must not outlive a coordinator killed with -9.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if h.stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
		if out, err = cmd.StdoutPipe(); err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		h.cmd = cmd
	}
	idx := len(c.ws)
	c.ws = append(c.ws, h)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 256<<20)
		for sc.Scan() {
			var m WorkerMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				c.msgs <- wmsg{w: idx, m: m}
			}
		}
		c.msgs <- wmsg{w: idx, eof: true}
	}()
	b, _ := json.Marshal(job)
	_, err := h.stdin.Write(append(b, '\n'))
	return err
}

func (c *coord) broadcast(cmd Command) {
	b, _ := json.Marshal(cmd)
	b = append(b, '\n')
	for _, h := range c.ws {
		if !h.gone {
			h.stdin.Write(b)
		}
	}
}

// killAll ends every worker: closing stdin asks politely (a worker exits at
// EOF), then child processes are killed by PID.
func (c *coord) killAll() {
	for _, h := range c.ws {
		h.stdin.Close()
	}
	for _, h := range c.ws {
		if h.cmd == nil || h.cmd.Process == nil {
			continue
		}
		done := make(chan struct{})
		go func() {
			h.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			h.cmd.Process.Kill()
			<-done
		}
	}
}

func (c *coord) allReady() bool {
	for _, h := range c.ws {
		if !h.ready {
			return false
		}
	}
	return true
}

func (c *coord) allResults() bool {
	for _, h := range c.ws {
		if h.res == nil {
			return false
		}
	}
	return true
}

// pump handles worker messages and prints progress until done() holds,
// d elapses (an error unless elapsed is true: a timed phase), ctx ends,
// or a worker dies.
func (c *coord) pump(ctx context.Context, d time.Duration, elapsed bool, done func() bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	// One ticker for the whole run: drain pumps in slices shorter than a
	// second, and a ticker per call would never fire there.
	if c.tick == nil {
		c.tick = time.NewTicker(time.Second)
	}
	tick := c.tick
	for {
		if done != nil && done() {
			return nil
		}
		select {
		case m := <-c.msgs:
			if err := c.handle(m); err != nil {
				return err
			}
		case <-tick.C:
			c.progress()
		case <-t.C:
			if elapsed {
				return nil
			}
			return errors.New("timed out after " + d.String())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *coord) handle(m wmsg) error {
	if m.w < 0 {
		return nil
	}
	h := c.ws[m.w]
	if m.eof {
		h.gone = true
		if h.res == nil {
			if h.fatal != "" {
				return fmt.Errorf("%w: worker %d: %s", errWorkerGone, m.w, h.fatal)
			}
			return fmt.Errorf("%w: worker %d", errWorkerGone, m.w)
		}
		return nil
	}
	h.snap = m.m.Snap
	switch m.m.Type {
	case "ready":
		h.ready = true
	case "result":
		h.res = m.m.Result
	case "fatal":
		h.fatal = m.m.Error
		return fmt.Errorf("%w: worker %d: %s", errWorkerGone, m.w, m.m.Error)
	}
	return nil
}

// hold keeps the sockets idle for cfg.Hold while the workers answer pings,
// and reports what that cost: the server processes' CPU, the pings
// answered and the sockets lost meanwhile.
func (c *coord) hold(ctx context.Context) (*HoldResult, error) {
	c.phase = "hold"
	sum := func() Snapshot {
		var s Snapshot
		for _, h := range c.ws {
			s.add(&h.snap)
		}
		return s
	}
	sample := func() ProcSample {
		s, _ := SampleProcs(c.cfg.ServerPIDs) // a vanished server shows as a drop
		return s
	}
	w0, s0, cli0 := sum(), sample(), selfCPU()
	if err := c.pump(ctx, c.cfg.Hold, true, nil); err != nil {
		return nil, err
	}
	w1, s1, cli1 := sum(), sample(), selfCPU()
	c.noteRSS(s1.RSS)
	secs := s1.At.Sub(s0.At).Seconds()
	r := &HoldResult{Seconds: secs, Pings: w1.Pings - w0.Pings, Dropped: w1.Dropped - w0.Dropped, Open: w1.Open,
		ServerRSSKiB: s1.RSS}
	r.ServerCPUS = (s1.CPU - s0.CPU).Seconds()
	r.ClientCPUS = float64((w1.CPU+cli1)-(w0.CPU+cli0)) / 1e9
	if secs > 0 {
		r.ServerCPUPct = 100 * r.ServerCPUS / secs
		r.ClientCPUPct = 100 * r.ClientCPUS / secs
	}
	return r, nil
}

// publish runs the publisher while pumping worker messages, and notes the
// server CPU the phase cost in c.pubCPU.
func (c *coord) publish(ctx context.Context, p *Publisher, first int64, d time.Duration, ch func(int64) string) (PublishResult, error) {
	before, _ := SampleProcs(c.cfg.ServerPIDs)
	defer func() {
		after, _ := SampleProcs(c.cfg.ServerPIDs)
		c.pubCPU = append(c.pubCPU, after.CPU-before.CPU)
	}()
	done := make(chan PublishResult, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- p.Run(pctx, first, c.cfg.Rate, d, ch)
		c.msgs <- wmsg{w: -1} // wake pump to notice
	}()
	var r PublishResult
	finished := false
	err := c.pump(ctx, d+30*time.Second, false, func() bool {
		select {
		case r = <-done:
			finished = true
		default:
		}
		return finished
	})
	if err != nil {
		cancel()
		if !finished {
			<-done
		}
		return r, err
	}
	return r, nil
}

// drain waits until every expected receipt is in, or receipts stop
// growing (three worker reports and 5 µs per socket without change), at
// most drainLimit, so in-flight deliveries are counted and not reported
// as loss.
func (c *coord) drain(ctx context.Context, want uint64) error {
	n := time.Duration(c.cfg.Conns)
	deadline := time.Now().Add(drainLimit(c.cfg.Conns))
	idle := 3*progressEvery + n*5*time.Microsecond
	last, lastCyc := c.totals()
	stableSince := time.Now()
	for time.Now().Before(deadline) {
		if want > 0 && last >= want {
			return nil
		}
		if err := c.pump(ctx, progressEvery/2, true, nil); err != nil {
			return err
		}
		cur, cyc := c.totals()
		if cur != last || cyc != lastCyc {
			last, lastCyc, stableSince = cur, cyc, time.Now()
			continue
		}
		if time.Since(stableSince) >= idle {
			return nil
		}
	}
	return nil
}

// expected is how many receipts the fanout triggers in pubs should bring
// when every socket listens on the one channel (0 = not known: several
// channels, or another scenario).
func (c *coord) expected(pubs []PublishResult) uint64 {
	if c.cfg.Scenario != ScenarioFanout || c.cfg.Channels != 1 {
		return 0
	}
	var subs, ok uint64
	for _, h := range c.ws {
		subs += h.snap.Subscribed
	}
	for _, p := range pubs {
		ok += p.OK
	}
	return subs * ok
}

func (c *coord) totals() (recv, cycles uint64) {
	for _, h := range c.ws {
		recv += h.snap.Recv
		cycles += h.snap.Cycles + h.snap.Failed
	}
	return
}

func (c *coord) noteRSS(v int64) { c.rssMax = max(c.rssMax, v) }

// stopProgress stops the progress line's ticker, if a pump started it.
func (c *coord) stopProgress() {
	if c.tick != nil {
		c.tick.Stop()
	}
}

// progress prints one status line to stderr.
func (c *coord) progress() {
	now := time.Now()
	var s Snapshot
	for _, h := range c.ws {
		s.add(&h.snap)
	}
	srv, err := SampleProcs(c.cfg.ServerPIDs)
	if err == nil {
		c.noteRSS(srv.RSS)
	}
	var pubSent uint64
	if c.pub != nil {
		pubSent = c.pub.Sent()
	}
	cli := s.CPU + selfCPU()
	if c.stderr != nil && !c.lastAt.IsZero() {
		dt := now.Sub(c.lastAt).Seconds()
		line := fmt.Sprintf("[%5.1fs] %-8s conns %d/%d open %d fail %d drop %d", now.Sub(c.start).Seconds(), c.phase,
			s.Subscribed, c.cfg.Conns, s.Open, s.Failed, s.Dropped)
		switch c.cfg.Scenario {
		case ScenarioFanout, ScenarioHTTP:
			line += fmt.Sprintf(" | pub %d (%.0f/s) recv %d (%.0f/s)", pubSent, float64(pubSent-c.lastPub)/dt, s.Recv, float64(s.Recv-c.lastRcv)/dt)
		case ScenarioWhisper:
			line += fmt.Sprintf(" | sent %d recv %d (%.0f/s)", s.Sent, s.Recv, float64(s.Recv-c.lastRcv)/dt)
		case ScenarioChurn:
			line += fmt.Sprintf(" | cycles %d", s.Cycles)
		}
		if len(c.cfg.ServerPIDs) > 0 && err == nil {
			line += fmt.Sprintf(" | srv cpu %.0f%% rss %.1f MiB", 100*(srv.CPU-c.lastSrv).Seconds()/dt, float64(srv.RSS)/1024)
		}
		line += fmt.Sprintf(" | cli cpu %.0f%%", 100*float64(cli-c.lastCli)/1e9/dt)
		fmt.Fprintln(c.stderr, line)
	}
	c.lastAt, c.lastRcv, c.lastPub, c.lastCli = now, s.Recv, pubSent, cli
	if err == nil {
		c.lastSrv = srv.CPU
	}
}
