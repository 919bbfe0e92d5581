//go:build linux

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Comparison is the compare command's result: the same fanout run against
// the target and against the reference server, and target/ref ratios
// (above 1 means the target costs more or is slower).
type Comparison struct {
	Target *Result             `json:"target"`
	Ref    *Result             `json:"ref"`
	Ratios map[string]*float64 `json:"ratios"`
}

// RefReady is the line `reverb-bench ref` prints on stdout once listening.
type RefReady struct {
	PID   int `json:"pid"`
	Port  int `json:"port"`
	Loops int `json:"loops"`
}

// Compare runs the fanout scenario of cfg against the target server, then
// starts a reference server on 127.0.0.1 (a child process running
// `<this binary> ref`, or in-process with cfg.InProcess), runs the same
// fanout against it with its PID as the server PID, and stops it.
func Compare(ctx context.Context, cfg Config, progress io.Writer) (*Comparison, error) {
	cfg.Scenario = ScenarioFanout
	target, err := Run(ctx, cfg, progress)
	if err != nil {
		return nil, fmt.Errorf("target run: %w", err)
	}
	ref, pid, stop, err := startRefProcess(cfg)
	if err != nil {
		return nil, err
	}
	defer stop()
	rc := cfg
	rc.Host, rc.Port, rc.Path, rc.ServerPIDs = "127.0.0.1", ref, "", []int{pid}
	if progress != nil && !cfg.NoProgress {
		fmt.Fprintf(progress, "reference server pid %d on 127.0.0.1:%d\n", pid, ref)
	}
	refRes, err := Run(ctx, rc, progress)
	if err != nil {
		return nil, fmt.Errorf("ref run: %w", err)
	}
	c := &Comparison{Target: target, Ref: refRes, Ratios: map[string]*float64{}}
	t, r := target.Fanout, refRes.Fanout
	c.Ratios["deliveries_per_s"] = ratio(t.PerSec, r.PerSec)
	c.Ratios["p50_latency"] = ratio(float64(t.Latency.P50), float64(r.Latency.P50))
	c.Ratios["p99_latency"] = ratio(float64(t.Latency.P99), float64(r.Latency.P99))
	c.Ratios["p999_latency"] = ratio(float64(t.Latency.P999), float64(r.Latency.P999))
	if target.Server != nil && refRes.Server != nil {
		c.Ratios["server_cpu_per_delivery"] = ratio(target.Server.CPUPerMillion, refRes.Server.CPUPerMillion)
		c.Ratios["server_kib_per_conn"] = ratio(target.Server.KiBPerConn, refRes.Server.KiBPerConn)
	}
	return c, nil
}

func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil // JSON null: no meaningful ratio
	}
	v := a / b
	return &v
}

// startRefProcess starts the reference server and returns its port, PID and
// a function that stops it.
func startRefProcess(cfg Config) (port, pid int, stop func(), err error) {
	if cfg.InProcess {
		s, err := StartRef("127.0.0.1", 0, cfg.RefLoops)
		if err != nil {
			return 0, 0, nil, err
		}
		return s.Port(), s.PID(), func() { s.Close() }, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, nil, err
	}
	cmd := exec.Command(exe, "ref", "--host", "127.0.0.1", "--port", "0", "--loops", strconv.Itoa(cfg.RefLoops))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, err
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	lines := make(chan RefReady, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r RefReady
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Port > 0 {
				lines <- r
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case r := <-lines:
		return r.Port, r.PID, stop, nil
	case <-time.After(10 * time.Second):
		stop()
		return 0, 0, nil, errors.New("bench: reference server did not start")
	}
}

// PrintComparison writes both summaries and a side-by-side table.
func PrintComparison(w io.Writer, c *Comparison) {
	fmt.Fprintln(w, "== target ==")
	PrintSummary(w, c.Target)
	fmt.Fprintln(w, "== ref (bare write(2) ceiling) ==")
	PrintSummary(w, c.Ref)
	t, r := c.Target, c.Ref
	row := func(name, a, b string, q *float64) {
		rs := "-"
		if q != nil {
			rs = fmt.Sprintf("x%.2f", *q)
		}
		fmt.Fprintf(w, "  %-26s %14s %14s %8s\n", name, a, b, rs)
	}
	fmt.Fprintf(w, "== side by side ==\n  %-26s %14s %14s %8s\n", "", "target", "ref", "ratio")
	row("deliveries/s", fmt.Sprintf("%.0f", t.Fanout.PerSec), fmt.Sprintf("%.0f", r.Fanout.PerSec), c.Ratios["deliveries_per_s"])
	row("loss", strconv.FormatUint(t.Fanout.Lost, 10), strconv.FormatUint(r.Fanout.Lost, 10), nil)
	row("latency p50", t.Fanout.Latency.P50.String(), r.Fanout.Latency.P50.String(), c.Ratios["p50_latency"])
	row("latency p99", t.Fanout.Latency.P99.String(), r.Fanout.Latency.P99.String(), c.Ratios["p99_latency"])
	row("latency p99.9", t.Fanout.Latency.P999.String(), r.Fanout.Latency.P999.String(), c.Ratios["p999_latency"])
	row("latency max", t.Fanout.Latency.Max.String(), r.Fanout.Latency.Max.String(), nil)
	if tp, rp := t.Fanout.Publish, r.Fanout.Publish; tp != nil && rp != nil {
		row("trigger p99 (publisher)", tp.HTTP.P99.String(), rp.HTTP.P99.String(), nil)
		row("trigger p99 (at socket)", tp.HTTPSocket.P99.String(), rp.HTTPSocket.P99.String(), nil)
	}
	if t.Server != nil && r.Server != nil {
		row("server cpu s / 1M deliv.", fmt.Sprintf("%.2f", t.Server.CPUPerMillion), fmt.Sprintf("%.2f", r.Server.CPUPerMillion), c.Ratios["server_cpu_per_delivery"])
		row("server KiB / conn", fmt.Sprintf("%.2f", t.Server.KiBPerConn), fmt.Sprintf("%.2f", r.Server.KiBPerConn), c.Ratios["server_kib_per_conn"])
	} else {
		fmt.Fprintln(w, "  (no --server-pid for the target: server CPU and memory not compared)")
	}
	row("client µs / delivery", fmt.Sprintf("%.2f", t.Client.USPerDeliver), fmt.Sprintf("%.2f", r.Client.USPerDeliver), nil)
}
