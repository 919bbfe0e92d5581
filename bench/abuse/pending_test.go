//go:build linux

package abuse

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/goreverb/reverb/loop"
)

// TestAbusePendingBound: more silent sockets than the node lets wait for
// their upgrade. Those beyond the bound get a 503 and are closed at once,
// the others are held; once the held ones go, a client connects and is
// served. Scale: 1,500 sockets against a bound of 1,000 on the real binary.
func TestAbusePendingBound(t *testing.T) {
	bound, open := 20, 30
	var tg *abuseTarget
	if abuseScale() {
		bound, open = 1_000, 1_500
		tg = abuseStartBinary(t, "REVERB_MAX_PENDING_CONNECTIONS="+strconv.Itoa(bound))
	} else {
		tg = abuseStartLocal(t, abuseApp(nil), func(c *loop.Config) { c.MaxPendingConnections = bound })
	}
	conns := make([]net.Conn, 0, open)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var (
		mu            sync.Mutex
		refused, held int
		slowest       time.Duration
		wg            sync.WaitGroup
	)
	for i := range open {
		c, err := net.DialTimeout("tcp", tg.addr, 10*time.Second)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(c)
			mu.Lock()
			defer mu.Unlock()
			if bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) {
				refused++
				slowest = max(slowest, time.Since(start))
			} else if len(b) == 0 {
				held++ // read deadline passed: still open and waiting
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	// The held sockets are gone: a client gets in again.
	served := false
	for deadline := time.Now().Add(5 * time.Second); !served && time.Now().Before(deadline); {
		if w, err := abuseDial(tg.addr); err == nil {
			served = true
			w.close()
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	abuseFigure(t, "pending bound: sockets held waiting", fmt.Sprintf("%d", held), strconv.Itoa(bound), held == bound)
	abuseFigure(t, "pending bound: refused with 503", fmt.Sprintf("%d/%d", refused, open-bound), "all over bound", refused == open-bound)
	abuseFigure(t, "pending bound: slowest refusal", slowest.Round(time.Millisecond).String(), "<= 1s", slowest <= time.Second)
	abuseFigure(t, "pending bound: client served once they left", fmt.Sprint(served), "true", served)
	if c := tg.counters(); c != nil && c.RefusedPreUpgrade.Load() != uint64(open-bound) {
		t.Errorf("RefusedPreUpgrade = %d, want %d", c.RefusedPreUpgrade.Load(), open-bound)
	}
}
