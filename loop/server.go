package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Addr is the TCP address to listen on, "host:port".
	Addr string
	// Path is the route prefix P ("" or "/x", §1).
	Path string
	// Apps are the configured apps. Required.
	Apps *pusher.AppSet
	// MaxRequestSize caps a whole HTTP request, head and body (§8.2).
	// Default 10 000 bytes.
	MaxRequestSize int
	// TimestampWindow is the HTTP API auth_timestamp tolerance; 0 = off.
	TimestampWindow time.Duration
	// MaxOutboundBuffer is how many bytes may wait for one slow socket
	// before it is disconnected with close 4100, counted against the
	// shared frames its backlog refers to (backlog.go). Default 4 MiB.
	MaxOutboundBuffer int
	// MaxNodeBuffer is the node's budget for frames held for sockets that
	// have not taken them, each frame counted once per loop holding it.
	// Past it, the sockets with the largest backlogs are closed with 4100.
	// Default 256 MiB.
	MaxNodeBuffer int
	// SocketSendBuffer sets SO_SNDBUF on every connection (the kernel
	// doubles it for its bookkeeping), capping what a socket that does not
	// read holds in kernel memory. 0 leaves the kernel's autotuning, which
	// lets one socket hold up to net.ipv4.tcp_wmem's maximum (4 MiB).
	SocketSendBuffer int
	// PongTimeout is how long a pinged idle socket has to show activity
	// before it is closed with 4201. Default 30 s.
	PongTimeout time.Duration
	// HTTPIdleTimeout closes HTTP connections idle this long. Default 30 s.
	HTTPIdleTimeout time.Duration
	// HeadTimeout is how long an HTTP request (head, and the body of an
	// API request) may take from its first byte until it is complete,
	// however slowly bytes keep arriving; then the connection is answered
	// 408 and closed. Idle keep-alive connections between requests are
	// governed by HTTPIdleTimeout only. Default 10 s.
	HeadTimeout time.Duration
	// MaxPendingConnections bounds the connections of the node that have
	// not upgraded to WebSocket (HTTP API keep-alive connections included).
	// Beyond it a new connection is answered 503 and closed at once, so
	// silent or dribbling sockets cannot take every file descriptor.
	// Default: a quarter of the open-file limit (RLIMIT_NOFILE), at least
	// 128; negative means unlimited.
	MaxPendingConnections int
	// Loops is the number of event loops; 0 means runtime.GOMAXPROCS(0),
	// the CPUs the process may use (Go follows cgroup CPU quotas). Any
	// count is accepted; gnet runs at most 256 loops, so more are capped
	// there.
	Loops int
	// ReusePort sets SO_REUSEPORT so several processes can share the port.
	ReusePort bool
	// TLS, when set, terminates TLS in front of the engine (see tls.go).
	TLS *tls.Config
	// Logger, when set, logs connections, subscriptions-related traffic and
	// every frame in and out (--debug). Nil logs nothing per message.
	Logger *slog.Logger
	// Broker reaches other nodes; nil = single node.
	Broker hub.Broker
	// Hooks receives the events of the apps' webhooks; nil = none.
	Hooks hub.Hooks
	// AsyncAPI serves each HTTP API request (everything pusher.API.Serve
	// answers, /up included) on a goroutine of its own instead of on the
	// event loop, for backends whose queries may block: a clustered node
	// asks the other nodes, which can take a second or two, and a blocked
	// loop stalls every socket on it. At most 1024 requests are served at
	// once across the server; the others wait off the loop. A connection
	// reads nothing more while its request is in flight, so responses to
	// pipelined requests keep their order; it may buffer 16 ×
	// MaxRequestSize of them meanwhile and is closed beyond that.
	// False (the default) serves requests inline on the loop, which is
	// cheaper (no goroutine, no hand-off) when the backend never blocks.
	AsyncAPI bool

	// wrapAPI, when set, wraps the backend the HTTP API uses (tests only,
	// see export_test.go).
	wrapAPI func(pusher.Backend) pusher.Backend
}

// Server is a running engine. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	prefix  string
	hub     *hub.Hub
	api     *pusher.API
	log     *slog.Logger
	maxOut  int
	maxNode int64
	stopped chan struct{} // closed by Shutdown: ends reclaim and the pollers
	// footprint is the memory backlogs take: held frames and their entry
	// slices (backlog.go); reclaim watches it.
	footprint atomic.Int64
	pongSec   int64
	httpSec   int64
	headSec   int64

	// preUpgrade counts the connections not yet upgraded to WebSocket
	// (conn.pre); maxPending bounds it (0 = unlimited).
	preUpgrade atomic.Int64
	maxPending int64
	refuseResp []byte // the 503 sent to a connection over maxPending

	eng gnet.Engine
	// bootLn is listenerInodes at OnBoot; ownLn what the first OnTick
	// found beyond it (the listeners of gnet's loops 1..n under
	// SO_REUSEPORT), for Shutdown's unlisten. Both are written before
	// ticked closes, and Start returns only after that.
	bootLn   map[uint64]bool
	ownLn    map[uint64]bool
	ticked   chan struct{}
	done     chan error
	draining atomic.Bool
	tlsFront *tlsFront

	// AsyncAPI: apiSem bounds the requests served at once; apiInFlight
	// counts those handed off and not yet answered or dropped on their loop.
	apiSem      chan struct{}
	apiInFlight atomic.Int64

	mu    sync.Mutex
	loops []*loopCtx

	totals   []appTotals // per app, folded from the loops (stats.go)
	apiStats apiStats
}

// Start starts the engine and returns once it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Apps == nil {
		return nil, errors.New("loop: no apps configured")
	}
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = 10_000
	}
	if cfg.MaxOutboundBuffer <= 0 {
		cfg.MaxOutboundBuffer = 4 << 20
	}
	if cfg.MaxNodeBuffer <= 0 {
		cfg.MaxNodeBuffer = 256 << 20
	}
	if cfg.PongTimeout <= 0 {
		cfg.PongTimeout = 30 * time.Second
	}
	if cfg.HTTPIdleTimeout <= 0 {
		cfg.HTTPIdleTimeout = 30 * time.Second
	}
	if cfg.HeadTimeout <= 0 {
		cfg.HeadTimeout = 10 * time.Second
	}
	if cfg.MaxPendingConnections == 0 {
		cfg.MaxPendingConnections = defaultMaxPending()
	}
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	cfg.Loops = min(cfg.Loops, maxLoops)
	cfg.Path = normalisePath(cfg.Path)
	s := &Server{
		cfg:     cfg,
		prefix:  cfg.Path,
		log:     cfg.Logger,
		maxOut:  cfg.MaxOutboundBuffer,
		maxNode: int64(cfg.MaxNodeBuffer),
		stopped: make(chan struct{}),
		pongSec: int64((cfg.PongTimeout + time.Second - 1) / time.Second),
		httpSec: int64((cfg.HTTPIdleTimeout + time.Second - 1) / time.Second),
		headSec: int64((cfg.HeadTimeout + time.Second - 1) / time.Second),
		ticked:  make(chan struct{}),
		done:    make(chan error, 1),
		totals:  make([]appTotals, len(cfg.Apps.All())),
	}
	s.maxPending = int64(max(cfg.MaxPendingConnections, 0))
	s.refuseResp = wsproto.AppendResponse(nil, 503, jsonType, bodyTooManyPending, false)
	s.hub = hub.New(hub.Options{Apps: cfg.Apps, Loops: cfg.Loops, Frame: wsproto.AppendText, Broker: cfg.Broker, Hooks: cfg.Hooks, Logger: cfg.Logger})
	s.api = &pusher.API{Apps: cfg.Apps, Backend: s.hub, TimestampWindow: cfg.TimestampWindow}
	if cfg.wrapAPI != nil {
		s.api.Backend = cfg.wrapAPI(s.hub)
	}
	if cfg.AsyncAPI {
		s.apiSem = make(chan struct{}, maxAsyncAPI)
	}

	listen := "tcp://" + cfg.Addr
	if cfg.TLS != nil {
		front, inner, err := newTLSFront(cfg.Addr, cfg.TLS)
		if err != nil {
			return nil, err
		}
		s.tlsFront = front
		listen = inner
	}
	eng := &engine{srv: s}
	go func() {
		s.done <- gnet.Run(eng, listen,
			gnet.WithNumEventLoop(cfg.Loops),
			gnet.WithReusePort(cfg.ReusePort),
			// SO_REUSEADDR: a restarted server must rebind at once although
			// its predecessor's closed sockets are still in TIME_WAIT.
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLogger(quietLogger{}),
			gnet.WithSocketSendBuffer(cfg.SocketSendBuffer),
		)
	}()
	// Start returns once the engine runs and its listeners are all known
	// (gnet calls the first OnTick at once after it opened them, or Run
	// returns its error).
	var err error
	select {
	case <-s.ticked:
	case err = <-s.done:
		if err == nil {
			err = errors.New("engine stopped during start")
		}
	}
	if err != nil {
		if s.tlsFront != nil {
			s.tlsFront.close()
		}
		return nil, fmt.Errorf("loop: listen on %s: %w", cfg.Addr, err)
	}
	if s.tlsFront != nil {
		go s.tlsFront.serve()
	}
	go s.reclaim(s.stopped)
	return s, nil
}

// maxLoops is gnet's maximum number of event loops (it caps
// WithNumEventLoop there silently; we cap first so the hub matches).
const maxLoops = 256

// defaultMaxPending is a quarter of the process's open-file limit (Go
// raises the soft limit to the hard one at start), so at least three
// quarters stay for upgraded sockets, the listener and Redis; at least 128.
func defaultMaxPending() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return 16_384
	}
	return int(max(rl.Cur/4, 128))
}

// normalisePath turns "ws", "/ws" and "/ws/" into "/ws", and "/" into "" (§1).
func normalisePath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return "/" + p
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.cfg.Addr }

// Hub returns the server's hub (for wiring a cluster broker).
func (s *Server) Hub() *hub.Hub { return s.hub }

// Done returns a channel that receives the engine's exit error once it stops.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting (the listening sockets are released first, see
// unlisten), sends close 4200 "Server is restarting" to every socket
// (§10.6), closes the remaining connections and stops the engine.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	// Stop accepting before any 4200 goes out, so that a client's
	// immediate reconnect is refused (or, with SO_REUSEPORT, reaches a
	// process that stays) rather than accepted and dropped.
	if s.tlsFront != nil {
		s.tlsFront.close()
	} else {
		unlisten(s.eng, s.ownLn) // set before Start returned
	}
	s.mu.Lock()
	loops := append([]*loopCtx(nil), s.loops...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, lc := range loops {
		wg.Add(1)
		t := &closeAllTask{lc: lc, wg: &wg}
		if err := lc.el.Execute(ctx, t); err != nil {
			wg.Done()
		}
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	s.waitAPI(ctx)
	err := s.eng.Stop(ctx)
	for _, lc := range loops {
		lc.closeYield()
		lc.poller.stopped.Store(true)
	}
	close(s.stopped)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	return err
}

// engine implements gnet.EventHandler.
type engine struct {
	gnet.BuiltinEventEngine
	srv *Server
}

func (e *engine) OnBoot(eng gnet.Engine) gnet.Action {
	e.srv.eng = eng
	if e.srv.cfg.ReusePort && e.srv.cfg.Loops > 1 {
		e.srv.bootLn = listenerInodes(eng)
	}
	return gnet.None
}

// loopFor returns the loop context of el, creating it on first sight
// (gnet offers no list of its loops). Called on el's own goroutine.
func (s *Server) loopFor(el gnet.EventLoop) *loopCtx {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, lc := range s.loops {
		if lc.el == el {
			return lc
		}
	}
	if len(s.loops) >= s.cfg.Loops {
		return nil
	}
	lc := newLoopCtx(s, el, s.hub.Local(len(s.loops)))
	s.loops = append(s.loops, lc)
	return lc
}

func (e *engine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := e.srv
	if s.draining.Load() {
		return nil, gnet.Close
	}
	if y, ok := c.Context().(*yieldConn); ok {
		y.lc.yieldOpen = true
		return nil, gnet.None
	}
	lc := s.loopFor(c.EventLoop())
	if lc == nil {
		return nil, gnet.Close
	}
	if n := s.preUpgrade.Add(1); s.maxPending > 0 && n > s.maxPending {
		s.preUpgrade.Add(-1)
		s.hub.Counters().RefusedPreUpgrade.Add(1)
		if lc.log != nil {
			lc.log.Debug("connection refused: too many pending", "remote", c.RemoteAddr().String(), "pending", n-1)
		}
		return s.refuseResp, gnet.Close
	}
	cn := &conn{c: c, lc: lc, fd: int32(c.Fd()), slot: -1, mark: s.hub.Now(), pre: true}
	c.SetContext(cn)
	lc.wheel.add(cn, cn.mark+s.httpSec)
	return nil, gnet.None
}

func (e *engine) OnClose(c gnet.Conn, _ error) gnet.Action {
	if y, ok := c.Context().(*yieldConn); ok {
		y.lc.yieldOpen = false
		return gnet.None
	}
	cn, _ := c.Context().(*conn)
	if cn == nil || cn.gone {
		return gnet.None
	}
	cn.gone = true
	lc := cn.lc
	lc.wheel.remove(cn)
	lc.leavePending(cn)
	lc.dropBacklog(cn)
	if cn.Open() {
		if lc.log != nil {
			lc.log.Debug("connection closed", "socket_id", cn.ID())
		}
		lc.local.Closed(&cn.Session)
	}
	return gnet.None
}

func (e *engine) OnTraffic(c gnet.Conn) gnet.Action {
	cn, ok := c.Context().(*conn)
	if !ok {
		if y, ok := c.Context().(*yieldConn); ok {
			_, _ = c.Discard(-1) // the bytes only carry the wake-up
			y.lc.drain()
		}
		return gnet.None
	}
	if cn.gone {
		return gnet.Close
	}
	if cn.state == stateAPI {
		return cn.lc.holdPipelined(cn)
	}
	return cn.lc.traffic(cn, cn)
}

// traffic handles everything buffered for cn and flushes. cur is as for
// flush: cn when called from its OnTraffic, which closes it by returning
// Close; nil elsewhere. Loop only.
func (lc *loopCtx) traffic(cn, cur *conn) gnet.Action {
	c := cn.c
	buf, _ := c.Peek(-1)
	off := 0
	if cn.state == stateHTTP {
		now := lc.srv.hub.Now()
		cn.mark = now
		off = lc.serveHTTP(cn, buf)
		lc.headClock(cn, now, off, len(buf))
	}
	if cn.state == stateWS && !cn.closing {
		off += lc.readFrames(cn, buf[off:])
	}
	if cn.closing {
		// Nothing more is read from a closing socket.
		off = len(buf)
	}
	if off > 0 {
		// Discard(0) would drop everything buffered (gnet treats n <= 0 as "all").
		_, _ = c.Discard(off)
	}
	lc.flush(cur)
	if cn.closing && !cn.gone {
		return gnet.Close
	}
	return gnet.None
}

func (e *engine) OnTick() (time.Duration, gnet.Action) {
	s := e.srv
	select {
	case <-s.ticked:
	default:
		if s.bootLn != nil {
			s.ownLn = map[uint64]bool{}
			for ino := range listenerInodes(s.eng) {
				if !s.bootLn[ino] {
					s.ownLn[ino] = true
				}
			}
		}
		close(s.ticked)
	}
	now := time.Now()
	s.hub.Tick(now)
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, lc := range loops {
		_ = lc.el.Execute(context.Background(), &lc.tickTask)
	}
	// Wake up just after the next second boundary so wheel slots line up
	// with the hub clock.
	return time.Second - time.Duration(now.Nanosecond()) + time.Millisecond, gnet.None
}

// quietLogger keeps gnet's own logging out of our output.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
