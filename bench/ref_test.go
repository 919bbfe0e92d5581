//go:build linux

package bench

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as `reverb-bench worker`, so Run's
// multi-process path (os.Executable + "worker") is tested for real, and
// as the echoing peer process of BenchmarkWakeRoundTrip.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := RunWorker(os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 2 && os.Args[1] == "echo" {
		runEcho(os.Args[2])
	}
	os.Exit(m.Run())
}

func startRef(t *testing.T) *RefServer {
	t.Helper()
	s, err := StartRef("127.0.0.1", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func refConfig(s *RefServer, scenario string) Config {
	return Config{
		Scenario: scenario, Host: "127.0.0.1", Port: s.Port(), AppID: "1", Key: "key", Secret: "secret",
		Prefix: "t-", Ramp: 0, Duration: 400 * time.Millisecond, NoProgress: true, InProcess: true,
		ConnectTimeout: 5 * time.Second, Settle: 100 * time.Millisecond, Size: 64, HTTPConns: 2,
	}
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitClosed waits until the reference server has seen every socket go.
func waitClosed(t *testing.T, s *RefServer) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for s.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets still open on the ref server after the run", s.Stats().Open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkConns(t *testing.T, r *Result, want int) {
	t.Helper()
	c := r.Conns
	if c.Subscribed != uint64(want) || c.Failed != 0 || c.Dropped != 0 {
		t.Fatalf("connections: %d subscribed, %d failed %v, %d dropped; want %d", c.Subscribed, c.Failed, c.Fails, c.Dropped, want)
	}
	if c.ConnectTime.Count != uint64(want) {
		t.Fatalf("connect-time samples %d, want %d", c.ConnectTime.Count, want)
	}
}

// checkExact asserts what a lossless server must give: every expected
// delivery received once, and the ref's own write count agreeing.
func checkExact(t *testing.T, d *Deliveries, wantExpected uint64, s *RefServer, before RefStats) {
	t.Helper()
	if d.Expected != wantExpected || d.Received != wantExpected || d.Lost != 0 || d.Dup != 0 || d.Stray != 0 {
		t.Fatalf("deliveries: expected %d received %d lost %d dup %d stray %d; want %d exactly",
			d.Expected, d.Received, d.Lost, d.Dup, d.Stray, wantExpected)
	}
	if d.Latency.Count != wantExpected || d.Latency.P50 <= 0 || d.Latency.Max < d.Latency.P99 {
		t.Fatalf("latency summary inconsistent: %+v", d.Latency)
	}
	if got := s.Stats().Frames - before.Frames; got != wantExpected {
		t.Fatalf("ref wrote %d frames, harness counted %d", got, wantExpected)
	}
}

// TestFanoutAgainstRef runs the fanout scenario in-process against the
// reference server: 300 sockets over 3 channels, every trigger must reach
// exactly its channel's 100 subscribers.
func TestFanoutAgainstRef(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioFanout)
	cfg.Conns, cfg.Channels, cfg.Rate = 300, 3, 50
	before := s.Stats()
	r := run(t, cfg)
	checkConns(t, r, 300)
	p := r.Fanout.Publish
	if p.Sent < 10 || p.OK != p.Sent || p.Errors != nil {
		t.Fatalf("publish: %+v", p)
	}
	if got := s.Stats().Events - before.Events; got != p.Sent {
		t.Fatalf("ref saw %d events, publisher sent %d", got, p.Sent)
	}
	// Every trigger has its socket arrival time, and it never comes after
	// the publisher read the answer.
	if hs := p.HTTPSocket; hs.Count != p.OK || hs.Min <= 0 || hs.P50 > p.HTTP.P50 || hs.Max > p.HTTP.Max {
		t.Fatalf("http latency at socket %+v vs in the publisher %+v", hs, p.HTTP)
	}
	checkExact(t, r.Fanout, p.Sent*100, s, before)
	if r.Client.USPerDeliver <= 0 || r.Client.KiBPerConn == 0 {
		t.Fatalf("client cost not measured: %+v", r.Client)
	}
	waitClosed(t, s)
}

// TestFanoutPollGap runs fanout with workers that sleep between polls: every
// delivery must still arrive exactly once, and the gap must be echoed in the
// result and its summary so published figures say how they were taken.
func TestFanoutPollGap(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioFanout)
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.PollGap = 200, 2, 50, 2*time.Millisecond
	before := s.Stats()
	r := run(t, cfg)
	checkConns(t, r, 200)
	checkExact(t, r.Fanout, r.Fanout.Publish.Sent*100, s, before)
	if r.Params.PollGapMS != 2 {
		t.Fatalf("params poll_gap_ms %v, want 2", r.Params.PollGapMS)
	}
	var out strings.Builder
	PrintSummary(&out, r)
	if !strings.Contains(out.String(), "poll gap 2ms") {
		t.Fatalf("summary does not state the poll gap:\n%s", out.String())
	}
	waitClosed(t, s)
}

// TestFanoutWorkerProcesses runs fanout with two worker processes (this
// test binary re-executed) and a private channel type, so signing, the
// JSON line protocol and cross-process merging are all exercised, with
// --worker-nice. The ref server's PID (this process) stands in for a
// server PID.
func TestFanoutWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	s := startRef(t)
	cfg := refConfig(s, ScenarioFanout)
	cfg.InProcess = false
	cfg.Workers, cfg.Loops = 2, 1
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.ChannelType = 200, 4, 40, "private"
	cfg.ServerPIDs = []int{s.PID()}
	nice := 7
	cfg.WorkerNice = &nice
	before := s.Stats()
	r := run(t, cfg)
	checkConns(t, r, 200)
	checkExact(t, r.Fanout, r.Fanout.Publish.Sent*50, s, before)
	if r.Client.Nice != 7 {
		t.Fatalf("workers ran at nice %d, want the --worker-nice 7", r.Client.Nice)
	}
	if r.Server == nil || r.Server.RSSReadyKiB <= 0 || r.Server.CPUPerMillion <= 0 {
		t.Fatalf("server metrics missing: %+v", r.Server)
	}
	if r.Client.Workers != 2 || r.Client.WorkerCPUS <= 0 {
		t.Fatalf("client: %+v", r.Client)
	}
	waitClosed(t, s)
}

// TestWhisperAgainstRef checks client-event accounting: presence groups of
// 5, each event reaching exactly the 4 other members.
func TestWhisperAgainstRef(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioWhisper)
	cfg.Conns, cfg.Group, cfg.Rate, cfg.ChannelType = 100, 5, 100, "presence"
	before := s.Stats()
	r := run(t, cfg)
	checkConns(t, r, 100)
	w := r.Whisper
	if w.Sent < 10 {
		t.Fatalf("only %d client events sent", w.Sent)
	}
	checkExact(t, w, w.Sent*4, s, before)
	waitClosed(t, s)
}

// TestChurnAgainstRef checks that churn cycles complete (unsubscribe and
// close answered) and leave no socket behind.
func TestChurnAgainstRef(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioChurn)
	cfg.Rate = 200
	before := s.Stats()
	r := run(t, cfg)
	ch := r.Churn
	if ch.Cycles < 40 || ch.Errors != 0 || r.Conns.Failed != 0 {
		t.Fatalf("churn: %+v, fails %v", ch, r.Conns.Fails)
	}
	if got := s.Stats().Accepted - before.Accepted; got != ch.Cycles {
		t.Fatalf("ref accepted %d sockets for %d cycles", got, ch.Cycles)
	}
	if ch.CycleTime.Count != ch.Cycles {
		t.Fatalf("cycle-time samples %d for %d cycles", ch.CycleTime.Count, ch.Cycles)
	}
	waitClosed(t, s)
}

// TestHTTPAgainstRef checks both http phases: triggers to a channel nobody
// joined are never received, the subscribed channel's are received once.
func TestHTTPAgainstRef(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioHTTP)
	cfg.Rate = 100
	before := s.Stats()
	r := run(t, cfg)
	checkConns(t, r, 1)
	h := r.HTTP
	if h.NoSubscriber.Sent < 5 || h.NoSubscriber.OK != h.NoSubscriber.Sent || h.OneSubscriber.OK != h.OneSubscriber.Sent {
		t.Fatalf("http phases: %+v / %+v", h.NoSubscriber, h.OneSubscriber)
	}
	checkExact(t, &h.Receipt, h.OneSubscriber.Sent, s, before)
	waitClosed(t, s)
}

// TestFanoutHold runs fanout with --hold against the reference server while
// pusher:ping events reach every socket: the hold section must count the
// pongs sent while holding, no drop, every socket open, and the publish
// after it must still reach everyone.
func TestFanoutHold(t *testing.T) {
	s := startRef(t)
	cfg := refConfig(s, ScenarioFanout)
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.Hold = 200, 2, 20, 800*time.Millisecond
	cfg.ServerPIDs = []int{s.PID()}
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		// The ref server relays any event name, so an API event named
		// pusher:ping looks to a client exactly like the server's ping.
		defer close(pinged)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		url := "http://127.0.0.1:" + strconv.Itoa(s.Port()) + "/apps/1/events"
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			body := `{"name":"pusher:ping","data":"{}","channels":["` + ChannelName(cfg.ChannelType, cfg.Prefix, 0) +
				`","` + ChannelName(cfg.ChannelType, cfg.Prefix, 1) + `"]}`
			if resp, err := http.Post(url, "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
		}
	}()
	r := run(t, cfg)
	close(stop)
	<-pinged
	checkConns(t, r, 200)
	h := r.Hold
	if h == nil {
		t.Fatal("no hold section in the result")
	}
	// Eight ping rounds fit in the hold; snapshots are taken at its edges,
	// so allow a round or two to fall outside.
	if h.Pings < 4*200 || h.Dropped != 0 || h.Open != 200 || h.Seconds < 0.8 || h.ServerRSSKiB <= 0 {
		t.Fatalf("hold: %+v", h)
	}
	if d := r.Fanout; d.Lost != 0 || d.Received != d.Expected || d.Expected == 0 {
		t.Fatalf("fanout after the hold: expected %d received %d lost %d", d.Expected, d.Received, d.Lost)
	}
	var out strings.Builder
	PrintSummary(&out, r)
	if !strings.Contains(out.String(), "pings answered") {
		t.Fatalf("summary does not show the hold:\n%s", out.String())
	}
	waitClosed(t, s)
}
