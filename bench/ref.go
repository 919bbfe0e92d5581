//go:build linux

package bench

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/valyala/fastjson"
	"golang.org/x/sys/unix"

	"github.com/goreverb/reverb/wsproto"
)

// Limits of the reference server. It exists to measure the cost of the
// unavoidable work (one write(2) per socket per event), so it refuses what a
// benchmark never sends instead of handling it.
const (
	refReadBuf     = 256 << 10
	refMaxRequest  = 128 << 10
	refMaxPending  = 8 << 20 // unsent bytes per socket before it is dropped as slow
	refAcceptBurst = 256
)

// RefStats are the reference server's counters. Read with RefServer.Stats.
type RefStats struct {
	// Open is the number of open WebSocket connections.
	Open int64 `json:"open"`
	// Accepted counts WebSocket upgrades since start.
	Accepted uint64 `json:"accepted"`
	// Events counts channel events received through POST .../events (one per
	// channel named in the request).
	Events uint64 `json:"events"`
	// Frames counts event frames handed to write(2), i.e. deliveries.
	Frames uint64 `json:"frames"`
	// Slow counts sockets dropped because refMaxPending bytes were unsent.
	Slow uint64 `json:"slow"`
}

// RefServer is the bare reference server of `reverb-bench ref`: it answers
// the WebSocket upgrade with pusher:connection_established, pusher:subscribe
// with a subscription_succeeded built for the channel, pusher:ping with
// pusher:pong, and POST {path}/apps/{id}/events (no signature check) by
// building the event frame once and writing it to every subscriber of each
// named channel with one write(2) per socket, on the loop that owns the
// socket. No presence bookkeeping, no auth checks, no limits.
//
// One epoll loop per listener, all listeners on one port with SO_REUSEPORT.
// Methods may be called from any goroutine.
type RefServer struct {
	port  int
	loops []*refLoop
	wg    sync.WaitGroup
	stop  atomic.Bool
	once  sync.Once

	open     atomic.Int64
	accepted atomic.Uint64
	events   atomic.Uint64
	frames   atomic.Uint64
	slow     atomic.Uint64
}

// StartRef listens on host:port (port 0 picks a free port, see Port) with
// loops event loops (<= 0 means one per CPU) and serves until Close.
// host must be an IPv4 address.
func StartRef(host string, port, loops int) (*RefServer, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return nil, errors.New("bench: ref needs an IPv4 host address, got " + strconv.Quote(host))
	}
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	s := &RefServer{port: port}
	for i := range loops {
		lfd, bound, err := refListen(ip.As4(), s.port)
		if err != nil {
			s.closeLoops()
			return nil, err
		}
		s.port = bound
		p, err := newPoller(512)
		if err != nil {
			unix.Close(lfd)
			s.closeLoops()
			return nil, err
		}
		l := &refLoop{s: s, id: i, p: p, lfd: lfd,
			conns: make(map[int]*refConn), subs: make(map[string]*refChan),
			rbuf: make([]byte, refReadBuf)}
		if err := p.add(lfd, unix.EPOLLIN); err != nil {
			l.release()
			s.closeLoops()
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	reserveProcs(len(s.loops))
	for _, l := range s.loops {
		s.wg.Add(1)
		go l.run()
	}
	return s, nil
}

func refListen(ip [4]byte, port int) (fd, bound int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	fail := func(e error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, e
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: ip}); err != nil {
		return fail(err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// Port returns the port every loop listens on.
func (s *RefServer) Port() int { return s.port }

// Loops returns the number of event loops.
func (s *RefServer) Loops() int { return len(s.loops) }

// PID returns the process whose CPU and RSS are the server's: this one.
func (s *RefServer) PID() int { return os.Getpid() }

// Stats returns a snapshot of the counters.
func (s *RefServer) Stats() RefStats {
	return RefStats{
		Open:     s.open.Load(),
		Accepted: s.accepted.Load(),
		Events:   s.events.Load(),
		Frames:   s.frames.Load(),
		Slow:     s.slow.Load(),
	}
}

// Close stops the loops, closes every socket and waits for the loops to
// return. It is idempotent.
func (s *RefServer) Close() error {
	s.once.Do(func() {
		s.stop.Store(true)
		for _, l := range s.loops {
			l.p.wake()
		}
		s.wg.Wait()
		releaseProcs(len(s.loops))
	})
	return nil
}

// closeLoops releases loops that never started (StartRef failure).
func (s *RefServer) closeLoops() {
	for _, l := range s.loops {
		l.release()
	}
}

// refLoop owns its listener, its sockets and its channel index; only its
// goroutine touches them. Other loops reach it through inbox.
type refLoop struct {
	s     *RefServer
	id    int
	p     *poller
	lfd   int
	conns map[int]*refConn
	subs  map[string]*refChan
	rbuf  []byte
	out   []byte
	dead  []*refConn
	local []refEvent

	parser  fastjson.Parser
	parser2 fastjson.Parser
	nextID  uint64

	mu     sync.Mutex
	inbox  []refEvent
	spare  []refEvent
	queued bool
}

// refEvent is one event frame for one channel. frame is shared by every
// loop and never modified after it is posted.
type refEvent struct {
	channel string
	frame   []byte
	except  *refConn // the sender of a client event; nil for API events
}

type refChan struct {
	conns []*refConn
}

type refSub struct {
	name string
	ch   *refChan
	idx  int
}

type refConn struct {
	fd   int
	ws   bool
	dead bool
	rd   wsproto.Reader
	in   []byte
	out  []byte
	subs []refSub
}

func (l *refLoop) run() {
	defer l.s.wg.Done()
	defer l.release()
	for !l.s.stop.Load() {
		n, err := l.p.wait(200)
		if err != nil {
			return
		}
		for i := range n {
			ev := l.p.events[i]
			fd := int(ev.Fd)
			switch fd {
			case l.p.evfd:
				l.p.drainWake()
				l.drainInbox()
			case l.lfd:
				l.accept()
			default:
				c := l.conns[fd]
				if c == nil {
					continue
				}
				if ev.Events&unix.EPOLLOUT != 0 {
					l.flush(c)
				}
				const hup = unix.EPOLLERR | unix.EPOLLHUP | unix.EPOLLRDHUP
				if ev.Events&(unix.EPOLLIN|hup) != 0 && !c.dead {
					l.read(c, ev.Events&hup != 0)
				}
				if c.dead {
					l.closeConn(c)
				}
				l.flushLocal()
			}
		}
		l.reap()
	}
}

// reap closes sockets that failed while being written to.
func (l *refLoop) reap() {
	for _, c := range l.dead {
		l.closeConn(c)
	}
	clear(l.dead)
	l.dead = l.dead[:0]
}

func (l *refLoop) release() {
	for _, c := range l.conns {
		l.closeConn(c)
	}
	unix.Close(l.lfd)
	l.p.close()
}

func (l *refLoop) accept() {
	for range refAcceptBurst {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a transient error the next wake-up retries
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		// Edge-triggered with EPOLLOUT armed for good: no epoll_ctl per
		// partial write, no re-poll per readable socket.
		if err := l.p.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET); err != nil {
			unix.Close(fd)
			continue
		}
		l.conns[fd] = &refConn{fd: fd}
	}
}

func (l *refLoop) closeConn(c *refConn) {
	if l.conns[c.fd] != c {
		return // already closed; the fd may belong to a newer socket
	}
	for len(c.subs) > 0 {
		l.unsubscribe(c, len(c.subs)-1)
	}
	delete(l.conns, c.fd)
	unix.Close(c.fd)
	if c.ws {
		l.s.open.Add(-1)
	}
}

// read drains the socket (edge-triggered: until a short read, or until
// EOF after a hang-up) and serves what arrived.
func (l *refLoop) read(c *refConn, hup bool) {
	for !c.dead {
		off := copy(l.rbuf, c.in)
		space := len(l.rbuf) - off
		n, e := rawRead(c.fd, l.rbuf[off:])
		if e == unix.EAGAIN || e == unix.EINTR {
			return
		}
		if e != 0 || n == 0 {
			c.dead = true
			return
		}
		buf := l.rbuf[:off+n]
		var used int
		if c.ws {
			used = l.frames(c, buf)
		} else {
			used = l.requests(c, buf)
		}
		rest := buf[used:]
		if len(rest) > refMaxRequest {
			c.dead = true
		}
		if c.dead {
			return
		}
		if len(rest) == 0 {
			c.in = nil
		} else {
			c.in = append(c.in[:0], rest...)
		}
		if n < space && !hup {
			return
		}
	}
}

// requests serves the complete HTTP requests at the start of buf and
// returns the bytes consumed; after an upgrade the rest are WebSocket frames.
func (l *refLoop) requests(c *refConn, buf []byte) int {
	used := 0
	for used < len(buf) && !c.ws && !c.dead {
		var req wsproto.Request
		err := wsproto.ParseRequest(buf[used:], refMaxRequest, &req)
		if err == wsproto.ErrNeedMore {
			return used
		}
		if err != nil {
			l.respond(c, 400, nil, false)
			c.dead = true
			return used
		}
		if req.IsUpgrade() {
			l.upgrade(c, &req)
			used += req.HeadLen
			break
		}
		total := req.HeadLen + max(req.ContentLength, 0)
		if len(buf)-used < total {
			return used
		}
		body := buf[used+req.HeadLen : used+total]
		switch {
		case string(req.Method) == "POST" && bytes.HasSuffix(req.Path, []byte("/events")):
			if l.publish(body) {
				l.respond(c, 200, []byte("{}"), req.KeepAlive)
			} else {
				l.respond(c, 400, []byte(`{"error":"bad event"}`), req.KeepAlive)
			}
		case bytes.HasSuffix(req.Path, []byte("/up")):
			l.respond(c, 200, []byte(`{"health":"OK"}`), req.KeepAlive)
		default:
			l.respond(c, 404, []byte(`{"error":"Not found."}`), req.KeepAlive)
		}
		used += total
		if !req.KeepAlive {
			c.dead = true
		}
	}
	if c.ws && used < len(buf) {
		used += l.frames(c, buf[used:])
	}
	return used
}

func (l *refLoop) respond(c *refConn, status int, body []byte, keepAlive bool) {
	l.out = wsproto.AppendResponse(l.out[:0], status, "application/json", body, keepAlive)
	l.send(c, l.out)
}

func (l *refLoop) upgrade(c *refConn, req *wsproto.Request) {
	if st := wsproto.CheckUpgrade(req); st != 0 || !bytes.Contains(req.Path, []byte("/app/")) {
		if st == 0 {
			st = 404
		}
		l.respond(c, st, nil, false)
		c.dead = true
		return
	}
	c.ws = true
	c.rd.MaxMessage = refMaxRequest
	l.s.open.Add(1)
	l.s.accepted.Add(1)
	l.nextID++
	b := wsproto.AppendUpgradeResponse(l.out[:0], req.Key)
	var sid [40]byte
	id := strconv.AppendUint(sid[:0], uint64(l.id+1), 10)
	id = append(id, '.')
	id = strconv.AppendUint(id, l.nextID, 10)
	var p [160]byte
	pl := append(p[:0], `{"event":"pusher:connection_established","data":"{\"socket_id\":\"`...)
	pl = append(pl, id...)
	pl = append(pl, `\",\"activity_timeout\":30}"}`...)
	b = wsproto.AppendText(b, pl)
	l.out = b
	l.send(c, b)
}

var (
	refPong         = wsproto.AppendText(nil, []byte(`{"event":"pusher:pong"}`))
	refInvalid      = wsproto.AppendText(nil, []byte(`{"event":"pusher:error","data":"{\"code\":4200,\"message\":\"Invalid message format\"}"}`))
	refEventSub     = []byte("pusher:subscribe")
	refEventUnsub   = []byte("pusher:unsubscribe")
	refEventPing    = []byte("pusher:ping")
	refPresenceSub  = []byte("presence-")
	refClientPrefix = []byte("client-")
)

// frames handles the complete WebSocket frames at the start of buf and
// returns the bytes consumed.
func (l *refLoop) frames(c *refConn, buf []byte) int {
	used := 0
	for !c.dead {
		f, n, ok, err := c.rd.Next(buf[used:])
		if err == wsproto.ErrNeedMore {
			return used
		}
		if err != nil {
			var ce *wsproto.CloseError
			if errors.As(err, &ce) {
				l.out = wsproto.AppendClose(l.out[:0], ce.Code, ce.Reason)
				l.send(c, l.out)
			}
			c.dead = true
			return used
		}
		used += n
		if !ok {
			continue
		}
		switch f.Kind {
		case wsproto.KindPing:
			l.out = wsproto.AppendFrame(l.out[:0], ws.OpPong, f.Payload)
			l.send(c, l.out)
		case wsproto.KindClose:
			l.out = wsproto.AppendClose(l.out[:0], f.CloseCode, "")
			l.send(c, l.out)
			c.dead = true
		case wsproto.KindMessage:
			l.message(c, f.Payload)
		}
	}
	return used
}

func (l *refLoop) message(c *refConn, msg []byte) {
	v, err := l.parser.ParseBytes(msg)
	if err != nil {
		l.send(c, refInvalid)
		return
	}
	ev := v.GetStringBytes("event")
	switch {
	case bytes.Equal(ev, refEventPing):
		l.send(c, refPong)
	case bytes.HasPrefix(ev, refClientPrefix):
		// Client events are relayed as received ("all" mode, §4.8), so
		// the whisper scenario has a ceiling too.
		ch := v.GetStringBytes("channel")
		if len(ch) == 0 {
			l.send(c, refInvalid)
			return
		}
		frame := wsproto.AppendText(make([]byte, 0, wsproto.HeaderLen(len(msg))+len(msg)), msg)
		l.broadcast(refEvent{channel: string(ch), frame: frame, except: c})
	case bytes.Equal(ev, refEventSub), bytes.Equal(ev, refEventUnsub):
		data := v.Get("data")
		if data != nil && data.Type() == fastjson.TypeString {
			data, err = l.parser2.ParseBytes(data.GetStringBytes())
			if err != nil {
				l.send(c, refInvalid)
				return
			}
		}
		ch := data.GetStringBytes("channel")
		if len(ch) == 0 {
			l.send(c, refInvalid)
			return
		}
		if bytes.Equal(ev, refEventSub) {
			l.subscribe(c, ch)
		} else {
			for i := range c.subs {
				if c.subs[i].name == string(ch) {
					l.unsubscribe(c, i)
					break
				}
			}
		}
	}
}

func (l *refLoop) subscribe(c *refConn, name []byte) {
	found := false
	for _, s := range c.subs {
		if s.name == string(name) {
			found = true
		}
	}
	if !found {
		ch := l.subs[string(name)]
		if ch == nil {
			ch = &refChan{}
			l.subs[string(name)] = ch
		}
		c.subs = append(c.subs, refSub{name: string(name), ch: ch, idx: len(ch.conns)})
		ch.conns = append(ch.conns, c)
	}
	var p [512]byte
	pl := append(p[:0], `{"event":"pusher_internal:subscription_succeeded","data":`...)
	if bytes.HasPrefix(name, refPresenceSub) {
		pl = append(pl, `"{\"presence\":{\"count\":0,\"ids\":[],\"hash\":{}}}"`...)
	} else {
		pl = append(pl, `"{}"`...)
	}
	pl = append(pl, `,"channel":`...)
	pl = appendJSONString(pl, name)
	pl = append(pl, '}')
	l.out = wsproto.AppendText(l.out[:0], pl)
	l.send(c, l.out)
}

// unsubscribe removes c.subs[i] by swapping the channel's last member into
// its slot, so removal costs O(subscriptions of the moved socket).
func (l *refLoop) unsubscribe(c *refConn, i int) {
	s := c.subs[i]
	ch := s.ch
	last := len(ch.conns) - 1
	moved := ch.conns[last]
	ch.conns[s.idx] = moved
	ch.conns[last] = nil
	ch.conns = ch.conns[:last]
	if moved != c {
		for j := range moved.subs {
			if moved.subs[j].ch == ch {
				moved.subs[j].idx = s.idx
				break
			}
		}
	}
	if len(ch.conns) == 0 {
		delete(l.subs, s.name)
	}
	c.subs[i] = c.subs[len(c.subs)-1]
	c.subs = c.subs[:len(c.subs)-1]
}

// publish decodes an /events body, builds one frame per channel and hands
// it to every loop (this one directly).
func (l *refLoop) publish(body []byte) bool {
	v, err := l.parser.ParseBytes(body)
	if err != nil {
		return false
	}
	name, data := v.Get("name"), v.Get("data")
	if name == nil || data == nil {
		return false
	}
	var chans []*fastjson.Value
	if a := v.GetArray("channels"); a != nil {
		chans = a
	} else if ch := v.Get("channel"); ch != nil {
		chans = []*fastjson.Value{ch}
	}
	for _, ch := range chans {
		cn := ch.GetStringBytes()
		if len(cn) == 0 {
			continue
		}
		p := append(l.out[:0], `{"event":`...)
		p = name.MarshalTo(p)
		p = append(p, `,"data":`...)
		p = data.MarshalTo(p)
		p = append(p, `,"channel":`...)
		p = appendJSONString(p, cn)
		p = append(p, '}')
		l.out = p
		frame := wsproto.AppendText(make([]byte, 0, wsproto.HeaderLen(len(p))+len(p)), p)
		l.s.events.Add(1)
		l.broadcast(refEvent{channel: string(cn), frame: frame})
	}
	return true
}

// broadcast delivers e on this loop and posts it to the others.
// The local share waits in l.local until the current socket's input is
// handled, so the HTTP answer goes out before ~1/loops of the writes.
func (l *refLoop) broadcast(e refEvent) {
	for _, o := range l.s.loops {
		if o != l {
			o.post(e)
		}
	}
	l.local = append(l.local, e)
}

// flushLocal delivers the events this loop published itself.
func (l *refLoop) flushLocal() {
	for i := range l.local {
		l.deliver(l.local[i])
		l.local[i] = refEvent{}
	}
	l.local = l.local[:0]
}

// post queues e for loop o and wakes it once per batch. Any goroutine.
func (o *refLoop) post(e refEvent) {
	o.mu.Lock()
	o.inbox = append(o.inbox, e)
	wake := !o.queued
	o.queued = true
	o.mu.Unlock()
	if wake {
		o.p.wake()
	}
}

func (l *refLoop) drainInbox() {
	l.mu.Lock()
	batch := l.inbox
	l.inbox = l.spare[:0]
	l.queued = false
	l.mu.Unlock()
	for i := range batch {
		l.deliver(batch[i])
		batch[i] = refEvent{}
	}
	l.spare = batch[:0]
}

// deliver writes e.frame to every local subscriber of e.channel. Sockets
// that fail are closed after the walk, which must not see the slice move.
func (l *refLoop) deliver(e refEvent) {
	ch := l.subs[e.channel]
	if ch == nil {
		return
	}
	n := 0
	for _, c := range ch.conns {
		if c != e.except && l.send(c, e.frame) {
			n++
		}
	}
	l.s.frames.Add(uint64(n))
	l.reap()
}

// send writes b now, or queues it behind bytes already waiting. b is copied
// if it cannot be written at once. It reports whether b was accepted.
func (l *refLoop) send(c *refConn, b []byte) bool {
	if c.dead {
		return false
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > refMaxPending {
			l.s.slow.Add(1)
			l.kill(c)
			return false
		}
		c.out = append(c.out, b...)
		return true
	}
	n, e := rawWrite(c.fd, b)
	if e != 0 {
		if e != unix.EAGAIN && e != unix.EINTR {
			l.kill(c)
			return false
		}
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out, b[n:]...)
	}
	return true
}

func (l *refLoop) kill(c *refConn) {
	if !c.dead {
		c.dead = true
		l.dead = append(l.dead, c)
	}
}

func (l *refLoop) flush(c *refConn) {
	if len(c.out) == 0 {
		return
	}
	n, e := rawWrite(c.fd, c.out)
	if e != 0 {
		if e != unix.EAGAIN && e != unix.EINTR {
			c.dead = true
		}
		return
	}
	c.out = c.out[:copy(c.out, c.out[n:])]
	if len(c.out) == 0 && cap(c.out) > 64<<10 {
		c.out = nil
	}
}
