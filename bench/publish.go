//go:build linux

package bench

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher triggers bench events through the signed HTTP API
// (POST {path}/apps/{id}/events) over a small pool of keep-alive
// connections (apiConn). Each event's data carries its sequence number and
// send time so receivers can measure trigger-to-receipt latency and count
// loss. Run may be called from one goroutine at a time; Sent from any.
type Publisher struct {
	addr   string // host:port
	target string // path without the query, server prefix included
	path   string // the signed path, without the server prefix
	signer APISigner
	size   int
	sent   atomic.Uint64
	// idle holds the connections between runs (one per --http-conns).
	idle   chan *apiConn
	stamps *rxStamps
}

// publishTimeout bounds one trigger, connect included.
const publishTimeout = 10 * time.Second

// NewPublisher returns a publisher for app appID on http://host:port with
// server prefix path, conns parallel connections and event data padded to
// about size bytes.
func NewPublisher(host string, port int, path, appID, key, secret string, conns, size int) *Publisher {
	conns = max(conns, 1)
	signed := "/apps/" + appID + "/events"
	p := &Publisher{
		addr:   net.JoinHostPort(host, strconv.Itoa(port)),
		target: path + signed,
		path:   signed,
		signer: APISigner{Key: key, Secret: secret},
		size:   size,
		idle:   make(chan *apiConn, conns),
	}
	// Without them http_latency_at_socket has fewer samples than
	// http_latency; the run goes on either way.
	p.stamps, _ = enableRxTimestamps(time.Second)
	for range conns {
		p.idle <- &apiConn{addr: p.addr}
	}
	return p
}

// Close drops the connections. Not during Run.
func (p *Publisher) Close() {
	for range cap(p.idle) {
		a := <-p.idle
		a.close()
		p.idle <- a
	}
	p.stamps.Close()
	p.stamps = nil
}

// Sent returns the number of triggers started so far (for progress lines).
func (p *Publisher) Sent() uint64 { return p.sent.Load() }

// PublishResult is the outcome of one Run.
type PublishResult struct {
	// First and End bound the sequence numbers used: [First, End).
	First, End int64
	OK         uint64
	// Errors counts failed triggers by HTTP status or "transport".
	Errors map[string]uint64
	// Failed lists the sequence numbers of failed triggers (at most 10000).
	Failed []int64
	// Late counts triggers that started more than 10 ms after their slot,
	// i.e. the server (or the pool) could not keep up with the rate.
	Late uint64
	HTTP Histogram
	// Socket holds, for the same triggers, the time from writing the
	// request to the response's arrival at the publisher's socket (the
	// kernel's receive timestamp): HTTP minus the publisher's own wait for
	// a CPU after the answer came in.
	Socket  Histogram
	Elapsed time.Duration
}

// Run triggers events with sequence numbers from first on, at rate per
// second (0 = as fast as the pool allows) for dur, each to the channel
// channel(seq). It returns when the last request has finished or ctx ends.
func (p *Publisher) Run(ctx context.Context, first int64, rate float64, dur time.Duration, channel func(int64) string) PublishResult {
	res := PublishResult{First: first, Errors: map[string]uint64{}}
	start := time.Now()
	end := start.Add(dur)
	var next atomic.Int64
	next.Store(first)
	slots := make(chan int64, cap(p.idle)*4)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range cap(p.idle) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := <-p.idle
			conn.reset()
			stop := context.AfterFunc(ctx, conn.abort)
			defer func() {
				stop()
				p.idle <- conn
			}()
			var h, hs Histogram
			var body, q []byte
			take := func() (int64, bool) {
				if rate > 0 {
					s, ok := <-slots
					return s, ok
				}
				if time.Now().After(end) || ctx.Err() != nil {
					return 0, false
				}
				return next.Add(1) - 1, true
			}
			for {
				seq, ok := take()
				if !ok {
					break
				}
				t0 := time.Now()
				var status string
				var arrived time.Time
				body, q, arrived, status = p.trigger(conn, body, q, seq, channel(seq), t0)
				h.Record(int64(time.Since(t0)))
				if status == "" && !arrived.IsZero() {
					hs.Record(max(int64(arrived.Sub(t0)), 0))
				}
				if status != "" {
					mu.Lock()
					res.Errors[status]++
					if len(res.Failed) < 10000 {
						res.Failed = append(res.Failed, seq)
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			res.HTTP.Merge(&h)
			res.Socket.Merge(&hs)
			mu.Unlock()
		}()
	}
	if rate > 0 {
		interval := float64(time.Second) / rate
		seq := first
	pace:
		for i := int64(0); ; i++ {
			due := start.Add(time.Duration(float64(i) * interval))
			if !due.Before(end) {
				break
			}
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					break pace
				}
			} else if -d > 10*time.Millisecond {
				res.Late++
			}
			select {
			case slots <- seq:
				seq++
			case <-ctx.Done():
				break pace
			}
		}
		close(slots)
		next.Store(seq)
	}
	wg.Wait()
	res.End = next.Load() // every number handed out was sent
	var failed uint64
	for _, n := range res.Errors {
		failed += n
	}
	res.OK = res.HTTP.Count() - failed
	res.Elapsed = time.Since(start)
	return res
}

// trigger sends one event over conn and returns its reusable buffers, the
// response's arrival at the socket, and "" on a 200, else the failure
// class.
func (p *Publisher) trigger(conn *apiConn, body, q []byte, seq int64, channel string, now time.Time) ([]byte, []byte, time.Time, string) {
	p.sent.Add(1)
	body = appendEventBody(body[:0], channel, seq, now.UnixNano(), p.size)
	q = append(q[:0], p.target...)
	q = append(q, '?')
	q = p.signer.AppendQuery(q, "POST", p.path, body, now.Unix())
	status, arrived, err := conn.post(p.addr, q, body, publishTimeout)
	switch {
	case err != nil:
		return body, q, arrived, "transport"
	case status != 200:
		return body, q, arrived, strconv.Itoa(status)
	}
	return body, q, arrived, ""
}

// appendEventBody appends the /events body of one bench event: name
// "bench", one channel, and data that is a JSON string holding the marker
// token and padding up to about size bytes of data.
func appendEventBody(dst []byte, channel string, seq, ns int64, size int) []byte {
	dst = append(dst, `{"name":"bench","channel":`...)
	dst = appendJSONString(dst, channel)
	dst = append(dst, `,"data":"{\"x\":\"rb!`...)
	mark := len(dst)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, '!')
	dst = strconv.AppendInt(dst, ns, 10)
	dst = append(dst, `!\"`...)
	if pad := size - (len(dst) - mark) - 12; pad > 0 {
		dst = append(dst, `,\"p\":\"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, `\"`...)
	}
	return append(dst, `}"}`...)
}
