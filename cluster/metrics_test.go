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
	m.crossNode(e.sent, time.Now().UnixNano())
	m.crossNode(0, time.Now().UnixNano()) // an old sender's envelope: not observed
	if h := m.latency.Snapshot(); h.Count != 1 || h.Sum < 0 || h.Sum > 1 {
		t.Fatalf("latency %+v, want one observation under a second", h)
	}
}

// TestStatsExtraRoundTrip: a heartbeat carries the object SetStatsExtra
// appends, untouched, and one without it still decodes.
func TestStatsExtraRoundTrip(t *testing.T) {
	counts := func(visit func(string, int64)) { visit("1001", 3) }
	var b Broker
	plain := appendStats(nil, "n1", counts)
	if got := b.appendExtra(append([]byte(nil), plain...)); string(got) != string(plain) {
		t.Fatalf("without SetStatsExtra the envelope changed: %s", got)
	}
	b.SetStatsExtra(func(dst []byte) []byte { return append(dst, `{"1001":{"ch":2,"p99":0.0012}}`...) })
	msg := b.appendExtra(appendStats(nil, "n1", counts))
	var d decoder
	var e envelope
	if err := d.decode(string(msg), &e); err != nil {
		t.Fatalf("%s: %v", msg, err)
	}
	if e.kind != kindStats || len(e.counts) != 1 || e.counts[0].n != 3 || string(e.extra) != `{"1001":{"ch":2,"p99":0.0012}}` {
		t.Fatalf("decoded %+v extra %s from %s", e, e.extra, msg)
	}
	if err := d.decode(string(plain), &e); err != nil || len(e.extra) != 0 {
		t.Fatalf("plain heartbeat: %v, extra %q", err, e.extra)
	}
}
