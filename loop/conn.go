package loop

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

const (
	stateHTTP uint8 = iota
	stateWS
	// stateAPI: an HTTP API request of the connection is being served off
	// the loop (Config.AsyncAPI). Nothing more is read until apiCall.Run
	// writes its response and returns the connection to stateHTTP.
	stateAPI
)

// Slow consumers are closed with a 41xx code: pusher-js reconnects after a
// back-off instead of immediately (§2.6).
const (
	closeSlowConsumer = 4100
	reasonSlow        = "Over capacity"
)

// conn is the state of one TCP connection. Loop only.
type conn struct {
	hub.Session // valid once the WebSocket is established (Open())

	c  gnet.Conn
	lc *loopCtx
	rd wsproto.Reader

	// phead and ptail link the frames queued since the last flush in
	// lc.frames (index + 1; 0 = none): a loop-wide arena instead of a slice
	// per connection keeps idle connections small.
	phead, ptail int32

	// mark is a coarse second whose meaning depends on the state: the last
	// request activity of an HTTP connection, the moment an idle WebSocket
	// was pinged.
	mark int64
	// headAt is the coarse second the first byte of the HTTP request now
	// arriving came in; 0 while no request is partly received.
	headAt uint32 // unix seconds fit until 2106

	// timing wheel links
	tnext, tprev *conn

	fd        int32
	slot      int32
	pendBytes int32
	// blIdx is the index + 1 of the socket's backlog in lc.slow
	// (backlog.go); 0 while it keeps up.
	blIdx   int32
	state   uint8
	dirty   bool // in lc.dirty
	closing bool // close after the next flush; nothing more is sent or read
	gone    bool // OnClose ran; the gnet.Conn must not be touched
	// pre: counted in Server.preUpgrade (not yet upgraded, not closed).
	pre bool
	// gnetHolds: bytes were handed to gnet's outbound buffer (only ever
	// for a closing socket or an HTTP connection whose write failed) and
	// gnet may still hold some.
	gnetHolds bool
}

// idleAt is the coarse second at which the socket counts as idle (§7). The
// clock has one-second steps, so one is added: a socket is never pinged
// before a whole ping_interval of silence.
func (cn *conn) idleAt() int64 {
	return cn.LastSeen + int64(cn.App.PingInterval/time.Second) + 1
}

// Send implements hub.Conn.
func (cn *conn) Send(frame []byte) {
	if cn.closing || cn.gone {
		return
	}
	lc := cn.lc
	if cn.pendBytes >= flushThreshold {
		// A long drain for one socket: write what is queued now, so that
		// the backlog bound (checked by write) sees what the client really
		// failed to read.
		cn.write()
		if cn.closing {
			return
		}
	}
	if lc.log != nil {
		lc.logOut(cn, frame)
	}
	lc.countSent(cn)
	cn.queue(frame)
}

func (cn *conn) queue(frame []byte) {
	lc := cn.lc
	lc.frames = append(lc.frames, pendFrame{b: frame})
	i := int32(len(lc.frames))
	if cn.ptail == 0 {
		cn.phead = i
	} else {
		lc.frames[cn.ptail-1].next = i
	}
	cn.ptail = i
	cn.pendBytes += int32(len(frame))
	lc.markDirty(cn)
}

// flushThreshold is how many bytes may be queued for one socket within one
// callback before they are written early.
const flushThreshold = 256 << 10

// write sends the queued frames with one write or writev. What the kernel
// does not take becomes the socket's backlog (backlog.go); while a backlog
// exists, new frames join it, so order is kept.
func (cn *conn) write() {
	lc := cn.lc
	if !cn.gone && cn.phead != 0 {
		if bl := lc.backlogOf(cn); bl != nil {
			for i := cn.phead; i != 0; i = lc.frames[i-1].next {
				lc.hold(bl, lc.frames[i-1].b, 0)
			}
			if cn.closing {
				lc.writeBacklog(cn)
			} else {
				lc.checkBacklog(cn)
			}
		} else {
			cn.writeQueued()
		}
	}
	cn.phead, cn.ptail = 0, 0
	cn.pendBytes = 0
}

// writeQueued writes the queued frames of a socket without a backlog.
func (cn *conn) writeQueued() {
	lc := cn.lc
	rest := lc.wbuf[:0]
	for i := cn.phead; i != 0; i = lc.frames[i-1].next {
		rest = append(rest, lc.frames[i-1].b)
	}
	lc.wbuf = rest
	defer clear(lc.wbuf) // no frame references kept past the write
	n, failed := 0, false
	if !cn.gnetHolds || cn.c.OutboundBuffered() == 0 {
		cn.gnetHolds = false
		n, failed = lc.rawWritev(int(cn.fd), rest)
	} else {
		failed = true // gnet keeps the order behind what it holds
	}
	if !failed {
		for len(rest) > 0 && n >= len(rest[0]) {
			n -= len(rest[0])
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return
		}
		if cn.state == stateWS && !cn.closing {
			bl := lc.startBacklog(cn)
			lc.hold(bl, rest[0], n)
			for _, f := range rest[1:] {
				lc.hold(bl, f, 0)
			}
			lc.checkBacklog(cn)
			return
		}
		if n > 0 {
			rest[0] = rest[0][n:]
		}
	}
	// A closing socket, an HTTP response the kernel did not take, or a
	// failed write: gnet copies the rest (a close frame or a response,
	// bounded by the request size), writes it on EPOLLOUT or at close, and
	// closes the socket synchronously on an error.
	cn.gnetHolds = true
	if len(rest) == 1 {
		_, _ = cn.c.Write(rest[0])
	} else {
		_, _ = cn.c.Writev(rest)
	}
}

// Close implements hub.Conn: a close frame, then the TCP close at flush.
func (cn *conn) Close(code int, reason string) {
	if cn.closing || cn.gone {
		return
	}
	cn.closeWith(ws.StatusCode(code), reason)
}

func (cn *conn) closeWith(code ws.StatusCode, reason string) {
	lc := cn.lc
	start := len(lc.buf)
	lc.buf = wsproto.AppendClose(lc.buf, code, reason) // 1005 → empty payload
	if lc.log != nil {
		lc.log.Debug("close", "socket_id", cn.ID(), "code", int(code), "reason", reason)
	}
	cn.queue(lc.buf[start:len(lc.buf):len(lc.buf)])
	cn.closing = true
}

// closeHTTP marks an HTTP connection to close after its queued response.
func (cn *conn) closeHTTP() {
	cn.closing = true
	cn.lc.markDirty(cn)
}

// markDirty puts cn on the list the next flush writes.
func (lc *loopCtx) markDirty(cn *conn) {
	if !cn.dirty {
		cn.dirty = true
		lc.dirty = append(lc.dirty, cn)
	}
}

// pendFrame is one queued frame in a loop's arena; next is the index + 1
// of the same connection's next frame.
type pendFrame struct {
	b    []byte
	next int32
}

// loopCtx is the state of one event loop. Loop only, except el.
type loopCtx struct {
	srv   *Server
	el    gnet.EventLoop
	local *hub.Local
	log   *slog.Logger
	wheel wheel

	dirty  []*conn
	frames []pendFrame  // queued frames of every dirty conn (see conn.phead)
	wbuf   [][]byte     // one conn's frames, gathered for a write
	iov    []unix.Iovec // rawWritev scratch
	buf    []byte       // scratch for HTTP responses and control frames; reset at flush
	apiBuf []byte
	req    pusher.APIRequest

	drainTask drainTask
	tickTask  tickTask

	// Backlogs (backlog.go): sockets that have one, by slot and by id, the
	// frames they hold with the loop's count of references, and the
	// poller that says when they can take more.
	slow      []*backlog
	slowID    map[uint32]*backlog
	blSeq     uint32
	held      map[*byte]*heldFrame
	heldBytes int
	poller    outPoller
	stats     loopStats

	// yield pair (yield.go): the writing descriptor once ready (-1 before),
	// whether the enrolled reading end is open, and the file that owns the
	// descriptor (stored by the goroutine that built the pair).
	yieldFD   int
	yieldOpen bool
	yieldFile atomic.Value
}

func newLoopCtx(s *Server, el gnet.EventLoop, local *hub.Local) *loopCtx {
	lc := &loopCtx{srv: s, el: el, local: local, log: s.log}
	lc.wheel.cur = s.hub.Now()
	lc.drainTask.lc = lc
	lc.tickTask.lc = lc
	lc.stats.apps = make([]loopApp, len(s.totals))
	local.Bind(lc)
	lc.startYield()
	return lc
}

// Wake implements hub.Poster: run the inbox drain on this loop. Any goroutine.
func (lc *loopCtx) Wake() {
	_ = lc.el.Execute(context.Background(), &lc.drainTask)
}

type drainTask struct{ lc *loopCtx }

func (t *drainTask) Run(context.Context) error {
	t.lc.drain()
	return nil
}

type tickTask struct{ lc *loopCtx }

func (t *tickTask) Run(context.Context) error {
	lc := t.lc
	lc.wheel.advance(lc.srv.hub.Now(), lc.expire)
	lc.flush(nil)
	return nil
}

type closeAllTask struct {
	lc *loopCtx
	wg *sync.WaitGroup
}

func (t *closeAllTask) Run(context.Context) error {
	defer t.wg.Done()
	lc := t.lc
	var all []*conn
	lc.wheel.each(func(cn *conn) { all = append(all, cn) })
	for _, cn := range all {
		switch cn.state {
		case stateWS:
			cn.Close(4200, "Server is restarting")
		case stateAPI:
			// Answered with Connection: close once served (apiCall.Run);
			// Shutdown waits for that before stopping the engine.
		default:
			cn.closeHTTP()
		}
	}
	lc.flush(nil)
	return nil
}

// flush writes every socket's queued frames with one write or writev and
// closes the sockets marked closing. cur is the connection whose OnTraffic
// is running (nil elsewhere): gnet closes it when OnTraffic returns Close.
func (lc *loopCtx) flush(cur *conn) {
	// A write may close other sockets (node budget), which join the list.
	for i := 0; i < len(lc.dirty); i++ {
		cn := lc.dirty[i]
		lc.dirty[i] = nil
		cn.dirty = false
		cn.write()
		if cn.closing && !cn.gone && cn != cur {
			_ = lc.el.Close(cn.c)
		}
	}
	lc.dirty = lc.dirty[:0]
	clear(lc.frames)
	lc.frames = lc.frames[:0]
	if cap(lc.frames) > 1<<16 {
		lc.frames = nil
	}
	if cap(lc.buf) > 1<<20 {
		lc.buf = nil
	}
	lc.buf = lc.buf[:0]
	lc.foldStats()
	lc.local.ResetScratch()
}

// expire runs the timers of one connection whose wheel slot came due (§7).
func (lc *loopCtx) expire(cn *conn) {
	if cn.gone {
		return
	}
	now := lc.wheel.cur
	s := lc.srv
	switch {
	case cn.closing:
		// A close is already queued; give the flush a chance, then force it.
		_ = lc.el.Close(cn.c)
	case cn.state == stateHTTP:
		if cn.headAt != 0 && now >= int64(cn.headAt)+s.headSec {
			s.hub.Counters().HeadDeadlineCloses.Add(1)
			if lc.log != nil {
				lc.log.Debug("request timeout", "remote", cn.c.RemoteAddr().String(), "buffered", cn.c.InboundBuffered())
			}
			lc.respondClose(cn, 408, bodyTimeout)
			return
		}
		due := cn.mark + s.httpSec
		if cn.headAt != 0 {
			due = min(due, int64(cn.headAt)+s.headSec)
		}
		if now < due {
			lc.wheel.add(cn, due)
			return
		}
		cn.closeHTTP()
	case cn.state == stateAPI:
		// Not idle while its request is served; apiCall.Run restarts the
		// clock with the response.
		lc.wheel.add(cn, now+s.httpSec)
	case !cn.Open():
		cn.closeHTTP()
	default:
		ss := &cn.Session
		idleAt := cn.idleAt()
		if now < idleAt {
			lc.wheel.add(cn, idleAt)
			return
		}
		if !ss.Pinged {
			ss.Pinged = true
			cn.mark = now
			if ss.Control {
				cn.Send(wsproto.PingFrame)
			} else {
				lc.local.SendPusherPing(ss)
			}
			lc.wheel.add(cn, now+s.pongSec)
			return
		}
		if due := cn.mark + s.pongSec; now < due {
			lc.wheel.add(cn, due)
			return
		}
		lc.local.Fail(ss, pusher.ErrPongTimeout)
		lc.wheel.add(cn, now+1)
	}
}

func (lc *loopCtx) logOut(cn *conn, frame []byte) {
	if cn.state != stateWS {
		return
	}
	lc.log.Debug("frame out", "socket_id", cn.ID(), "payload", string(framePayload(frame)))
}

// framePayload returns the payload of a server frame built by wsproto.
func framePayload(frame []byte) []byte {
	if len(frame) < 2 {
		return nil
	}
	switch n := frame[1] & 0x7f; n {
	case 126:
		return frame[min(4, len(frame)):]
	case 127:
		return frame[min(10, len(frame)):]
	}
	return frame[2:]
}
