package loop_test

// Backlogs of sockets that do not keep up (backlog.go): shared frames
// counted once, resumption in order, the per-socket bound and the node
// budget, through real sockets with small receive windows.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/loop"
)

// stalledCfg keeps the kernel's share of a stalled socket small, so what
// the socket does not take lands in its backlog quickly.
func stalledCfg(maxOut, maxNode int) func(*loop.Config) {
	return func(c *loop.Config) {
		c.MaxOutboundBuffer = maxOut
		c.MaxNodeBuffer = maxNode
		c.SocketSendBuffer = 4096
		c.MaxRequestSize = 64 << 10
		c.Loops = 1 // the node budget picks its victims among one loop's sockets
	}
}

func bigData(i int) string { return fmt.Sprintf("%05d%s", i, strings.Repeat("p", 8000)) }

// readEvents reads n app events on channel from c and checks their order.
func readEvents(t *testing.T, c *wsClient, channel string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		f, err := c.readFrame(ioTimeout)
		if err != nil {
			t.Fatalf("event %d of %s: %v", i, channel, err)
		}
		if f.op != ws.OpText {
			t.Fatalf("event %d of %s: got %s", i, channel, f)
		}
		assertAppEvent(t, parseMessage(t, f.payload), channel, "ev", bigData(i))
	}
}

// TestBacklogSharesFramesAndResumes: two stalled sockets on one channel
// hold the same frames, which the node counts once; when they read again
// they get every event in order, and the node holds nothing afterwards.
func TestBacklogSharesFramesAndResumes(t *testing.T) {
	t.Parallel()
	s := startDefault(t, stalledCfg(4<<20, 256<<20))
	counters := s.srv.Hub().Counters()
	api := s.api(t)
	a := s.connect(t, withRcvBuf(4096))
	a.subscribe("shared")
	b := s.connect(t, withRcvBuf(4096))
	b.subscribe("shared")

	const n = 100
	for i := range n {
		must(t, api.Trigger("shared", "ev", bigData(i)))
	}
	// 800 KB per socket, a few KB of it in the kernel: the rest is held.
	eventually(t, "frames held for the stalled sockets", func() bool { return counters.BytesHeld.Load() > 600_000 })
	if held := counters.BytesHeld.Load(); held > n*8100 {
		t.Fatalf("%d bytes held for two sockets on %d frames of ~8 KB: shared frames must be counted once", held, n)
	}

	readEvents(t, a, "shared", 0, n)
	readEvents(t, b, "shared", 0, n)
	eventually(t, "no frames held once both read", func() bool { return counters.BytesHeld.Load() == 0 })
	if c := counters.SlowConsumerCloses.Load() + counters.NodeBudgetCloses.Load(); c != 0 {
		t.Fatalf("%d sockets closed; both stayed under the bounds", c)
	}
	// Once caught up, a socket is written directly again.
	must(t, api.Trigger("shared", "ev", bigData(n)))
	readEvents(t, a, "shared", n, 1)
	readEvents(t, b, "shared", n, 1)
}

// TestNodeBudgetClosesLargestBacklog: when the frames held for the node's
// stalled sockets pass the budget, the socket with the largest backlog is
// closed and the smaller one keeps its backlog and gets everything; a
// socket that keeps up is never touched.
func TestNodeBudgetClosesLargestBacklog(t *testing.T) {
	t.Parallel()
	s := startDefault(t, stalledCfg(4<<20, 400_000))
	counters := s.srv.Hub().Counters()
	api := s.api(t)
	big := s.connect(t, withRcvBuf(4096))
	big.subscribe("a")
	big.subscribe("b")
	small := s.connect(t, withRcvBuf(4096))
	small.subscribe("b")
	reader := s.connect(t)
	reader.subscribe("a")
	reader.subscribe("b")
	// The reader reports after each channel's events: it may lag a burst
	// for a moment (the send buffer is tiny), but it catches up.
	got := make(chan error, 2)
	go func() {
		for i := range 60 {
			f, err := reader.readFrame(3 * ioTimeout)
			if err != nil || f.op != ws.OpText {
				got <- fmt.Errorf("reader: event %d: %v %s", i, err, f)
				return
			}
			if i == 29 || i == 59 {
				got <- nil
			}
		}
	}()

	const n = 30 // 240 KB per channel
	for i := range n {
		must(t, api.Trigger("a", "ev", bigData(i)))
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Only the big socket still holds channel a's frames.
	eventually(t, "channel a held for the big socket", func() bool { return counters.BytesHeld.Load() > 180_000 })
	for i := range n {
		must(t, api.Trigger("b", "ev", bigData(i)))
	}
	eventually(t, "one node-budget close", func() bool { return counters.NodeBudgetCloses.Load() == 1 })
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	// The big socket's stream ends (its backlog was dropped)…
	for {
		if _, err := big.readFrame(ioTimeout); err != nil {
			if !isClosedErr(err) {
				t.Fatalf("big socket: want the connection closed, got %v", err)
			}
			break
		}
	}
	// …the small one gets all of channel b, in order.
	readEvents(t, small, "b", 0, n)
	if c := counters.NodeBudgetCloses.Load(); c != 1 {
		t.Fatalf("%d node-budget closes, want only the largest backlog", c)
	}
	if c := counters.SlowConsumerCloses.Load(); c != 0 {
		t.Fatalf("%d slow-consumer closes; no socket passed its own bound", c)
	}
	eventually(t, "no frames held", func() bool { return counters.BytesHeld.Load() == 0 })
}
