//go:build linux

package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestProgressWhileDraining: drain pumps in quarter-second slices, and a
// broadcast to a million sockets drains for a minute or more; the progress
// line must keep coming meanwhile (it stopped for the whole broadcast of
// the 1M runs while each pump slice had a ticker of its own).
func TestProgressWhileDraining(t *testing.T) {
	var out bytes.Buffer
	// No workers: receipts never grow, so drain ends after its idle
	// wait, 0.75 s + 5 µs per socket = 2.25 s here.
	c := &coord{cfg: Config{Scenario: ScenarioFanout, Conns: 300_000}, msgs: make(chan wmsg, 1),
		start: time.Now(), stderr: &out, phase: "drain"}
	defer c.stopProgress()
	c.lastAt = time.Now()
	began := time.Now()
	if err := c.drain(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Fatalf("drain returned after %v, before its idle wait", took)
	}
	lines := strings.Count(out.String(), "] drain ")
	if lines < 1 {
		t.Fatalf("no progress line in a %v drain:\n%s", time.Since(began), out.String())
	}
}

// TestRunBudgetCoversEveryPhase: the whole-run deadline must leave room
// for every phase at its own limit. A 1M run whose broadcast took 125 s on
// a slow box was cut off while collecting results because the budget had
// no room for the drain.
func TestRunBudgetCoversEveryPhase(t *testing.T) {
	for _, cfg := range []Config{
		{Conns: 1_000_000, Ramp: 8000, ConnectTimeout: 300 * time.Second, Hold: 70 * time.Second, Duration: time.Second},
		{Conns: 100, ConnectTimeout: 5 * time.Second, Duration: 400 * time.Millisecond, Settle: 2 * time.Second},
	} {
		phases := connectLimit(cfg) + cfg.Hold + cfg.Duration + drainLimit(cfg.Conns) + cfg.Settle + reportWait
		if got := runBudget(cfg); got <= phases {
			t.Errorf("conns %d: budget %v, phases at their limits take %v", cfg.Conns, got, phases)
		}
	}
	if d := drainLimit(1_000_000); d < 120*time.Second {
		t.Errorf("drain limit for a million sockets %v: their broadcast has taken 125 s here", d)
	}
}
