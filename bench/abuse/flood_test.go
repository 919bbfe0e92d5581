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
	r := abuseFlood(t, tg, n)
	abuseFigure(t, "channel flood: requests answered", fmt.Sprintf("%d/%d", r.acked+r.refused, n), "all", r.acked+r.refused == n)
	abuseFigure(t, "channel flood: acknowledged (per-socket cap)", strconv.Itoa(r.acked), strconv.Itoa(limit), r.acked == limit)
	abuseFigure(t, "channel flood: time to answer every request", r.elapsed.Round(time.Millisecond).String(), "<= 10s", r.elapsed <= 10*time.Second)
	abuseFigure(t, "channel flood: pusher:ping answered after", fmt.Sprint(r.pingOK), "true", r.pingOK)
	if abuseScale() {
		abuseFigure(t, "channel flood: server RSS growth", mib(r.growth), "<= 16 MiB", r.growth <= 16<<10)
	} else if got := tg.counters().RefusedSubscriptions.Load(); got != uint64(n-limit) {
		t.Errorf("RefusedSubscriptions = %d, want %d", got, n-limit)
	}
}

// TestAbuseChannelFloodUncapped: the same flood with the cap switched off
// (max_channels_per_connection 0) is all acknowledged, and as fast as the
// capped one: subscribing costs the same however many channels the socket
// holds. Scale only; the memory is then bounded by nothing but the cap.
func TestAbuseChannelFloodUncapped(t *testing.T) {
	if !abuseScale() {
		t.Skip("scale only (ABUSE_SCALE=1)")
	}
	const n = 50_000
	tg := abuseStartBinary(t, "REVERB_APP_MAX_CHANNELS_PER_CONNECTION=0")
	r := abuseFlood(t, tg, n)
	abuseFigure(t, "uncapped flood: acknowledged", fmt.Sprintf("%d/%d", r.acked, n), "all", r.acked == n)
	abuseFigure(t, "uncapped flood: time to answer every request", r.elapsed.Round(time.Millisecond).String(), "<= 10s", r.elapsed <= 10*time.Second)
	abuseFigure(t, "uncapped flood: pusher:ping answered after", fmt.Sprint(r.pingOK), "true", r.pingOK)
	abuseFigure(t, "uncapped flood: server RSS growth", mib(r.growth), "(figure)", true)
}

type abuseFloodResult struct {
	acked, refused int
	elapsed        time.Duration
	pingOK         bool
	growth         int64 // KiB
}

// abuseFlood sends n subscribes to distinct channels from one socket in
// one burst and reads every answer, then pings.
func abuseFlood(t *testing.T, tg *abuseTarget, n int) abuseFloodResult {
	t.Helper()
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
	var r abuseFloodResult
	other := 0
	_ = w.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for r.acked+r.refused+other < n {
		m, err := w.readMsg()
		if err != nil {
			t.Fatalf("after %d acks, %d refusals: %v", r.acked, r.refused, err)
		}
		switch {
		case bytes.Contains(m, []byte(`"pusher_internal:subscription_succeeded"`)):
			r.acked++
		case bytes.Contains(m, []byte(`"pusher:error"`)) && bytes.Contains(m, []byte(`4303`)):
			r.refused++
		default:
			other++
			t.Errorf("unexpected answer: %s", m)
		}
	}
	r.elapsed = time.Since(start)
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.send(`{"event":"pusher:ping","data":{}}`); err != nil {
		t.Fatal(err)
	}
	_, pingErr := w.readUntil(`"pusher:pong"`, 5*time.Second)
	r.pingOK = pingErr == nil
	close(stop)
	r.growth = <-peak - rss0
	return r
}
