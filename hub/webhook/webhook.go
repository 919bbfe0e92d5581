package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
)

// Options are the node-level webhook settings.
type Options struct {
	// Batch is how long an event may wait for others to share its
	// request. Default 250 ms.
	Batch time.Duration
	// Delay holds channel_vacated and member_removed back; the channel
	// occupied again / the user back within it cancels both sides.
	// Default 3 s.
	Delay time.Duration
	// QueueSize bounds the events waiting to be delivered (batched, in
	// flight or waiting to retry); beyond it new events are dropped and
	// counted. Default 10,000.
	QueueSize int
	// Timeout bounds each request. Default 5 s.
	Timeout time.Duration
	// RetryFor is how long a failing batch is retried before it is
	// dropped. Default 5 min.
	RetryFor time.Duration
	// Workers is the number of requests in flight at most. Default 4.
	Workers int
	// Client sends the requests; nil uses a client of its own.
	Client *http.Client
	// Logger receives delivery failures (once per batch dropped); nil
	// discards them.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultBatch     = 250 * time.Millisecond
	DefaultDelay     = 3 * time.Second
	DefaultQueueSize = 10_000
	DefaultTimeout   = 5 * time.Second
	DefaultRetryFor  = 5 * time.Minute
	DefaultWorkers   = 4
	// MaxBatchEvents caps the events of one request.
	MaxBatchEvents = 1000
	// firstBackoff and maxBackoff pace the retries of a batch.
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	// tick paces batch cuts and delayed events.
	tick = 50 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Delay < 0 {
		o.Delay = 0
	} else if o.Delay == 0 {
		o.Delay = DefaultDelay
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: o.Workers,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Event is one webhook event.
type Event struct {
	Kind    pusher.HookKind
	Channel string
	// User is the user_id of member_added/member_removed, and of a
	// client_event on a presence channel.
	User string
	// Event, Data (the event's data as a string) and SocketID describe a
	// client_event.
	Event, Data, SocketID string
	// Count is subscription_count's count.
	Count int
}

// appendJSON appends the event's JSON object.
func (e *Event) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"name":"`...)
	dst = append(dst, e.Kind.String()...)
	dst = append(dst, `","channel":`...)
	dst = pusher.AppendJSONString(dst, []byte(e.Channel))
	switch e.Kind {
	case pusher.HookClientEvent:
		dst = append(dst, `,"event":`...)
		dst = pusher.AppendJSONString(dst, []byte(e.Event))
		dst = append(dst, `,"data":`...)
		dst = pusher.AppendJSONString(dst, []byte(e.Data))
		dst = append(dst, `,"socket_id":`...)
		dst = pusher.AppendJSONString(dst, []byte(e.SocketID))
		if e.User != "" {
			dst = append(dst, `,"user_id":`...)
			dst = pusher.AppendJSONString(dst, []byte(e.User))
		}
	case pusher.HookMemberAdded, pusher.HookMemberRemoved:
		dst = append(dst, `,"user_id":`...)
		dst = pusher.AppendJSONString(dst, []byte(e.User))
	case pusher.HookSubscriptionCount:
		dst = append(dst, `,"subscription_count":`...)
		dst = strconv.AppendInt(dst, int64(e.Count), 10)
	}
	return append(dst, '}')
}

// target is one configured webhook of one app.
type target struct {
	app  *pusher.App
	hook *pusher.Webhook
	// guarded by Sender.mu: the events batched so far, as a JSON list
	// without brackets, how many, and when the first came.
	buf   []byte
	n     int
	first time.Time
}

// job is one request body and its delivery state.
type job struct {
	t       *target
	body    []byte
	sig     string
	n       int
	first   time.Time // first attempt
	attempt int
}

// Sender batches, signs and delivers webhooks. Its methods are safe for
// concurrent use.
type Sender struct {
	o       Options
	targets map[*pusher.App][]*target
	cnt     atomic.Pointer[hub.Counters]
	now     func() time.Time

	mu     sync.Mutex
	queued int // events accepted and not yet delivered or dropped
	ready  []*job
	trans  map[tkey]*tstate
	due    []dueItem

	jobs      chan *job
	wake      chan struct{}
	quit      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

var _ hub.Hooks = (*Sender)(nil)

// New builds a sender for the webhooks of apps. It sends nothing until
// Start.
func New(apps *pusher.AppSet, o Options) *Sender {
	o = o.withDefaults()
	s := &Sender{
		o:       o,
		targets: make(map[*pusher.App][]*target),
		now:     time.Now,
		trans:   make(map[tkey]*tstate),
		jobs:    make(chan *job, o.QueueSize),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	for _, a := range apps.All() {
		for i := range a.Webhooks {
			s.targets[a] = append(s.targets[a], &target{app: a, hook: &a.Webhooks[i]})
		}
	}
	s.cnt.Store(new(hub.Counters))
	return s
}

// Options returns the settings in effect (defaults filled in).
func (s *Sender) Options() Options { return s.o }

// Start launches the ticker and the workers; c receives the counts. Call
// once; any goroutine.
func (s *Sender) Start(c *hub.Counters) {
	s.startOnce.Do(func() {
		if c != nil {
			// Before Start only Emit counts, under mu: move its counts.
			s.mu.Lock()
			old := s.cnt.Load()
			c.WebhookQueue.Add(old.WebhookQueue.Load())
			c.WebhooksDropped.Add(old.WebhooksDropped.Load())
			s.cnt.Store(c)
			s.mu.Unlock()
		}
		s.wg.Add(1 + s.o.Workers)
		go s.runTicker()
		for range s.o.Workers {
			go s.runWorker()
		}
	})
}

// Close sends what is due (delayed events at once, open batches cut),
// waits up to ctx for the queue to empty, and stops the goroutines.
func (s *Sender) Close(ctx context.Context) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		for k, st := range s.trans {
			if st.pending {
				s.fireLocked(k)
			}
		}
		s.due = nil
		s.cutLocked(s.now(), true)
		s.mu.Unlock()
		s.kick()
		for {
			s.mu.Lock()
			q := s.queued
			s.mu.Unlock()
			if q == 0 {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		close(s.quit)
		s.wg.Wait()
	})
}

func (s *Sender) counters() *hub.Counters { return s.cnt.Load() }

// Wants reports whether any webhook of app takes events of kind k.
func (s *Sender) Wants(app *pusher.App, k pusher.HookKind) bool { return app.HookMask().Has(k) }

// Emit queues e for every webhook of app that wants it. It never blocks;
// with the queue full the event is dropped and counted. Any goroutine.
func (s *Sender) Emit(app *pusher.App, e *Event) {
	ts := s.targets[app]
	if len(ts) == 0 {
		return
	}
	var enc []byte
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitLocked(ts, e, &enc)
}

func (s *Sender) emitLocked(ts []*target, e *Event, enc *[]byte) {
	c := s.counters()
	for _, t := range ts {
		if !t.hook.Wants(e.Kind, e.Channel) {
			continue
		}
		if s.queued >= s.o.QueueSize {
			c.WebhooksDropped.Add(1)
			continue
		}
		if *enc == nil {
			*enc = e.appendJSON(make([]byte, 0, 96))
		}
		if t.n > 0 {
			t.buf = append(t.buf, ',')
		} else {
			t.first = s.now()
		}
		t.buf = append(t.buf, *enc...)
		t.n++
		s.queued++
		c.WebhookQueue.Add(1)
		if t.n >= MaxBatchEvents {
			s.ready = append(s.ready, s.cutTarget(t))
			s.kick()
		}
	}
}

func (s *Sender) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cutTarget turns t's batched events into a signed job (mu held).
func (s *Sender) cutTarget(t *target) *job {
	body := make([]byte, 0, len(t.buf)+48)
	body = append(body, `{"time_ms":`...)
	body = strconv.AppendInt(body, s.now().UnixMilli(), 10)
	body = append(body, `,"events":[`...)
	body = append(body, t.buf...)
	body = append(body, "]}"...)
	j := &job{t: t, body: body, sig: Sign(t.app.Secret, body), n: t.n}
	if cap(t.buf) > 64<<10 {
		t.buf = nil
	}
	t.buf, t.n = t.buf[:0], 0
	return j
}

// cutLocked moves every batch open for Batch (all with force) to ready.
func (s *Sender) cutLocked(now time.Time, force bool) {
	for _, ts := range s.targets {
		for _, t := range ts {
			if t.n > 0 && (force || now.Sub(t.first) >= s.o.Batch) {
				s.ready = append(s.ready, s.cutTarget(t))
			}
		}
	}
	for _, j := range s.ready {
		s.jobs <- j // never blocks: at most QueueSize jobs exist
	}
	clear(s.ready)
	s.ready = s.ready[:0]
}

// Sign is the X-Pusher-Signature of body: HMAC-SHA256 with the app secret,
// lowercase hex (§6.4).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Sender) runTicker() {
	defer s.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		case <-s.wake:
		}
		now := s.now()
		s.mu.Lock()
		s.fireDueLocked(now)
		s.cutLocked(now, false)
		s.mu.Unlock()
	}
}

func (s *Sender) runWorker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.quit:
			return
		case j := <-s.jobs:
			s.deliver(j)
		}
	}
}

// deliver makes one attempt at j and schedules its retry or drops it.
func (s *Sender) deliver(j *job) {
	c := s.counters()
	now := s.now()
	if j.attempt == 0 {
		j.first = now
	}
	j.attempt++
	err := s.post(j)
	if err == nil {
		c.WebhooksSent.Add(1)
		s.done(j)
		return
	}
	c.WebhooksFailed.Add(1)
	backoff := firstBackoff << min(j.attempt-1, 6)
	backoff = min(backoff, maxBackoff)
	if now.Add(backoff).Sub(j.first) > s.o.RetryFor {
		c.WebhooksDropped.Add(1)
		s.o.Logger.Warn("webhook: batch dropped after retrying", "app", j.t.app.ID, "url", j.t.hook.URL,
			"events", j.n, "attempts", j.attempt, "err", err)
		s.done(j)
		return
	}
	c.WebhooksRetried.Add(1)
	time.AfterFunc(backoff, func() {
		select {
		case s.jobs <- j:
		case <-s.quit:
		}
	})
}

// done forgets j's events.
func (s *Sender) done(j *job) {
	s.mu.Lock()
	s.queued -= j.n
	s.mu.Unlock()
	s.counters().WebhookQueue.Add(-int64(j.n))
}

type statusError int

func (e statusError) Error() string { return "HTTP status " + strconv.Itoa(int(e)) }

func (s *Sender) post(j *job) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.t.hook.URL, bytes.NewReader(j.body))
	if err != nil {
		return err
	}
	for k, v := range j.t.hook.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Pusher-Key", j.t.app.Key)
	req.Header.Set("X-Pusher-Signature", j.sig)
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(resp.StatusCode)
	}
	return nil
}

// dataString is a client event's data as the webhook's string: a JSON
// string's content, any other JSON value as its text.
func dataString(data []byte) string {
	if len(data) > 0 && data[0] == '"' {
		var v string
		if json.Unmarshal(data, &v) == nil {
			return v
		}
	}
	return string(data)
}
