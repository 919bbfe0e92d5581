//go:build linux

package bench

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/goreverb/reverb/wsproto"
)

// Client limits. Server frames larger than clientMaxFrame are treated as a
// protocol failure: the bench never triggers them, and refusing them keeps
// the per-loop read buffer the only large allocation.
const (
	clientReadBuf  = 256 << 10
	clientMaxFrame = 64 << 10
	clientMaxHead  = 8 << 10
	clientMaxOut   = 1 << 20
)

// Connection states.
const (
	stDial        uint8 = iota // connect(2) in progress
	stUpgrade                  // upgrade request sent, waiting for 101
	stHandshake                // upgraded, waiting for connection_established
	stSubscribing              // subscribe sent
	stReady                    // subscription_succeeded received
	stClosing                  // churn: unsubscribe + close frame sent
	stGone
)

// mask is the fixed masking key of client frames. The key only has to be
// unpredictable to intermediaries (RFC 6455 §10.3), which loopback has none
// of; a fixed non-zero key still makes the server unmask every byte.
var mask = [4]byte{0x5a, 0x17, 0xc3, 0x8e}

// marker starts the timestamp token bench events and client events carry:
// "rb!<seq>!<unix ns>!". Neither '!' nor digits are ever escaped, so it
// reads the same whether the server forwards data as a string or an object.
var marker = []byte("rb!")

var (
	crlf2       = []byte("\r\n\r\n")
	status101   = []byte("HTTP/1.1 101")
	acceptValue = []byte("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") // RFC 6455 §1.3, for wsKey
	evEstab     = []byte("pusher:connection_established")
	evSucceeded = []byte("pusher_internal:subscription_succeeded")
	evPing      = []byte("pusher:ping")
	evError     = []byte("pusher:error")
	keySocketID = []byte("socket_id")
	keyCode     = []byte("code")
	keyEvent    = []byte(`"event"`)
	pongMsg     = []byte(`{"event":"pusher:pong","data":{}}`)
)

// cconn is one client socket. It lives in its loop's table and is touched
// only by that loop.
type cconn struct {
	fd    int32
	state uint8
	idx   int32 // global connection index
	ch    int32 // channel number
	start int64 // unix ns of the dial (or of the close, when closing)
	in    []byte
	out   []byte
}

// loopCounters are published once per loop iteration for the progress
// reporter; the loop keeps the authoritative values in loopStats.
type loopCounters struct {
	dialed, subscribed, failed, dropped, recv, sent, cycles, errors, pings atomic.Uint64
	open                                                                   atomic.Int64
}

type loopStats struct {
	dialed, subscribed, failed, dropped, recv, sent, cycles, errors, pings uint64
	open                                                                   int64
}

// clientLoop is one epoll loop of a worker. It dials its share of the
// connections, runs the Pusher handshake on each, answers pings and records
// receipts. Everything here is owned by the loop's goroutine except pub.
type clientLoop struct {
	w  *worker
	id int
	p  *poller

	conns   []*cconn // by fd
	pending []*cconn // not yet subscribed (or closing), scanned for timeouts
	ready   []*cconn // subscribed; whisper senders pick from here
	rbuf    []byte
	wbuf    []byte
	sbuf    []byte
	now     int64

	// Plan: this loop dials global indices First+id, First+id+Loops, ...
	nextIdx   int
	planEnd   int
	dialEvery int64
	nextDial  int64
	inflight  int

	phase     int32
	sendEvery int64
	nextSend  int64
	sendCur   int
	seq       uint64
	lastScan  int64
	// quiet: the last wait found nothing, so the next one sleeps through
	// the runtime (poller.block) rather than holding its P.
	quiet bool

	st  loopStats
	pub loopCounters

	lat, connect, cycle Histogram
	got                 []uint32
	stray               uint64
	subsNow             []int32
	subsAtGo            []int32
	sentPerCh           []uint64
	fails               map[string]uint64
	errCodes            map[int]uint64
	closeCodes          map[int]uint64
}

func newClientLoop(w *worker, id int) (*clientLoop, error) {
	p, err := newPoller(1024)
	if err != nil {
		return nil, err
	}
	j := &w.job
	l := &clientLoop{
		w: w, id: id, p: p,
		rbuf:       make([]byte, clientReadBuf),
		nextIdx:    j.First + id,
		planEnd:    j.First + j.Count,
		subsNow:    make([]int32, j.Channels),
		fails:      map[string]uint64{},
		errCodes:   map[int]uint64{},
		closeCodes: map[int]uint64{},
	}
	if j.Scenario == ScenarioWhisper {
		l.sentPerCh = make([]uint64, j.Channels)
	}
	rate := j.Ramp
	if j.Scenario == ScenarioChurn {
		rate = j.Rate
		l.planEnd = 1 << 30
	}
	if rate > 0 {
		l.dialEvery = int64(float64(time.Second) * float64(j.Loops) / rate)
	}
	if j.Scenario == ScenarioWhisper && j.Rate > 0 {
		l.sendEvery = int64(float64(time.Second) * float64(j.Loops) / j.Rate)
	}
	return l, nil
}

func nanotime() int64 { return time.Now().UnixNano() }

func (l *clientLoop) run() {
	l.now = nanotime()
	l.nextDial = l.now
	for {
		l.now = nanotime()
		if ph := l.w.phase.Load(); ph != l.phase {
			if ph == phaseStop {
				break
			}
			l.enter(ph)
		}
		l.timers()
		l.publish()
		var n int
		var err error
		if ms := l.waitMillis(); l.quiet && ms > 0 {
			n, err = l.p.block(ms)
		} else {
			n, err = l.p.wait(ms)
		}
		if err != nil {
			break
		}
		l.quiet = n == 0
		l.now = nanotime()
		for i := range n {
			ev := l.p.events[i]
			fd := int(ev.Fd)
			if fd == l.p.evfd {
				l.p.drainWake()
				continue
			}
			if fd >= len(l.conns) || l.conns[fd] == nil {
				continue
			}
			c := l.conns[fd]
			if ev.Events&unix.EPOLLOUT != 0 {
				l.writable(c)
			}
			const hup = unix.EPOLLERR | unix.EPOLLHUP | unix.EPOLLRDHUP
			if c.state != stGone && ev.Events&(unix.EPOLLIN|hup) != 0 {
				l.readable(c, ev.Events&hup != 0)
			}
		}
		if gap := l.w.job.PollGap; gap > 0 && n > 0 && n < len(l.p.events) {
			pause(gap)
		}
	}
	l.shutdown()
	l.publish()
}

// enter reacts to a phase change from the control goroutine.
func (l *clientLoop) enter(ph int32) {
	if ph == phaseGo && l.phase == phaseSetup {
		l.subsAtGo = append([]int32(nil), l.subsNow...)
		l.nextSend = l.now
		if l.w.job.Scenario == ScenarioChurn {
			l.nextDial = l.now
		}
	}
	l.phase = ph
}

// waitMillis is how long epoll may sleep before the next paced action.
func (l *clientLoop) waitMillis() int {
	// 50 ms while handshakes are pending (their timeouts are scanned every
	// 250 ms), 250 ms once every socket is settled: an idle loop holding
	// its sockets then wakes 4 times a second.
	next := l.now + 250*int64(time.Millisecond)
	if len(l.pending) > 0 {
		next = l.now + 50*int64(time.Millisecond)
	}
	if l.dialing() && l.dialEvery > 0 && l.inflight < l.w.job.MaxInflight {
		next = min(next, l.nextDial)
	}
	if l.sending() {
		next = min(next, l.nextSend)
	}
	d := next - l.now
	if d <= 0 {
		return 0
	}
	return int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

func (l *clientLoop) dialing() bool {
	if l.w.job.Scenario == ScenarioChurn {
		return l.phase == phaseGo
	}
	return l.nextIdx < l.planEnd
}

func (l *clientLoop) sending() bool {
	return l.sendEvery > 0 && l.phase == phaseGo && len(l.ready) > 0
}

// timers runs paced dials, paced client events and the timeout scan.
func (l *clientLoop) timers() {
	if l.dialing() {
		if l.dialEvery == 0 {
			for l.nextIdx < l.planEnd && l.inflight < l.w.job.MaxInflight {
				l.dialNext()
			}
		} else {
			// Falling more than 100 ms behind means the server (or this
			// loop) is saturated; do not burst to catch up.
			if l.now-l.nextDial > int64(100*time.Millisecond) {
				l.nextDial = l.now
			}
			for l.dialing() && l.nextDial <= l.now && l.inflight < l.w.job.MaxInflight {
				l.dialNext()
				l.nextDial += l.dialEvery
			}
		}
	}
	if l.sending() {
		if l.now-l.nextSend > int64(100*time.Millisecond) {
			l.nextSend = l.now
		}
		for l.nextSend <= l.now && len(l.ready) > 0 {
			l.whisper()
			l.nextSend += l.sendEvery
		}
	}
	if l.now-l.lastScan > int64(250*time.Millisecond) {
		l.lastScan = l.now
		l.scan()
	}
}

// scan fails handshakes and churn closes older than the connect timeout and
// compacts the pending and ready lists.
func (l *clientLoop) scan() {
	limit := int64(l.w.job.ConnectTimeout)
	keep := l.pending[:0]
	for _, c := range l.pending {
		if c.state == stGone || c.state == stReady {
			continue
		}
		if l.now-c.start > limit {
			if c.state == stClosing {
				l.fails["close-timeout"]++
				l.st.cycles++
				l.cycle.Record(l.now - c.start)
				l.release(c)
			} else {
				l.fail(c, "timeout")
			}
			continue
		}
		keep = append(keep, c)
	}
	clear(l.pending[len(keep):])
	l.pending = keep
	if l.w.job.Scenario == ScenarioWhisper {
		r := l.ready[:0]
		for _, c := range l.ready {
			if c.state == stReady {
				r = append(r, c)
			}
		}
		clear(l.ready[len(r):])
		l.ready = r
	}
}

func (l *clientLoop) publish() {
	s, p := &l.st, &l.pub
	p.dialed.Store(s.dialed)
	p.subscribed.Store(s.subscribed)
	p.failed.Store(s.failed)
	p.dropped.Store(s.dropped)
	p.recv.Store(s.recv)
	p.sent.Store(s.sent)
	p.cycles.Store(s.cycles)
	p.errors.Store(s.errors)
	p.pings.Store(s.pings)
	p.open.Store(s.open)
}

// dialNext starts a non-blocking connect for the next planned index.
func (l *clientLoop) dialNext() {
	idx := l.nextIdx
	l.nextIdx += l.w.job.Loops
	l.st.dialed++
	l.inflight++
	c := &cconn{fd: -1, idx: int32(idx), ch: int32(l.w.channelOf(idx)), start: l.now}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.failNoFD(c, "socket")
		return
	}
	c.fd = int32(fd)
	if n := len(l.w.src); n > 0 {
		// Let connect(2) pick the port per 4-tuple: every source address
		// then offers the whole ephemeral range again.
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: l.w.src[idx%n]}); err != nil {
			unix.Close(fd)
			l.failNoFD(c, "bind")
			return
		}
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: l.w.job.Port, Addr: l.w.ip})
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		l.failNoFD(c, "connect")
		return
	}
	if err := l.p.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET); err != nil {
		unix.Close(fd)
		l.failNoFD(c, "epoll")
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*cconn, max(1024, len(l.conns)))...)
	}
	l.conns[fd] = c
	l.st.open++
	l.pending = append(l.pending, c)
	if err == nil {
		l.writable(c) // loopback connects can complete at once
	}
}

func (l *clientLoop) failNoFD(c *cconn, why string) {
	l.fails[why]++
	l.st.failed++
	l.inflight--
	c.state = stGone
	if l.w.job.Scenario == ScenarioChurn {
		l.st.errors++
	}
}

// fail gives up on a connection that never got subscribed.
func (l *clientLoop) fail(c *cconn, why string) {
	if c.state == stGone {
		return
	}
	l.fails[why]++
	l.st.failed++
	l.inflight--
	if l.w.job.Scenario == ScenarioChurn {
		l.st.errors++
	}
	l.release(c)
}

// release closes the socket and forgets it.
func (l *clientLoop) release(c *cconn) {
	if c.state == stReady {
		l.subsNow[c.ch]--
	}
	c.state = stGone
	l.conns[c.fd] = nil
	unix.Close(int(c.fd))
	l.st.open--
	c.in, c.out = nil, nil
}

// lost handles EOF, a reset or a close frame from the server.
func (l *clientLoop) lost(c *cconn, code int, why string) {
	switch c.state {
	case stReady:
		l.st.dropped++
		l.closeCodes[code]++
		l.release(c)
	case stClosing:
		l.st.cycles++
		l.cycle.Record(l.now - c.start)
		l.release(c)
	default:
		if code != 1006 {
			why = "close-" + strconv.Itoa(code)
		}
		l.fail(c, why)
	}
}

func (l *clientLoop) writable(c *cconn) {
	if c.state == stDial {
		if e, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			l.fail(c, "connect")
			return
		}
		c.state = stUpgrade
		l.write(c, l.w.upgrade)
		return
	}
	if len(c.out) == 0 {
		return
	}
	n, e := rawWrite(int(c.fd), c.out)
	if e != 0 {
		if e != unix.EAGAIN && e != unix.EINTR {
			l.lost(c, 1006, "write")
		}
		return
	}
	c.out = c.out[:copy(c.out, c.out[n:])]
	if len(c.out) == 0 {
		c.out = nil
	}
}

// write sends b now or queues it behind unsent bytes; b is copied only if
// it cannot be written at once. The edge-triggered EPOLLOUT registered at
// dial time reports when queued bytes can go.
func (l *clientLoop) write(c *cconn, b []byte) {
	if c.state == stGone {
		return
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > clientMaxOut {
			l.lost(c, 1006, "backlog")
			return
		}
		c.out = append(c.out, b...)
		return
	}
	n, e := rawWrite(int(c.fd), b)
	if e != 0 {
		if e != unix.EAGAIN && e != unix.EINTR {
			l.lost(c, 1006, "write")
			return
		}
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out, b[n:]...)
	}
}

// readable reads until a short read: with edge-triggered epoll a short
// read proves the socket was drained, which saves the extra poll a
// level-triggered set does per ready socket. After a hang-up (hup) no
// further edge will come, so it reads on until EOF.
func (l *clientLoop) readable(c *cconn, hup bool) {
	for c.state != stGone {
		off := copy(l.rbuf, c.in)
		space := len(l.rbuf) - off
		n, e := rawRead(int(c.fd), l.rbuf[off:])
		if e != 0 {
			if e != unix.EAGAIN && e != unix.EINTR {
				l.lost(c, 1006, "reset")
			}
			return
		}
		if n == 0 {
			l.lost(c, 1006, "eof")
			return
		}
		l.now = nanotime()
		buf := l.rbuf[:off+n]
		used := l.consume(c, buf)
		if c.state == stGone {
			return
		}
		if rest := buf[used:]; len(rest) == 0 {
			c.in = nil
		} else {
			c.in = append(c.in[:0], rest...)
		}
		if n < space && !hup {
			return
		}
	}
}

// consume handles the complete units at the start of buf (the 101 response,
// then frames) and returns the bytes used.
func (l *clientLoop) consume(c *cconn, buf []byte) int {
	used := 0
	if c.state == stUpgrade {
		i := bytes.Index(buf, crlf2)
		if i < 0 {
			if len(buf) > clientMaxHead {
				l.fail(c, "upgrade")
			}
			return 0
		}
		head := buf[:i]
		if !bytes.HasPrefix(head, status101) {
			why := "http"
			if len(head) >= 12 {
				why = "http-" + string(head[9:12])
			}
			l.fail(c, why)
			return 0
		}
		if !bytes.Contains(head, acceptValue) {
			l.fail(c, "accept")
			return 0
		}
		c.state = stHandshake
		used = i + 4
	}
	for c.state != stGone {
		h, hn, err := wsproto.ParseHeader(buf[used:])
		if err != nil {
			if err != wsproto.ErrNeedMore {
				l.lost(c, 1002, "frame")
			}
			break
		}
		if h.Length > clientMaxFrame {
			l.lost(c, 1009, "frame-size")
			break
		}
		total := hn + int(h.Length)
		if len(buf)-used < total {
			break
		}
		payload := buf[used+hn : used+total]
		used += total
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			l.message(c, payload)
		case ws.OpPing:
			l.wbuf = wsproto.AppendClientFrame(l.wbuf[:0], ws.OpPong, true, mask, payload)
			l.write(c, l.wbuf)
		case ws.OpClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			if c.state != stClosing {
				// Echo the close as RFC 6455 §5.5.1 asks.
				l.wbuf = wsproto.AppendClientFrame(l.wbuf[:0], ws.OpClose, true, mask, payload[:min(len(payload), 2)])
				l.write(c, l.wbuf)
			}
			l.lost(c, code, "close")
		}
	}
	return used
}

// message handles one text message. Bench receipts are recognised first by
// their marker, so the fan-out path is a memchr-class scan and two integer
// parses.
func (l *clientLoop) message(c *cconn, p []byte) {
	if i := bytes.Index(p, marker); i >= 0 {
		l.receipt(p[i+len(marker):])
		return
	}
	ev := eventName(p)
	switch {
	case bytes.Equal(ev, evPing):
		l.st.pings++
		l.wbuf = wsproto.AppendClientFrame(l.wbuf[:0], ws.OpText, true, mask, pongMsg)
		l.write(c, l.wbuf)
	case bytes.Equal(ev, evEstab) && c.state == stHandshake:
		l.subscribe(c, socketID(p))
	case bytes.Equal(ev, evSucceeded) && c.state == stSubscribing:
		l.subscribed(c)
	case bytes.Equal(ev, evError):
		code := errorCode(p)
		l.errCodes[code]++
		l.st.errors++
		if c.state < stReady {
			l.fail(c, "error-"+strconv.Itoa(code))
		}
	}
}

func (l *clientLoop) receipt(tok []byte) {
	seq, tok, ok1 := parseUint(tok)
	ts, _, ok2 := parseUint(tok)
	if !ok1 || !ok2 {
		l.stray++
		return
	}
	l.st.recv++
	l.lat.Record(l.now - int64(ts))
	if !l.w.trackSeq {
		return
	}
	if seq >= 1<<26 {
		l.stray++ // not ours: the publisher never gets this far in a bounded run
		return
	}
	if int(seq) >= len(l.got) {
		n := max(int(seq)+1, 2*len(l.got), 1024)
		l.got = append(l.got, make([]uint32, n-len(l.got))...)
	}
	l.got[seq]++
}

// parseUint reads decimal digits up to a '!' and returns the rest after it.
func parseUint(b []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	if i == 0 || i >= len(b) || b[i] != '!' {
		return 0, nil, false
	}
	return v, b[i+1:], true
}

// eventName returns the value of the top-level "event" key of a server
// message, tolerating whitespace, without a JSON parse.
func eventName(p []byte) []byte {
	i := bytes.Index(p, keyEvent)
	if i < 0 {
		return nil
	}
	p = p[i+len(keyEvent):]
	j := 0
	for j < len(p) && (p[j] == ' ' || p[j] == ':' || p[j] == '\t') {
		j++
	}
	if j >= len(p) || p[j] != '"' {
		return nil
	}
	p = p[j+1:]
	if k := bytes.IndexByte(p, '"'); k >= 0 {
		return p[:k]
	}
	return nil
}

// socketID extracts the digits.digits socket id of connection_established,
// whose data is a JSON string (so the key appears with escaped quotes).
func socketID(p []byte) []byte {
	i := bytes.Index(p, keySocketID)
	if i < 0 {
		return nil
	}
	p = p[i+len(keySocketID):]
	j := 0
	for j < len(p) && (p[j] < '0' || p[j] > '9') {
		j++
	}
	k := j
	for k < len(p) && (p[k] >= '0' && p[k] <= '9' || p[k] == '.') {
		k++
	}
	return p[j:k]
}

// errorCode extracts the code of a pusher:error, 0 if absent.
func errorCode(p []byte) int {
	i := bytes.Index(p, keyCode)
	if i < 0 {
		return 0
	}
	p = p[i+len(keyCode):]
	j := 0
	for j < len(p) && (p[j] < '0' || p[j] > '9') && p[j] != ',' && p[j] != '}' {
		j++
	}
	v := 0
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		v = v*10 + int(p[j]-'0')
		j++
	}
	return v
}

// subscribe sends pusher:subscribe for c's channel, signing private and
// presence channels locally as an app's auth endpoint would.
func (l *clientLoop) subscribe(c *cconn, sid []byte) {
	j := &l.w.job
	name := l.w.names[c.ch]
	m := append(l.sbuf[:0], `{"event":"pusher:subscribe","data":{"channel":`...)
	m = appendJSONString(m, name)
	m = append(m, `,"auth":`...)
	var cd []byte
	switch j.ChannelType {
	case "presence":
		cd = append(l.wbuf[:0], `{"user_id":"`...)
		cd = strconv.AppendInt(cd, int64(c.idx), 10)
		cd = append(cd, `","user_info":{}}`...)
		l.wbuf = cd
		fallthrough
	case "private":
		var auth [128]byte
		a := AppendChannelAuth(auth[:0], j.Key, j.Secret, sid, name, cd)
		m = appendJSONString(m, a)
	default:
		m = append(m, `""`...)
	}
	if cd != nil {
		m = append(m, `,"channel_data":`...)
		m = appendJSONString(m, cd)
	}
	m = append(m, `}}`...)
	l.sbuf = m
	l.wbuf = wsproto.AppendClientFrame(l.wbuf[:0], ws.OpText, true, mask, m)
	c.state = stSubscribing
	l.write(c, l.wbuf)
}

func (l *clientLoop) subscribed(c *cconn) {
	c.state = stReady
	l.st.subscribed++
	l.inflight--
	l.connect.Record(l.now - c.start)
	l.subsNow[c.ch]++
	switch l.w.job.Scenario {
	case ScenarioWhisper:
		l.ready = append(l.ready, c)
	case ScenarioChurn:
		// One write carries the unsubscribe and the close, like a page
		// that leaves; the cycle ends when the server answers the close.
		name := l.w.names[c.ch]
		m := append(l.sbuf[:0], `{"event":"pusher:unsubscribe","data":{"channel":`...)
		m = appendJSONString(m, name)
		m = append(m, `}}`...)
		l.sbuf = m
		b := wsproto.AppendClientFrame(l.wbuf[:0], ws.OpText, true, mask, m)
		b = wsproto.AppendClientFrame(b, ws.OpClose, true, mask, []byte{0x03, 0xe8})
		l.wbuf = b
		l.subsNow[c.ch]--
		c.state = stClosing
		l.pending = append(l.pending, c)
		l.write(c, b)
	}
}

// whisper sends one client event from the next subscribed socket.
func (l *clientLoop) whisper() {
	if l.sendCur >= len(l.ready) {
		l.sendCur = 0
	}
	c := l.ready[l.sendCur]
	l.sendCur++
	if c.state != stReady {
		return
	}
	l.seq++
	m := append(l.sbuf[:0], `{"event":"client-bench","channel":`...)
	m = appendJSONString(m, l.w.names[c.ch])
	m = append(m, `,"data":{"x":"rb!`...)
	m = strconv.AppendUint(m, l.seq, 10)
	m = append(m, '!')
	m = strconv.AppendInt(m, nanotime(), 10)
	m = append(m, `!"`...)
	if pad := l.w.job.Size - len(m); pad > 0 {
		m = append(m, `,"p":"`...)
		for range pad {
			m = append(m, 'x')
		}
		m = append(m, '"')
	}
	m = append(m, `}}`...)
	l.sbuf = m
	l.wbuf = wsproto.AppendClientFrame(l.wbuf[:0], ws.OpText, true, mask, m)
	l.st.sent++
	l.sentPerCh[c.ch]++
	l.write(c, l.wbuf)
}

// shutdown closes every socket of the loop at stop.
func (l *clientLoop) shutdown() {
	for _, c := range l.conns {
		if c != nil && c.state != stGone {
			if c.state == stReady {
				l.subsNow[c.ch]--
			}
			c.state = stGone
			unix.Close(int(c.fd))
			l.st.open--
		}
	}
	clear(l.conns)
	l.p.close()
}
