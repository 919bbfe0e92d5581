//go:build !race

package cluster

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Publish runs on the loops and the HTTP path: in steady state (a pooled
// buffer coming back from the publisher) it must not allocate.
func TestPublishDoesNotAllocate(t *testing.T) {
	b, err := New(Config{Addr: "127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	payload := []byte(`{"event":"e","channel":"news","data":"{\"n\":1}"}`)
	allocs := testing.AllocsPerRun(1000, func() {
		b.Publish("1001", "news", payload, "12.34")
		m := <-b.queue // what the publisher does once Redis took it
		b.putBuf(m.buf)
	})
	if allocs != 0 {
		t.Fatalf("Publish allocates %.1f times per call", allocs)
	}
}

// A message from another node costs its receiver one allocation: the frame
// the hub builds from the payload bytes (one copy) and shares among the
// subscribers. Decoding, the channel name and the excluded socket id take
// none.
func TestReceiveAllocatesOnlyTheFrame(t *testing.T) {
	rig := newReceiveRig(t)
	payload := []byte(`{"event":"e","channel":"bench","data":"{\"n\":1}"}`)
	for _, except := range []string{"", "123456789.987654321"} {
		m := &redis.Message{Channel: "bench", Payload: string(appendMessage(nil, "other", "1001", "bench", except, payload))}
		before := rig.conn.frames
		allocs := testing.AllocsPerRun(1000, func() {
			receiveOne(rig.b, &rig.r, m)
			rig.l.Drain(0)
			rig.l.ResetScratch()
		})
		if got := rig.conn.frames - before; got != 1001 {
			t.Fatalf("except %q: %d frames delivered for 1001 messages", except, got)
		}
		if allocs != 1 {
			t.Fatalf("except %q: receiving a message allocates %.1f times, want 1 (the frame)", except, allocs)
		}
	}
}
