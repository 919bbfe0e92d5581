//go:build linux

package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher triggers bench events through the signed HTTP API
// (POST {path}/apps/{id}/events) over a small pool of keep-alive
// connections. Each event's data carries its sequence number and send time
// so receivers can measure trigger-to-receipt latency and count loss.
// Run may be called from one goroutine at a time; Sent from any.
type Publisher struct {
	client *http.Client
	url    string // full URL without the query
	path   string // the signed path, without the server prefix
	signer APISigner
	size   int
	conns  int
	sent   atomic.Uint64
}

// NewPublisher returns a publisher for app appID on http://host:port with
// server prefix path, conns parallel connections and event data padded to
// about size bytes.
func NewPublisher(host string, port int, path, appID, key, secret string, conns, size int) *Publisher {
	conns = max(conns, 1)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	signed := "/apps/" + appID + "/events"
	return &Publisher{
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		url:    "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path + signed,
		path:   signed,
		signer: APISigner{Key: key, Secret: secret},
		size:   size,
		conns:  conns,
	}
}

// Close drops the idle connections.
func (p *Publisher) Close() { p.client.CloseIdleConnections() }

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
	Late    uint64
	HTTP    Histogram
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
	slots := make(chan int64, p.conns*4)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Histogram
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
				body, q, status = p.trigger(ctx, body, q, seq, channel(seq), t0)
				h.Record(int64(time.Since(t0)))
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

// trigger sends one event and returns its reusable buffers and "" on a 200,
// else the failure class.
func (p *Publisher) trigger(ctx context.Context, body, q []byte, seq int64, channel string, now time.Time) ([]byte, []byte, string) {
	p.sent.Add(1)
	body = appendEventBody(body[:0], channel, seq, now.UnixNano(), p.size)
	q = p.signer.AppendQuery(q[:0], "POST", p.path, body, now.Unix())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"?"+string(q), bytes.NewReader(body))
	if err != nil {
		return body, q, "request"
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return body, q, "transport"
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return body, q, strconv.Itoa(resp.StatusCode)
	}
	return body, q, ""
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
