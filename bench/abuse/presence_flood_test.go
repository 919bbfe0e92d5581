//go:build linux

package abuse

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/pusher"
)

// TestAbuseClientEventFlood: one member of a large presence channel sends
// client events as fast as it can while the app limits each socket to 20
// messages a minute (terminate off). Every other member gets exactly the
// events the limit lets through, the flooder gets a 4301 for each of the
// rest, and afterwards an API event still reaches every member. Scale:
// 1,000 members and 20,000 client events against the real binary.
func TestAbuseClientEventFlood(t *testing.T) {
	const maxAttempts = 20
	members, flood := 50, 2_000
	var tg *abuseTarget
	if abuseScale() {
		members, flood = 1_000, 20_000
		tg = abuseStartBinary(t,
			"REVERB_APP_RATE_LIMITING_ENABLED=true",
			"REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS="+strconv.Itoa(maxAttempts),
			"REVERB_APP_RATE_LIMIT_DECAY_SECONDS=60",
			"REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM=members")
	} else {
		tg = abuseStartLocal(t, abuseApp(func(a *pusher.App) {
			a.RateLimit = pusher.RateLimit{Enabled: true, MaxAttempts: maxAttempts, Decay: time.Minute}
		}), nil)
	}
	const channel = "presence-flood"

	type member struct {
		w       *abuseWS
		joined  chan struct{}
		after   chan struct{}
		relayed atomic.Int64
		refused atomic.Int64
	}
	var wg sync.WaitGroup
	ms := make([]*member, members)
	for i := range ms {
		w, err := abuseDial(tg.addr)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		m := &member{w: w, joined: make(chan struct{}), after: make(chan struct{})}
		ms[i] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			joined, after := false, false
			for {
				msg, err := m.w.readMsg()
				if err != nil {
					return
				}
				switch {
				case bytes.Contains(msg, []byte(`"client-flood"`)):
					m.relayed.Add(1)
				case bytes.Contains(msg, []byte(`"pusher:error"`)) && bytes.Contains(msg, []byte(`4301`)):
					m.refused.Add(1)
				case !joined && bytes.Contains(msg, []byte(`subscription_succeeded`)):
					joined = true
					close(m.joined)
				case !after && bytes.Contains(msg, []byte(`"after-flood"`)):
					after = true
					close(m.after)
				}
			}
		}()
		if err := w.subscribePresence(channel, "u"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.joined:
		case <-time.After(10 * time.Second):
			t.Fatalf("member %d not acknowledged", i)
		}
	}
	defer func() {
		for _, m := range ms {
			m.w.close()
		}
		wg.Wait()
	}()

	rss0 := tg.rssKiB(t)
	stop := make(chan struct{})
	peak := abusePeakRSS(t, tg, stop)
	flooder := ms[0]
	start := time.Now()
	var buf []byte
	for i := range flood {
		buf = abuseFrame(buf, ws.OpText, []byte(`{"event":"client-flood","channel":"`+channel+`","data":{"i":`+strconv.Itoa(i)+`}}`))
		if len(buf) > 32<<10 || i == flood-1 {
			_ = flooder.w.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := flooder.w.c.Write(buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	// The subscribe used one of the flooder's attempts.
	allowed := int64(maxAttempts - 1)
	deadline := time.Now().Add(60 * time.Second)
	for flooder.refused.Load() < int64(flood)-allowed && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if err := abusePublish(tg.addr, channel, "after-flood", "x"); err != nil {
		t.Fatal(err)
	}
	reached := 0
	for _, m := range ms {
		select {
		case <-m.after:
			reached++
		case <-time.After(10 * time.Second):
		}
	}
	close(stop)
	growth := <-peak - rss0

	exact := 0
	var maxRelayed int64
	for _, m := range ms[1:] {
		n := m.relayed.Load()
		maxRelayed = max(maxRelayed, n)
		if n == allowed {
			exact++
		}
	}
	abuseFigure(t, "client-event flood: client events sent", strconv.Itoa(flood), "(figure)", true)
	abuseFigure(t, "client-event flood: refused with 4301", fmt.Sprintf("%d/%d", flooder.refused.Load(), int64(flood)-allowed), "all over limit", flooder.refused.Load() == int64(flood)-allowed)
	abuseFigure(t, "client-event flood: members given exactly the allowed", fmt.Sprintf("%d/%d", exact, members-1), fmt.Sprintf("all (%d each)", allowed), exact == members-1 && maxRelayed == allowed)
	abuseFigure(t, "client-event flood: time until every refusal", elapsed.Round(time.Millisecond).String(), "(figure)", true)
	abuseFigure(t, "client-event flood: API event reached members after", fmt.Sprintf("%d/%d", reached, members), "all", reached == members)
	if abuseScale() {
		abuseFigure(t, "client-event flood: server RSS growth", mib(growth), "<= 32 MiB", growth <= 32<<10)
	}
}
