package cluster

import (
	"testing"
	"time"
)

// TestMessageCarriesSendTime: a message envelope says when it was queued,
// and a receiver observes the difference as cross-node latency.
func TestMessageCarriesSendTime(t *testing.T) {
	before := time.Now().UnixMicro()
	msg := appendMessage(nil, "n1", "1001", "news", "", []byte(`{"event":"e","channel":"news","data":"x"}`))
	after := time.Now().UnixMicro()
	var d decoder
	var e envelope
	if err := d.decode(string(msg), &e); err != nil {
		t.Fatal(err)
	}
	if e.sent < before || e.sent > after {
		t.Fatalf("t = %d, want within [%d, %d]", e.sent, before, after)
	}
	if string(e.payload) != `{"event":"e","channel":"news","data":"x"}` {
		t.Fatalf("payload %s", e.payload)
	}
	var m metrics
	m.crossNode(e.sent)
	m.crossNode(0) // an old sender's envelope: not observed
	if h := m.latency.Snapshot(); h.Count != 1 || h.Sum < 0 || h.Sum > 1 {
		t.Fatalf("latency %+v, want one observation under a second", h)
	}
}
