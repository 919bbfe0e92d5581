//go:build linux

package abuse

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStalledReaders: sockets that subscribe to a busy channel and then
// stop reading (a small receive window) beside sockets that read. The
// server's memory stays bounded (backlogs refer to shared frames; past
// max_outbound_buffer a stalled socket is closed with 4100), the kernel's
// TCP memory stays bounded (socket_sndbuf), every reader gets every event
// in order, and the memory comes back once the stalled sockets are gone.
//
// Short: 200 stalled + 20 readers, 100 events of 9 KB. ABUSE_SCALE=1: 2,000
// stalled + 100 readers, 700 events of 9 KB (issue 9's target).
func TestStalledReaders(t *testing.T) {
	stalled, readers, events := 200, 20, 100
	if abuseScale() {
		stalled, readers, events = 2000, 100, 700
	}
	const size = 9000
	tg := abuseStartBinary(t, "REVERB_MAX_REQUEST_SIZE=20000")
	rss0 := tg.rssKiB(t)
	tcp0 := stalledTCPMemKiB(t)

	const channel = "busy"
	sub := `{"event":"pusher:subscribe","data":{"channel":"` + channel + `"}}`
	join := func(rcvBuf int) *abuseWS {
		w, err := abuseDialRcv(tg.addr, rcvBuf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.close)
		if err := w.send(sub); err != nil {
			t.Fatal(err)
		}
		if _, err := w.readUntil("subscription_succeeded", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return w
	}
	stalledWS := make([]*abuseWS, stalled)
	for i := range stalledWS {
		stalledWS[i] = join(4096)
	}

	// Readers check order and record publish-to-receipt latency.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		complete  atomic.Int32
		failures  []string
		wg        sync.WaitGroup
	)
	for range readers {
		w := join(0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.c.SetReadDeadline(time.Now().Add(120 * time.Second))
			mine := make([]time.Duration, 0, events)
			for i := 0; i < events; i++ {
				m, err := w.readMsg()
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("reader: after %d events: %v", i, err))
					mu.Unlock()
					return
				}
				var ev struct{ Event, Channel, Data string }
				if json.Unmarshal(m, &ev) != nil || ev.Event != "ev" {
					i-- // not an app event (a ping)
					continue
				}
				seq, sent, ok := stalledParse(ev.Data)
				if !ok || seq != i {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("reader: event %d out of order: got %d", i, seq))
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(sent))
			}
			complete.Add(1)
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}

	// Sample the server's RSS and the machine's TCP memory while publishing.
	stop := make(chan struct{})
	peakRSS := abusePeakRSS(t, tg, stop)
	peakTCP := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, stalledTCPMemKiB(t))
			select {
			case <-stop:
				peakTCP <- peak
				return
			case <-tick.C:
			}
		}
	}()

	pad := strings.Repeat("x", size)
	start := time.Now()
	for i := range events {
		data := strconv.Itoa(i) + "|" + strconv.FormatInt(time.Now().UnixNano(), 10) + "|" + pad
		if err := abusePublish(tg.addr, channel, "ev", data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	published := time.Since(start)
	wg.Wait()
	close(stop)
	rssPeak, tcpPeak := <-peakRSS, <-peakTCP
	for _, f := range failures {
		t.Error(f)
	}

	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	t.Logf("%d stalled + %d reading sockets, %d events of %d bytes published in %v", stalled, readers, events, size, published.Round(time.Millisecond))
	abuseFigure(t, "readers that got every event in order", fmt.Sprintf("%d of %d", complete.Load(), readers), "all", int(complete.Load()) == readers)
	abuseFigure(t, "reader latency p50 / p99", fmt.Sprintf("%v / %v", pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond)), "(reported)", true)
	abuseFigure(t, "server RSS peak growth", mib(rssPeak-rss0), "<= 256 MiB", rssPeak-rss0 <= 256<<10)
	abuseFigure(t, "kernel TCP memory at the peak (machine-wide)", mib(tcpPeak), "<= 1 GiB", tcpPeak <= 1<<20)
	t.Logf("kernel TCP memory before the run: %s", mib(tcp0))

	// The stalled sockets go; the memory they pinned comes back.
	for _, w := range stalledWS {
		w.close()
	}
	closed := time.Now()
	var back time.Duration
	rss := tg.rssKiB(t)
	for rss > rss0+64<<10 && time.Since(closed) < 15*time.Second {
		time.Sleep(100 * time.Millisecond)
		rss = tg.rssKiB(t)
	}
	back = time.Since(closed)
	abuseFigure(t, "RSS after the stalled sockets closed (vs start)", fmt.Sprintf("%s (+%s)", mib(rss), mib(rss-rss0)), "<= +64 MiB", rss <= rss0+64<<10)
	abuseFigure(t, "time for RSS to come back within 64 MiB", back.Round(100*time.Millisecond).String(), "<= 10s", back <= 10*time.Second)
}

// stalledParse splits "seq|unixnano|pad".
func stalledParse(data string) (int, time.Time, bool) {
	seqS, rest, ok := strings.Cut(data, "|")
	if !ok {
		return 0, time.Time{}, false
	}
	nsS, _, ok := strings.Cut(rest, "|")
	seq, err1 := strconv.Atoi(seqS)
	ns, err2 := strconv.ParseInt(nsS, 10, 64)
	return seq, time.Unix(0, ns), ok && err1 == nil && err2 == nil
}

// stalledTCPMemKiB is the kernel's TCP memory (/proc/net/sockstat "mem",
// in pages) in KiB, machine-wide.
func stalledTCPMemKiB(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				pages, _ := strconv.ParseInt(f[i+1], 10, 64)
				return pages * int64(os.Getpagesize()) / 1024
			}
		}
	}
	return 0
}
