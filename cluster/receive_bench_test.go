package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

// countConn is a socket that counts the frames and bytes it is sent.
type countConn struct{ frames, bytes int }

func (c *countConn) Send(frame []byte) { c.frames++; c.bytes += len(frame) }
func (c *countConn) Close(int, string) {}

type nopPoster struct{}

func (nopPoster) Wake() {}

// receiveRig is one node's receive side without Redis: a broker attached to
// a one-loop hub with one subscriber of "bench", and the receiver state the
// pub/sub goroutine keeps.
type receiveRig struct {
	b    *Broker
	r    receiver
	l    *hub.Local
	conn *countConn
}

func newReceiveRig(tb testing.TB) *receiveRig {
	apps, err := pusher.NewAppSet([]pusher.App{pusher.App{ID: "1001", Key: "key", Secret: "s"}.WithDefaults()})
	if err != nil {
		tb.Fatal(err)
	}
	h := hub.New(hub.Options{Apps: apps, Loops: 1, Frame: wsproto.AppendText})
	l := h.Local(0)
	l.Bind(nopPoster{})
	rig := &receiveRig{l: l, conn: &countConn{}}
	var s hub.Session
	if !l.Open(&s, rig.conn, "key", nil) {
		tb.Fatal("open refused")
	}
	l.Message(&s, []byte(`{"event":"pusher:subscribe","data":{"channel":"bench"}}`))
	l.Drain(0)
	b, err := New(Config{Addr: "127.0.0.1:1"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	b.Attach(h)
	rig.b = b
	rig.r = receiver{b: b, intern: make(map[string]string)}
	rig.conn.frames = 0
	return rig
}

// benchReceive runs what the pub/sub goroutine does with one message that
// go-redis has read (its own reading is not included), then the loop's
// drain that hands the frame to the subscriber. Allocations per op are
// this node's per received message.
func benchReceive(b *testing.B, payload string) {
	rig := newReceiveRig(b)
	env := string(appendMessage(nil, "3f2a9c0d11e4b7a8", "1001", "bench", "", []byte(payload)))
	m := &redis.Message{Channel: "bench", Payload: env}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		receiveOne(rig.b, &rig.r, m)
		rig.l.Drain(0)
		rig.l.ResetScratch() // what the loop does after its flush
	}
	if rig.conn.frames != b.N {
		b.Fatalf("%d frames delivered for %d messages", rig.conn.frames, b.N)
	}
}

// receiveOne is the per-message work of runReceiver after go-redis returned
// msg.
func receiveOne(b *Broker, r *receiver, msg any) {
	now := time.Now().UnixNano()
	b.lastSeen.Store(now)
	b.onPubSub(r, msg, now)
}

func BenchmarkReceiveSmall(b *testing.B) {
	benchReceive(b, `{"event":"tick","channel":"bench","data":"{\"id\":42,\"status\":\"shipped\"}"}`)
}

func BenchmarkReceive1KiB(b *testing.B) {
	data := strings.Repeat(`x\"y`, 250)
	benchReceive(b, `{"event":"tick","channel":"bench","data":"`+data+`"}`)
}
