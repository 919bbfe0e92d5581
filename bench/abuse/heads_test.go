//go:build linux

package abuse

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/goreverb/reverb/loop"
)

// TestAbuseHeads: sockets that connect and send nothing, and sockets that
// send a request head one byte at a time, are all closed in time (the
// dribblers answered 408 first), while a well-behaved client connects and
// is served during the attack. Scale: 2,000 of each against the real
// binary with its default settings, all closed within 60 s.
func TestAbuseHeads(t *testing.T) {
	each, every, limit := 20, 200*time.Millisecond, 10*time.Second
	var tg *abuseTarget
	if abuseScale() {
		each, every, limit = 2_000, time.Second, 60*time.Second
		tg = abuseStartBinary(t)
	} else {
		tg = abuseStartLocal(t, abuseApp(nil), func(c *loop.Config) {
			c.HeadTimeout = time.Second
			c.HTTPIdleTimeout = 2 * time.Second
		})
	}

	type result struct {
		after time.Duration
		got   []byte
		err   error
	}
	silent := make([]result, each)
	dribbled := make([]result, each)
	var wg sync.WaitGroup
	start := time.Now()
	watch := func(c net.Conn, r *result, stop chan struct{}) {
		defer wg.Done()
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(limit + 30*time.Second))
		r.got, r.err = io.ReadAll(c)
		r.after = time.Since(start)
		if stop != nil {
			close(stop)
		}
	}
	for i := range each {
		c, err := net.DialTimeout("tcp", tg.addr, 10*time.Second)
		if err != nil {
			t.Fatalf("silent %d: %v", i, err)
		}
		wg.Add(1)
		go watch(c, &silent[i], nil)

		d, err := net.DialTimeout("tcp", tg.addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dribbler %d: %v", i, err)
		}
		stop := make(chan struct{})
		wg.Add(2)
		go watch(d, &dribbled[i], stop)
		go func() {
			defer wg.Done()
			head := []byte("GET /app/" + abuseKey + " HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			tick := time.NewTicker(every)
			defer tick.Stop()
			for j := 0; ; j++ {
				b := byte('a')
				if j < len(head) {
					b = head[j]
				}
				if _, err := d.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	opened := time.Since(start)

	// A well-behaved client during the attack.
	w, err := abuseDial(tg.addr)
	served := err == nil
	if served {
		if err := w.send(`{"event":"pusher:subscribe","data":{"channel":"calm"}}`); err != nil {
			served = false
		} else if _, err := w.readUntil("subscription_succeeded", 5*time.Second); err != nil {
			served = false
		}
		w.close()
	}
	wg.Wait()

	worst := func(rs []result) (time.Duration, int) {
		var worst time.Duration
		bad := 0
		for _, r := range rs {
			worst = max(worst, r.after)
			if r.err != nil && !isReset(r.err) {
				bad++
			}
		}
		return worst, bad
	}
	sw, sbad := worst(silent)
	dw, dbad := worst(dribbled)
	with408 := 0
	for _, r := range dribbled {
		if bytes.HasPrefix(r.got, []byte("HTTP/1.1 408 ")) {
			with408++
		}
	}
	t.Logf("opened %d silent + %d dribbling sockets in %v", each, each, opened.Round(time.Millisecond))
	target := "<= " + limit.String()
	abuseFigure(t, "heads: silent sockets all closed after", sw.Round(100*time.Millisecond).String(), target, sbad == 0 && sw <= limit)
	abuseFigure(t, "heads: dribbling sockets all closed after", dw.Round(100*time.Millisecond).String(), target, dbad == 0 && dw <= limit)
	abuseFigure(t, "heads: dribblers answered 408", fmt.Sprintf("%d/%d", with408, each), "all", with408 == each)
	abuseFigure(t, "heads: client served during the attack", fmt.Sprint(served), "true", served)
	if c := tg.counters(); c != nil && c.HeadDeadlineCloses.Load() != uint64(each) {
		t.Errorf("HeadDeadlineCloses = %d, want %d", c.HeadDeadlineCloses.Load(), each)
	}
}

// isReset reports a connection reset, which a close with unread input
// causes: it still counts as closed.
func isReset(err error) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte("reset by peer"))
}
