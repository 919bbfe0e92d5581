package cluster

import (
	"encoding/json"
	"testing"
)

func TestStatsEnvelopeRoundTrip(t *testing.T) {
	counts := []struct {
		app string
		n   int64
	}{{"1001", 2}, {`odd "id"\`, 0}, {"ü", 12345678901}}
	visit := func(f func(string, int64)) {
		for _, c := range counts {
			f(c.app, c.n)
		}
	}
	msg := appendStats(nil, "node-1", visit)

	// encoding/json is the oracle for the wire form.
	var w struct {
		V     int              `json:"v"`
		Type  string           `json:"type"`
		Node  string           `json:"node"`
		Conns map[string]int64 `json:"conns"`
	}
	if err := json.Unmarshal(msg, &w); err != nil {
		t.Fatalf("%s is not JSON: %v", msg, err)
	}
	if w.V != 1 || w.Type != "stats" || w.Node != "node-1" || len(w.Conns) != len(counts) {
		t.Fatalf("stats envelope %s decoded by encoding/json to %+v", msg, w)
	}
	for _, c := range counts {
		if w.Conns[c.app] != c.n {
			t.Errorf("conns[%q] = %d, want %d", c.app, w.Conns[c.app], c.n)
		}
	}

	var d decoder
	var e envelope
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindStats || string(e.node) != "node-1" {
		t.Fatalf("decode(%s) = %+v, %v", msg, e, err)
	}
	if len(e.counts) != len(counts) {
		t.Fatalf("decoded %d counts, want %d", len(e.counts), len(counts))
	}
	for i, c := range counts {
		if string(e.counts[i].app) != c.app || e.counts[i].n != c.n {
			t.Errorf("count %d = %q:%d, want %q:%d", i, e.counts[i].app, e.counts[i].n, c.app, c.n)
		}
	}

	// No apps is a valid report: this node has no sockets.
	if err := d.decode(string(appendStats(nil, "n", func(func(string, int64)) {})), &e); err != nil || len(e.counts) != 0 {
		t.Fatalf("empty stats decoded to %+v, %v", e, err)
	}
}

func TestStatsEnvelopeRejectsBadCounts(t *testing.T) {
	for _, in := range []string{
		`{"v":1,"type":"stats","node":"n"}`,
		`{"v":1,"type":"stats","node":"n","conns":[1]}`,
		`{"v":1,"type":"stats","node":"n","conns":{"a":-1}}`,
		`{"v":1,"type":"stats","node":"n","conns":{"a":1.5}}`,
		`{"v":1,"type":"stats","node":"n","conns":{"a":"1"}}`,
		`{"v":1,"type":"stats","node":"n","conns":{"":1}}`,
		`{"v":1,"type":"stats","conns":{"a":1}}`,
	} {
		var d decoder
		var e envelope
		if err := d.decode(in, &e); err == nil {
			t.Errorf("decode(%q) accepted %+v", in, e)
		}
	}
}
