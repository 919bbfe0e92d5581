package cluster

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// The encoder is checked against encoding/json as the oracle.
func TestMessageEnvelopeRoundTrip(t *testing.T) {
	payload := []byte(`{"event":"e","channel":"c#1","data":"{\"a\":\"\u003c\\\"\"}"}`)
	cases := []struct{ node, app, channel, except string }{
		{"n1", "1001", "news", ""},
		{"n1", "1001", "private-chat.1", "123.456"},
		{"odd \"node\"\\", "app\n\t\x01", "#server-to-user-ü", "1.2"},
	}
	var d decoder
	var e envelope
	for _, c := range cases {
		msg := appendMessage(nil, c.node, c.app, c.channel, c.except, payload)
		var oracle struct {
			V       int             `json:"v"`
			Type    string          `json:"type"`
			Node    string          `json:"node"`
			App     string          `json:"app"`
			Channel string          `json:"channel"`
			Except  *string         `json:"except"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(msg, &oracle); err != nil {
			t.Fatalf("%q is not JSON: %v", msg, err)
		}
		if oracle.V != 1 || oracle.Type != "message" || oracle.Node != c.node || oracle.App != c.app ||
			oracle.Channel != c.channel || !bytes.Equal(oracle.Payload, payload) {
			t.Fatalf("encoding/json reads %+v from %s", oracle, msg)
		}
		if (oracle.Except == nil) != (c.except == "") || (oracle.Except != nil && *oracle.Except != c.except) {
			t.Fatalf("except = %v, want %q", oracle.Except, c.except)
		}

		if err := d.decode(string(msg), &e); err != nil {
			t.Fatalf("decode %s: %v", msg, err)
		}
		if e.kind != kindMessage || string(e.node) != c.node || string(e.app) != c.app ||
			string(e.channel) != c.channel || string(e.except) != c.except {
			t.Fatalf("decoded %+v from %s", e, msg)
		}
		// Byte for byte, escapes included: remote subscribers get what
		// local ones got.
		if !bytes.Equal(e.payload, payload) {
			t.Fatalf("payload\n got %s\nwant %s", e.payload, payload)
		}
	}
}

func TestControlEnvelopes(t *testing.T) {
	var d decoder
	var e envelope
	msg := appendTerminate(nil, "n", "1001", `user "7"`)
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindTerminate || string(e.app) != "1001" || string(e.user) != `user "7"` {
		t.Fatalf("terminate %s decoded to %+v, %v", msg, e, err)
	}
	msg = appendRestart(nil, "cli")
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindRestart || string(e.node) != "cli" {
		t.Fatalf("restart %s decoded to %+v, %v", msg, e, err)
	}
}

func TestDecodeRejectsForeignInput(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage",
		"null",
		`"string"`,
		`[{"v":1}]`,
		`{"type":"message","application":"O:26:\"Laravel\\Reverb\\Application\"","payload":{"event":"x"}}`,
		`{"v":0,"type":"restart","node":"n"}`,
		`{"v":2,"type":"restart","node":"n"}`,
		`{"v":1.5,"type":"restart","node":"n"}`,
		`{"v":"1","type":"restart","node":"n"}`,
		`{"v":1,"type":"restart"}`,
		`{"v":1,"type":"restart","node":7}`,
		`{"v":1,"type":"metrics","node":"n"}`,
		`{"v":1,"node":"n"}`,
		`{"v":1,"type":"message","node":"n","app":"a","channel":"c"}`,
		`{"v":1,"type":"message","node":"n","app":"a","channel":"c","payload":[1]}`,
		`{"v":1,"type":"message","node":"n","app":"","channel":"c","payload":{}}`,
		`{"v":1,"type":"message","node":"n","app":"a","payload":{}}`,
		`{"v":1,"type":"terminate","node":"n","app":"a"}`,
		`{"v":1,"type":"message","node":"n","app":"a","channel":"c","payload":{}`,
		`{"v":1,"type":"query","node":"n","app":"a","name":"c"}`,
		`{"v":1,"type":"query","node":"n","id":-1,"app":"a","name":"c"}`,
		`{"v":1,"type":"answer","node":"n","id":1}`,
		`{"v":1,"type":"answer","node":"n","id":1,"channels":[["c",1,0]]}`,
		`{"v":1,"type":"answer","node":"n","id":1,"channels":[["c","1",0,[]]]}`,
		`{"v":1,"type":"presence","node":"n","app":"a","channel":"c"}`,
		`{"v":1,"type":"presence","node":"n","app":"a","channel":"c","user":"u","m":["u"]}`,
		`{"v":1,"type":"snapshot","node":"n","app":"a","channel":"c"}`,
		`{"v":1,"type":"snapshot","node":"n","app":"a","channel":"c","members":[["n","u","u"]]}`,
		`{"v":1,"type":"snapshot","node":"n","app":"a","channel":"c","members":[[1,"u","u",null]]}`,
		`{"v":1,"type":"snapshot","node":"n","app":"a","channel":"c","members":[],"nodes":[1]}`,
		`{"v":1,"type":"cached","node":"n","app":"a","channel":"c","payload":"x"}`,
	} {
		var d decoder
		var e envelope
		if err := d.decode(in, &e); err == nil {
			t.Errorf("decode(%q) accepted %+v", in, e)
		}
	}
}

// TestStateEnvelopes decodes what the presence, sync and query paths write.
func TestStateEnvelopes(t *testing.T) {
	var d decoder
	var e envelope
	msg := appendPresence(nil, "n", "1001", "presence-r", "u\n1", []byte(`"u\n1",{"name":"Ann"}`))
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindPresence || !e.on || string(e.user) != "u\n1" ||
		string(e.id) != `"u\n1"` || string(e.info) != `{"name":"Ann"}` {
		t.Fatalf("presence %s decoded to %+v, %v", msg, e, err)
	}
	msg = appendPresence(nil, "n", "1001", "presence-r", "u", nil)
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindPresence || e.on {
		t.Fatalf("presence off %s decoded to %+v, %v", msg, e, err)
	}
	in := `{"v":1,"type":"snapshot","app":"a","channel":"c","node":"n","nodes":["m"],"members":[["m","u1",7,null],["k","u\u00e9","u\u00e9",{"x":[1]}]]}`
	if err := d.decode(in, &e); err != nil || e.kind != kindSnapshot || len(e.members) != 2 || len(e.sure) != 1 ||
		string(e.members[0].node) != "m" || string(e.members[0].id) != "7" || string(e.members[0].info) != "null" ||
		string(e.members[1].user) != "u\u00e9" && string(e.members[1].user) != "ué" || string(e.members[1].info) != `{"x":[1]}` {
		t.Fatalf("snapshot decoded to %+v, %v", e, err)
	}
	msg = appendQuery(nil, "n", 42, "1001", "presence-", true, false)
	if err := d.decode(string(msg), &e); err != nil || e.kind != kindQuery || e.qid != 42 || !e.prefix || e.users || string(e.channel) != "presence-" {
		t.Fatalf("query %s decoded to %+v, %v", msg, e, err)
	}
	in = `{"v":1,"type":"answer","node":"n","id":42,"channels":[["c",2,1,["u",3]]]}`
	if err := d.decode(in, &e); err != nil || e.kind != kindAnswer || len(e.chans) != 1 || e.chans[0].subs != 2 ||
		e.chans[0].count != 1 || len(e.chans[0].ids) != 2 || string(e.chans[0].ids[1]) != "3" {
		t.Fatalf("answer decoded to %+v, %v", e, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(string(appendMessage(nil, "n", "1001", "news", "1.2", []byte(`{"event":"e","data":"x"}`))))
	f.Add(string(appendTerminate(nil, "n", "1001", "u")))
	f.Add(string(appendRestart(nil, "n")))
	f.Add(`{"type":"message","application":"O:1:\"x\"","payload":{}}`)
	f.Add(string(appendPresence(nil, "n", "1001", "presence-r", "u", []byte(`"u",{"a":1}`))))
	f.Add(`{"v":1,"type":"snapshot","app":"a","channel":"c","node":"n","nodes":["m"],"members":[["m","u","u",null]]}`)
	f.Add(`{"v":1,"type":"cached","app":"a","channel":"c","node":"n","payload":{"event":"e"}}`)
	f.Add(string(appendQuery(nil, "n", 7, "1001", "presence-", true, true)))
	f.Add(`{"v":1,"type":"answer","node":"n","id":7,"channels":[["c",2,1,["u"]]]}`)
	f.Add(`{"v":1,"type":"message","node":"n","app":"1","channel":"c","t":12,"payload":{"event":"e"}}`)
	f.Add(`{"v":1,"type":"message","node":"n\u0041","app":"1","channel":"c","payload":{}}`)
	f.Add(`{"v":1,"type":"message","node":"n","app":"1","channel":"c","payload":{"a":1},"x":2}`)
	f.Fuzz(func(t *testing.T, in string) {
		var d decoder
		var e envelope
		// The pass-through reader and the parse tree agree on every
		// envelope in appendMessage's layout (payload last, one object).
		var fast, tree envelope
		if readMessage(in, &fast) && fastjson.ValidateBytes(fast.payload) == nil {
			var dt decoder
			if dt.decodeTree(in, &tree) == nil {
				if tree.kind != kindMessage || string(fast.node) != string(tree.node) || string(fast.app) != string(tree.app) ||
					string(fast.channel) != string(tree.channel) || string(fast.except) != string(tree.except) ||
					fast.sent != tree.sent || !bytes.Equal(fast.payload, tree.payload) {
					t.Fatalf("pass-through and parse tree disagree on %q", in)
				}
			}
		}
		if d.decode(in, &e) != nil || e.kind != kindMessage {
			return
		}
		// What we accept, we can write again and read back the same.
		node, app, ch, ex := string(e.node), string(e.app), string(e.channel), string(e.except)
		payload := append([]byte(nil), e.payload...)
		msg := appendMessage(nil, node, app, ch, ex, payload)
		var d2 decoder
		var e2 envelope
		if err := d2.decode(string(msg), &e2); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", msg, err)
		}
		if string(e2.node) != node || string(e2.app) != app || string(e2.channel) != ch ||
			string(e2.except) != ex || !bytes.Equal(e2.payload, payload) {
			t.Fatalf("round trip changed %q", in)
		}
	})
}

func BenchmarkAppendMessage(b *testing.B) {
	payload := []byte(`{"event":"App\\Events\\OrderShipped","channel":"orders.42","data":"{\"id\":42,\"status\":\"shipped\"}"}`)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendMessage(buf[:0], "3f2a9c0d11e4b7a8", "1001", "orders.42", "123456.789012", payload)
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	msg := string(appendMessage(nil, "3f2a9c0d11e4b7a8", "1001", "orders.42", "123456.789012",
		[]byte(`{"event":"App\\Events\\OrderShipped","channel":"orders.42","data":"{\"id\":42,\"status\":\"shipped\"}"}`)))
	var d decoder
	var e envelope
	b.ReportAllocs()
	for b.Loop() {
		if err := d.decode(msg, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMessage1K decodes a message envelope carrying a 1 KiB
// event, the size where parsing and re-encoding the payload used to
// dominate (README, "Cross-node delivery").
func BenchmarkDecodeMessage1K(b *testing.B) {
	data := strings.Repeat("x", 1000)
	msg := string(appendMessage(nil, "3f2a9c0d11e4b7a8", "1001", "private-orders.42", "123456.789012",
		[]byte(`{"event":"App\\Events\\OrderShipped","channel":"private-orders.42","data":"{\"note\":\"`+data+`\"}"}`)))
	var d decoder
	var e envelope
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := d.decode(msg, &e); err != nil || len(e.payload) < 1000 {
			b.Fatal(err)
		}
	}
}

// TestMessagePassThrough checks that what appendMessage writes is read
// without a parse tree, its payload handed on as the very bytes that
// arrived, and that heads the fast reader does not take (escaped strings)
// still decode through the parse tree to the same fields.
func TestMessagePassThrough(t *testing.T) {
	payload := []byte(`{"event":"e","channel":"c","data":"{\"a\":1}"}`)
	msg := string(appendMessage(nil, "node-1", "1001", "c", "1.2", payload))
	var e envelope
	if !readMessage(msg, &e) {
		t.Fatalf("appendMessage's layout not taken by the pass-through: %s", msg)
	}
	if &e.payload[0] != &bytesOf(msg)[strings.Index(msg, `"payload":`)+len(`"payload":`)] {
		t.Fatal("payload was copied, not passed through")
	}
	if string(e.payload) != string(payload) || string(e.node) != "node-1" || string(e.app) != "1001" ||
		string(e.channel) != "c" || string(e.except) != "1.2" || e.sent == 0 {
		t.Fatalf("fields: %+v", e)
	}
	escaped := string(appendMessage(nil, "node\"1", "1001", "c", "", payload))
	var d decoder
	if readMessage(escaped, &e) {
		t.Fatal("an escaped head was taken by the pass-through")
	}
	if err := d.decode(escaped, &e); err != nil || string(e.node) != `node"1` || string(e.payload) != string(payload) {
		t.Fatalf("escaped head through the parse tree: %v %+v", err, e)
	}
}

// TestMessageCutAnywhere: a message envelope cut at any length is refused
// by both readers, never half-delivered.
func TestMessageCutAnywhere(t *testing.T) {
	msg := string(appendMessage(nil, "n1", "1001", "news", "1.2", []byte(`{"event":"e","channel":"news","data":"{\"a\":1}"}`)))
	var d decoder
	var e envelope
	for i := range len(msg) {
		if err := d.decode(msg[:i], &e); err == nil {
			t.Fatalf("%q (cut at %d) accepted as %+v", msg[:i], i, e)
		}
	}
}
