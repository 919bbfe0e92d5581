//go:build !race

package cluster

import "testing"

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
