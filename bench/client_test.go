//go:build linux

package bench

import (
	"strconv"
	"testing"

	"github.com/goreverb/reverb/wsproto"
)

// fanoutFrames returns n server frames as a Pusher server sends bench
// events, with Reverb's key order and the data double-encoded.
func fanoutFrames(n int) []byte {
	var b []byte
	for i := range n {
		p := `{"event":"bench","data":"{\"x\":\"rb!` + strconv.Itoa(i) + `!1700000000000000000!\",\"p\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}","channel":"bench-1"}`
		b = wsproto.AppendText(b, []byte(p))
	}
	return b
}

func testLoop() (*clientLoop, *cconn) {
	w := &worker{job: Job{Scenario: ScenarioFanout, Channels: 2}, trackSeq: true}
	l := &clientLoop{w: w, subsNow: make([]int32, 2), fails: map[string]uint64{}, errCodes: map[int]uint64{}, closeCodes: map[int]uint64{}}
	l.now = 1700000000000000000 + 5000
	return l, &cconn{state: stReady, ch: 1}
}

// TestClientConsume checks receipt parsing across a batch that ends in a
// partial frame: complete frames are counted with their latency, the rest
// is left for the next read.
func TestClientConsume(t *testing.T) {
	l, c := testLoop()
	buf := fanoutFrames(10)
	whole := len(buf)
	buf = append(buf, fanoutFrames(1)[:20]...)
	if used := l.consume(c, buf); used != whole {
		t.Fatalf("consumed %d bytes, want the %d of the complete frames", used, whole)
	}
	if l.st.recv != 10 || l.lat.Count() != 10 || l.lat.Max() != 5000 {
		t.Fatalf("recv %d, latency n=%d max=%d", l.st.recv, l.lat.Count(), l.lat.Max())
	}
	for seq := range 10 {
		if l.got[seq] != 1 {
			t.Fatalf("seq %d counted %d times", seq, l.got[seq])
		}
	}
	if l.stray != 0 || c.state != stReady {
		t.Fatalf("stray %d, state %d", l.stray, c.state)
	}
}

// TestClientMessageParsers checks the scans used instead of a JSON parse.
func TestClientMessageParsers(t *testing.T) {
	est := []byte(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":30}"}`)
	if got := string(eventName(est)); got != "pusher:connection_established" {
		t.Errorf("event name %q", got)
	}
	if got := string(socketID(est)); got != "123.456" {
		t.Errorf("socket id %q", got)
	}
	spaced := []byte(`{ "data" : {}, "event" : "pusher:ping" }`)
	if got := string(eventName(spaced)); got != "pusher:ping" {
		t.Errorf("spaced event name %q", got)
	}
	errMsg := []byte(`{"event":"pusher:error","data":"{\"code\":4009,\"message\":\"Connection is unauthorized\"}"}`)
	if got := errorCode(errMsg); got != 4009 {
		t.Errorf("error code %d", got)
	}
	if _, _, ok := parseUint([]byte("12x")); ok {
		t.Error("parseUint accepted a token without '!'")
	}
}

// TestClientConsumeAllocs guards the fan-out receive path: no allocation
// per message once the per-sequence table has grown.
func TestClientConsumeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	l, c := testLoop()
	buf := fanoutFrames(64)
	l.consume(c, buf)
	if a := testing.AllocsPerRun(100, func() { l.consume(c, buf) }); a != 0 {
		t.Fatalf("%v allocations per batch of 64 frames", a)
	}
}

func BenchmarkClientConsume(b *testing.B) {
	l, c := testLoop()
	buf := fanoutFrames(64)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		l.consume(c, buf)
	}
}
