//go:build linux

package abuse

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/pusher"
)

// TestAbuseChannelFlood: one socket asks for many distinct public channels
// in one burst. Every request is answered (acknowledged up to the
// per-socket cap, refused with 4303 beyond it) within 10 s, the server's
// RSS grows by at most 16 MiB (scale: 50,000 channels against the real
// binary), and the socket still answers pusher:ping.
func TestAbuseChannelFlood(t *testing.T) {
	n := 2_000
	var tg *abuseTarget
	if abuseScale() {
		n = 50_000
		tg = abuseStartBinary(t)
	} else {
		tg = abuseStartLocal(t, abuseApp(nil), nil)
	}
	limit := pusher.DefaultMaxChannels

	w, err := abuseDial(tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	rss0 := tg.rssKiB(t)
	stop := make(chan struct{})
	peak := abusePeakRSS(t, tg, stop)

	start := time.Now()
	wrote := make(chan error, 1)
	go func() {
		var buf []byte
		for i := 0; i < n; i++ {
			buf = abuseFrame(buf, ws.OpText, []byte(`{"event":"pusher:subscribe","data":{"channel":"flood-`+strconv.Itoa(i)+`"}}`))
			if len(buf) > 64<<10 || i == n-1 {
				_ = w.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if _, err := w.c.Write(buf); err != nil {
					wrote <- err
					return
				}
				buf = buf[:0]
			}
		}
		wrote <- nil
	}()
	var acked, refused, other int
	_ = w.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for acked+refused+other < n {
		m, err := w.readMsg()
		if err != nil {
			t.Fatalf("after %d acks, %d refusals: %v", acked, refused, err)
		}
		switch {
		case bytes.Contains(m, []byte(`"pusher_internal:subscription_succeeded"`)):
			acked++
		case bytes.Contains(m, []byte(`"pusher:error"`)) && bytes.Contains(m, []byte(`4303`)):
			refused++
		default:
			other++
			t.Errorf("unexpected answer: %s", m)
		}
	}
	elapsed := time.Since(start)
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.send(`{"event":"pusher:ping","data":{}}`); err != nil {
		t.Fatal(err)
	}
	_, pingErr := w.readUntil(`"pusher:pong"`, 5*time.Second)
	close(stop)
	growth := <-peak - rss0

	abuseFigure(t, "channel flood: requests answered", fmt.Sprintf("%d/%d", acked+refused, n), "all", acked+refused == n)
	abuseFigure(t, "channel flood: acknowledged (per-socket cap)", strconv.Itoa(acked), strconv.Itoa(limit), acked == limit)
	abuseFigure(t, "channel flood: time to answer every request", elapsed.Round(time.Millisecond).String(), "<= 10s", elapsed <= 10*time.Second)
	abuseFigure(t, "channel flood: pusher:ping answered after", fmt.Sprint(pingErr == nil), "true", pingErr == nil)
	if abuseScale() {
		abuseFigure(t, "channel flood: server RSS growth", mib(growth), "<= 16 MiB", growth <= 16<<10)
	} else if got := tg.counters().RefusedSubscriptions.Load(); got != uint64(n-limit) {
		t.Errorf("RefusedSubscriptions = %d, want %d", got, n-limit)
	}
}
