//go:build linux

package abuse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/pusher"
)

// abuseBadFrames are the broken frames a socket sends after it connected,
// and the close code each must get.
var abuseBadFrames = []struct {
	name  string
	frame func() []byte
	code  int
}{
	{"oversized message", func() []byte {
		return abuseFrame(nil, ws.OpText, bytes.Repeat([]byte("x"), pusher.DefaultMaxMessageSize+1))
	}, 1009},
	{"length 2^40 in the header", func() []byte {
		b := []byte{0x81, 0x80 | 127}
		return append(binary.BigEndian.AppendUint64(b, 1<<40), 0, 0, 0, 0)
	}, 1009},
	{"unmasked", func() []byte { return []byte{0x81, 2, 'h', 'i'} }, 1002},
	{"reserved opcode", func() []byte { return []byte{0x83, 0x80, 0, 0, 0, 0} }, 1002},
	{"fragmented ping", func() []byte { return []byte{0x09, 0x80, 0, 0, 0, 0} }, 1002},
	{"invalid UTF-8", func() []byte { return abuseFrame(nil, ws.OpText, []byte{0xff, 0xfe, 0xfd}) }, 1007},
}

// TestAbuseBadFrames: sockets sending oversized and malformed frames, many
// at a time, are each closed with the right code; one socket sending
// malformed JSON at full speed gets a 4200 error for every message and
// stays open; a subscriber on the same server gets every event published
// meanwhile, in order. Scale: 1,000 rounds of every broken frame (200
// sockets at a time) and 100,000 malformed messages against the real
// binary; its RSS must not grow by more than 32 MiB.
func TestAbuseBadFrames(t *testing.T) {
	rounds, parallel, junk := 20, 20, 1_000
	var tg *abuseTarget
	if abuseScale() {
		rounds, parallel, junk = 1_000, 200, 100_000
		tg = abuseStartBinary(t)
	} else {
		tg = abuseStartLocal(t, abuseApp(nil), nil)
	}
	calm, err := abuseDial(tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer calm.close()
	if err := calm.send(`{"event":"pusher:subscribe","data":{"channel":"calm"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := calm.readUntil("subscription_succeeded", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rss0 := tg.rssKiB(t)
	stop := make(chan struct{})
	peak := abusePeakRSS(t, tg, stop)

	// Publisher: one event every 10 ms until the attack ends.
	attackOver := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-attackOver:
				published <- n
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := abusePublish(tg.addr, "calm", "tick", strconv.Itoa(n)); err != nil {
				t.Errorf("publish %d: %v", n, err)
				published <- n
				return
			}
			n++
		}
	}()
	// Subscriber: reads ticks in order.
	received := make(chan int, 1)
	var calmErr error
	go func() {
		next := 0
		_ = calm.c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		for {
			m, err := calm.readMsg()
			if err != nil {
				received <- next
				return
			}
			if want := `"data":"` + strconv.Itoa(next) + `"`; bytes.Contains(m, []byte(`"tick"`)) {
				if !bytes.Contains(m, []byte(want)) {
					calmErr = fmt.Errorf("tick %d: got %s", next, m)
					received <- next
					return
				}
				next++
			}
		}
	}()

	// Malformed JSON at full speed from one socket.
	junkDone := make(chan [2]int, 1)
	go func() {
		w, err := abuseDial(tg.addr)
		if err != nil {
			t.Errorf("junk socket: %v", err)
			junkDone <- [2]int{}
			return
		}
		defer w.close()
		go func() {
			var buf []byte
			for i := range junk {
				buf = abuseFrame(buf, ws.OpText, []byte(`{"event":"pusher:subscribe","data":{"channel":`+strconv.Itoa(i)))
				if len(buf) > 32<<10 || i == junk-1 {
					if _, err := w.c.Write(buf); err != nil {
						return
					}
					buf = buf[:0]
				}
			}
		}()
		errs, other := 0, 0
		_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		for errs+other < junk {
			m, err := w.readMsg()
			if err != nil {
				break
			}
			if bytes.Contains(m, []byte(`4200`)) {
				errs++
			} else {
				other++
			}
		}
		junkDone <- [2]int{errs, other}
	}()

	start := time.Now()
	var mu sync.Mutex
	wrong := map[string]int{}
	total := 0
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for range rounds {
		for _, bf := range abuseBadFrames {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				code, err := func() (int, error) {
					w, err := abuseDial(tg.addr)
					if err != nil {
						return 0, err
					}
					defer w.close()
					if _, err := w.c.Write(bf.frame()); err != nil {
						return 0, err
					}
					return w.closeCode(10 * time.Second)
				}()
				mu.Lock()
				total++
				if err != nil || code != bf.code {
					wrong[fmt.Sprintf("%s: code %d (want %d), err %v", bf.name, code, bf.code, err)]++
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	attack := time.Since(start)
	jd := <-junkDone
	close(attackOver)
	sent := <-published
	// Let the last ticks arrive, then stop the reader.
	time.Sleep(500 * time.Millisecond)
	calm.close()
	got := <-received
	close(stop)
	growth := <-peak - rss0

	for k, n := range wrong {
		t.Logf("%d× %s", n, k)
	}
	bad := 0
	for _, n := range wrong {
		bad += n
	}
	abuseFigure(t, "bad frames: sockets closed with the right code", fmt.Sprintf("%d/%d", total-bad, total), "all", bad == 0)
	abuseFigure(t, "bad frames: broken sockets handled per second", fmt.Sprintf("%.0f/s", float64(total)/attack.Seconds()), "(figure)", true)
	abuseFigure(t, "bad frames: malformed JSON answered 4200", fmt.Sprintf("%d/%d", jd[0], junk), "all", jd[0] == junk && jd[1] == 0)
	abuseFigure(t, "bad frames: subscriber got every event in order", fmt.Sprintf("%d/%d", got, sent), "all", got == sent && calmErr == nil)
	if calmErr != nil {
		t.Error(calmErr)
	}
	if abuseScale() {
		abuseFigure(t, "bad frames: server RSS growth", mib(growth), "<= 32 MiB", growth <= 32<<10)
	}
}
