package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
)

// Config says how to reach Redis and how to name things there. It holds the
// Redis password, which never leaves this process in any message.
//
// Three modes: one Redis (Addr, the default), Redis Cluster (ClusterNodes
// set) and Sentinel (SentinelNodes set). Username, Password and TLS apply to
// every Redis server of the chosen mode (every shard of a cluster, the
// master found through the sentinels).
type Config struct {
	// Channel is the control channel and the prefix of per-channel Redis
	// channels (REVERB_SCALING_CHANNEL). Default "reverb". In cluster mode
	// it must not contain '{' or '}' (they would change the hash slots).
	Channel string
	// Addr is the Redis server, "host:port". Required unless ClusterNodes
	// or SentinelNodes is set.
	Addr string
	// ClusterNodes selects Redis Cluster mode (REDIS_CLUSTER_NODES): seed
	// nodes "host:port"; one reachable seed is enough, the others are
	// discovered. Per-channel traffic then uses sharded pub/sub (shards.go).
	ClusterNodes []string
	// SentinelNodes selects Sentinel mode (REDIS_SENTINEL_NODES): the
	// sentinels "host:port" that name the master of SentinelMaster.
	SentinelNodes []string
	// SentinelMaster is the master name the sentinels monitor
	// (REDIS_SENTINEL_MASTER). Required with SentinelNodes.
	SentinelMaster string
	// SentinelPassword authenticates to the sentinels themselves
	// (REDIS_SENTINEL_PASSWORD); Username/Password are the master's.
	SentinelPassword string
	// Username and Password authenticate (Redis 6 ACL or requirepass).
	Username, Password string
	// DB is selected on connect; pub/sub ignores it. Redis Cluster has only
	// database 0, so DB must be 0 there.
	DB int
	// TLS dials Redis over TLS (rediss://), verifying the certificate
	// against the host name of each address dialled.
	TLS bool
	// Timeout bounds each dial (REDIS_TIMEOUT, Laravel's connect timeout).
	// Default 5 s. It says nothing about how long a connected Redis may
	// stay silent: that is Liveness.
	Timeout time.Duration
	// Liveness is how long a connected Redis may leave a command or a PING
	// unanswered before its connection counts as lost and is replaced. The
	// pub/sub connections are PINGed after a second of quiet, so a frozen
	// or partitioned Redis is noticed within about a second plus Liveness.
	// Default 3 s.
	Liveness time.Duration
	// NodeID tells this node's envelopes apart; empty means a random id.
	// Two running nodes must never share one.
	NodeID string
	// QueueSize is how many envelopes may wait for Redis; beyond that
	// publishes are dropped and counted. Default 16384.
	QueueSize int
	// StateQueueSize is how many presence operations may wait for Redis;
	// beyond that they are dropped and counted, and every presence channel
	// is resynchronised once Redis answers again. Default 65536.
	StateQueueSize int
}

const (
	defaultChannel   = "reverb"
	defaultTimeout   = 5 * time.Second
	defaultLiveness  = 3 * time.Second
	defaultQueueSize = 16384
	// defaultStateQueueSize: a presence operation is small (a channel, a
	// user id and its JSON); 65,536 of them are six seconds of a stalled
	// Redis at 10,000 joins and leaves a second.
	defaultStateQueueSize = 65536
	// maxBatch caps one pipelined round trip of the publisher.
	maxBatch = 256
	// maxPooledBuf keeps one huge event from pinning memory in the pool.
	maxPooledBuf = 64 << 10
	// backoffMin/backoffMax pace retries while Redis is away; go-redis
	// itself redials a refused address at most once a second.
	backoffMin = 50 * time.Millisecond
	backoffMax = time.Second
)

func (c Config) withDefaults() Config {
	if c.Channel == "" {
		c.Channel = defaultChannel
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.Liveness <= 0 {
		c.Liveness = defaultLiveness
	}
	if c.QueueSize <= 0 {
		c.QueueSize = defaultQueueSize
	}
	if c.StateQueueSize <= 0 {
		c.StateQueueSize = defaultStateQueueSize
	}
	if c.NodeID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.NodeID = hex.EncodeToString(b[:])
	}
	return c
}

// sharded reports Redis Cluster mode.
func (c Config) sharded() bool { return len(c.ClusterNodes) > 0 }

// validate refuses settings that cannot work.
func (c Config) validate() error {
	switch {
	case c.sharded() && len(c.SentinelNodes) > 0:
		return errors.New("cluster: Redis Cluster and Sentinel nodes are both set; choose one")
	case c.sharded() && c.DB != 0:
		return errors.New("cluster: Redis Cluster has only database 0")
	case c.sharded() && strings.ContainsAny(c.Channel, "{}"):
		return fmt.Errorf("cluster: scaling channel %q must not contain '{' or '}' in Redis Cluster mode", c.Channel)
	case len(c.SentinelNodes) > 0 && c.SentinelMaster == "":
		return errors.New("cluster: Sentinel nodes are set but no master name")
	case !c.sharded() && len(c.SentinelNodes) == 0 && c.Addr == "":
		return errors.New("cluster: no Redis address")
	case strings.HasPrefix(c.Channel, "\n"):
		return errors.New("cluster: scaling channel must not start with a newline")
	}
	for _, a := range append(append([]string(nil), c.ClusterNodes...), c.SentinelNodes...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("cluster: Redis address %q: %w", a, err)
		}
	}
	return nil
}

// describe names the Redis of this config in errors and logs.
func (c Config) describe() string {
	switch {
	case c.sharded():
		return "Redis Cluster " + strings.Join(c.ClusterNodes, ",")
	case len(c.SentinelNodes) > 0:
		return "Sentinel master " + c.SentinelMaster
	}
	return c.Addr
}

// tlsFor returns the TLS settings for dialling addr, nil without TLS.
func (c Config) tlsFor(addr string) *tls.Config {
	if !c.TLS {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

// redisOptions builds go-redis options for one connection role to addr;
// the role and node id name the connection in Redis's CLIENT LIST.
func (c Config) redisOptions(role, addr string) *redis.Options {
	return &redis.Options{
		Addr:         addr,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.DB,
		DialTimeout:  c.Timeout,
		ReadTimeout:  c.Liveness,
		WriteTimeout: c.Liveness,
		ClientName:   clientName(c.NodeID, role),
		// One connection per role: the publisher is one goroutine and
		// pub/sub connections are not pooled.
		PoolSize: 1,
		// We decide about retries: a blind retry after a write may publish
		// twice (see publisher.go).
		MaxRetries:      -1,
		DisableIdentity: true,
		TLSConfig:       c.tlsFor(addr),
	}
}

// newClient opens (lazily: no I/O yet) the client of one connection role in
// the configured mode. Every mode's client runs the same commands; only
// the Redis names differ in cluster mode (names.go).
func (c Config) newClient(role string, poolSize int) redis.UniversalClient {
	o := c.redisOptions(role, c.Addr)
	o.PoolSize = poolSize
	switch {
	case c.sharded():
		co := &redis.ClusterOptions{
			Addrs:           c.ClusterNodes,
			ClientName:      o.ClientName,
			Username:        o.Username,
			Password:        o.Password,
			DialTimeout:     o.DialTimeout,
			ReadTimeout:     o.ReadTimeout,
			WriteTimeout:    o.WriteTimeout,
			PoolSize:        poolSize,
			MaxRetries:      -1,
			DisableIdentity: true,
			// go-redis follows MOVED/ASK and retries network errors
			// under one setting. A state script or a heartbeat may run
			// twice harmlessly; a publish may not, so the publisher gets
			// no automatic retry and resends only what a MOVED or ASK
			// answer proves was not run (publisher.go).
			MaxRedirects: 8,
		}
		if role == "pub" {
			co.MaxRedirects = -1
		}
		if c.TLS {
			co.NewClient = func(no *redis.Options) *redis.Client {
				no.TLSConfig = c.tlsFor(no.Addr)
				return redis.NewClient(no)
			}
		}
		return redis.NewClusterClient(co)
	case len(c.SentinelNodes) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       c.SentinelMaster,
			SentinelAddrs:    c.SentinelNodes,
			SentinelPassword: c.SentinelPassword,
			ClientName:       o.ClientName,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			DialTimeout:      o.DialTimeout,
			ReadTimeout:      o.ReadTimeout,
			WriteTimeout:     o.WriteTimeout,
			PoolSize:         poolSize,
			MaxRetries:       -1,
			DisableIdentity:  true,
			TLSConfig:        o.TLSConfig,
		})
	}
	return redis.NewClient(o)
}

// clientName builds a CLIENT SETNAME value, which Redis refuses when it
// holds spaces or other bytes outside '!'..'~'.
func clientName(node, role string) string {
	b := []byte("reverb-" + node + "-" + role)
	for i, c := range b {
		if c < '!' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b)
}

// Stats are cumulative counters since New, for tests and logs.
type Stats struct {
	// Published counts envelopes Redis accepted.
	Published uint64
	// Received counts envelopes of other nodes handed to the hub (or to
	// the restart callback).
	Received uint64
	// Own counts this node's envelopes that came back and were skipped.
	Own uint64
	// Ignored counts messages that are not ours (unparseable, another
	// version or type, a PHP Reverb envelope) or arrived before Attach.
	Ignored uint64
	// Dropped counts envelopes that never reached Redis: the queue (or the
	// state queue, for presence operations) was full
	// (Redis slow or away), Redis refused them, or the connection failed
	// with the batch possibly half sent (never retried, to avoid doubles).
	Dropped uint64
	// Heartbeats counts other nodes' stats envelopes (socket counts, one
	// per node per second). They count in no other field.
	Heartbeats uint64
	// State counts presence, snapshot and cached envelopes applied (see
	// state.go). They count in no other field.
	State uint64
}

// chanKey names one Pusher channel of one app.
type chanKey struct{ app, channel string }

// outMsg is one queued envelope. channel is "" for the control channel.
// cache > 0 marks an event of a cache channel: (*buf)[cache:len-1] is its
// payload, stored in Redis before the PUBLISH.
type outMsg struct {
	key   chanKey
	buf   *[]byte
	cache int
	to    string // a Redis channel of its own (a query answer), when set
}

// Broker implements hub.Broker over Redis pub/sub. Create it with New, pass
// it to the server as its broker, Attach the server's hub, then Start.
// Its methods are safe for concurrent use.
type Broker struct {
	cfg  Config
	node string
	log  *slog.Logger

	pub    redis.UniversalClient // publisher connection
	sub    *redis.Client         // pub/sub connection (one Redis, Sentinel)
	stats  redis.UniversalClient // stats heartbeat connection
	statec redis.UniversalClient // presence and cache state connection (state.go)
	query  redis.UniversalClient // channel queries, from HTTP API goroutines (query.go)

	// shards holds the sharded pub/sub connections in cluster mode
	// (shards.go); nil otherwise.
	shards *shardSet
	// names builds the Redis names of this mode (names.go).
	names names

	stateQ     chan stateMsg
	stateState state
	// resyncAll asks the manager to sync every presence channel again:
	// state operations were lost, or a node we had given up on is back.
	resyncAll atomic.Bool

	queue   chan outMsg
	bufPool sync.Pool

	hub       atomic.Pointer[hub.Hub]
	ps        atomic.Pointer[redis.PubSub]
	onRestart atomic.Pointer[func()]
	restarted atomic.Bool

	// mu guards want, the interest changes not yet applied by the manager.
	mu   sync.Mutex
	want map[chanKey]bool
	kick chan struct{}

	// byName maps each Redis channel this node subscribes to the Pusher
	// channels it carries, so a SUBSCRIBE confirmation read by the receiver
	// can tell the hub which channels became ready. Written by the
	// manager, read by the receiver, under namesMu.
	namesMu sync.Mutex
	byName  map[string][]chanKey

	lastSeen atomic.Int64 // unix nanos of the last thing read from pub/sub
	subUp    atomic.Bool
	pubState state
	subState state

	published, received, own, ignored, dropped, heartbeats, stateMsgs atomic.Uint64

	peers   peers
	qs      queries
	wh      atomic.Pointer[webhooks] // set by Webhooks (webhook.go)
	metrics metrics
	extra   atomic.Pointer[func([]byte) []byte] // SetStatsExtra (metrics.go)

	startOnce sync.Once
	started   atomic.Bool
	closeOnce sync.Once
	quit      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	pubDone   chan struct{}
	rcvDone   chan struct{}
	mgrDone   chan struct{}
	statsDone chan struct{}
	stateDone chan struct{}
}

var (
	_ hub.Broker    = (*Broker)(nil)
	_ hub.Directory = (*Broker)(nil)
)

var setLoggerOnce sync.Once

// New validates cfg and prepares a broker. It opens no connection: Start
// does, in the background, so a node starts even while Redis is away.
// logger receives connection state changes; nil discards them.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// go-redis logs each discarded connection through a process-wide
	// logger; route it to slog.Default at Debug so an outage is reported
	// once, by us.
	setLoggerOnce.Do(func() { redis.SetLogger(redisLogger{}) })
	b := &Broker{
		cfg:    cfg,
		node:   cfg.NodeID,
		log:    logger.With("component", "cluster", "node", cfg.NodeID),
		pub:    cfg.newClient("pub", 1),
		stats:  cfg.newClient("stats", 1),
		statec: cfg.newClient("state", 1),
		// several API requests may ask at once
		query:   cfg.newClient("query", 4),
		names:   names{prefix: cfg.Channel, node: cfg.NodeID, sharded: cfg.sharded()},
		stateQ:  make(chan stateMsg, cfg.StateQueueSize),
		queue:   make(chan outMsg, cfg.QueueSize),
		want:    make(map[chanKey]bool),
		byName:  make(map[string][]chanKey),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		pubDone: make(chan struct{}),
		rcvDone: make(chan struct{}),
		mgrDone: make(chan struct{}),

		statsDone: make(chan struct{}),
		stateDone: make(chan struct{}),
		qs:        queries{byID: make(map[uint64]*query)},
		peers:     peers{nodes: make(map[string]*peer), totals: make(map[string]int64), expired: make(map[string]time.Time)},
	}
	if cfg.sharded() {
		b.shards = newShardSet(b)
	} else {
		b.sub = cfg.newClient("sub", 1).(*redis.Client)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// NodeID returns the id this node puts in its envelopes. Any goroutine.
func (b *Broker) NodeID() string { return b.node }

// Attach sets the hub that receives other nodes' messages. Call it once,
// after the server started; messages that arrive earlier are ignored.
// Any goroutine.
func (b *Broker) Attach(h *hub.Hub) { b.hub.Store(h) }

// OnRestart sets the function called when a restart command arrives
// (`reverb restart` on any machine). It runs on its own goroutine, at most
// once per Broker. Any goroutine, before or after Start.
func (b *Broker) OnRestart(f func()) { b.onRestart.Store(&f) }

// Start connects to Redis in the background and starts the publisher,
// receiver and manager goroutines. It returns at once; a Redis that is away
// is retried until Close. Cancelling ctx stops the goroutines like Close
// does. Call it once; any goroutine.
func (b *Broker) Start(ctx context.Context) {
	b.startOnce.Do(func() {
		b.started.Store(true)
		b.lastSeen.Store(time.Now().UnixNano())
		go b.runPublisher()
		if b.shards == nil {
			b.ps.Store(b.sub.Subscribe(b.ctx)) // no channel given: no I/O yet
			go b.runReceiver()
		} else {
			close(b.rcvDone) // each shard has its own receiver
		}
		go b.runManager()
		go b.runStats()
		go b.runState()
		if ctx != nil && ctx.Done() != nil {
			go func() {
				select {
				case <-ctx.Done():
					b.Close()
				case <-b.quit:
				}
			}()
		}
	})
}

// Close sends what is queued (waiting at most Config.Timeout, capped at 2 s,
// for Redis), stops the goroutines and closes the connections. It returns
// when they are gone. Publishes after Close are dropped. Any goroutine;
// later calls do nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.startOnce.Do(func() {}) // a later Start must not launch goroutines
		close(b.quit)
		if b.started.Load() {
			select {
			case <-b.pubDone:
			case <-time.After(min(b.cfg.Timeout, 2*time.Second)):
			}
			b.cancel()
			// The manager may replace the pub/sub connection until it
			// exits; close the final one after that to release the receiver.
			<-b.mgrDone
			if b.shards != nil {
				b.shards.close()
			} else {
				_ = b.ps.Load().Close()
			}
			<-b.rcvDone
			<-b.pubDone
			<-b.statsDone
			<-b.stateDone
		}
		if w := b.wh.Load(); w != nil {
			<-w.done // its last transitions reach Redis (at most about 1 s)
		}
		b.cancel()
		_ = b.pub.Close()
		if b.sub != nil {
			_ = b.sub.Close()
		}
		_ = b.stats.Close()
		_ = b.statec.Close()
		_ = b.query.Close()
	})
}

// Stats returns the counters. Any goroutine.
func (b *Broker) Stats() Stats {
	return Stats{
		Published: b.published.Load(),
		Received:  b.received.Load(),
		Own:       b.own.Load(),
		Ignored:   b.ignored.Load(),
		Dropped:   b.dropped.Load(),

		Heartbeats: b.heartbeats.Load(),
		State:      b.stateMsgs.Load(),
	}
}

// Publish queues a message envelope for the other nodes: payload is the
// Pusher JSON object delivered to channel's subscribers in app, except the
// socket except. payload is copied before Publish returns. It never blocks;
// with the queue full the message is dropped and counted. Any goroutine.
func (b *Broker) Publish(appID, channel string, payload []byte, except string) {
	bp := b.getBuf()
	*bp = appendMessage((*bp)[:0], b.node, appID, channel, except, payload)
	m := outMsg{key: chanKey{appID, channel}, buf: bp}
	if pusher.ClassifyChannel(channel).IsCache() {
		m.cache = len(*bp) - 1 - len(payload)
	}
	b.enqueue(m)
}

// Terminate queues a terminate command on the control channel: every other
// node closes its sockets of userID in app. Never blocks; any goroutine.
func (b *Broker) Terminate(appID, userID string) {
	bp := b.getBuf()
	*bp = appendTerminate((*bp)[:0], b.node, appID, userID)
	b.enqueue(outMsg{buf: bp})
}

// Interest records that this node gained (on) or lost its local subscribers
// of channel; the manager goroutine SUBSCRIBEs or UNSUBSCRIBEs its Redis
// channel soon after. Calls for one channel must come in order (the hub
// makes them under the channel's shard lock). Never blocks; any goroutine.
func (b *Broker) Interest(appID, channel string, on bool) {
	b.mu.Lock()
	b.want[chanKey{appID, channel}] = on
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *Broker) enqueue(m outMsg) {
	select {
	case <-b.quit:
		b.putBuf(m.buf)
		b.dropped.Add(1)
		return
	default:
	}
	select {
	case b.queue <- m:
	default:
		b.putBuf(m.buf)
		b.dropped.Add(1)
	}
}

func (b *Broker) getBuf() *[]byte {
	if bp, ok := b.bufPool.Get().(*[]byte); ok {
		return bp
	}
	buf := make([]byte, 0, 512)
	return &buf
}

func (b *Broker) putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		b.bufPool.Put(bp)
	}
}

// sleep waits d or until Close; it reports false on Close.
func (b *Broker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.quit:
		return false
	}
}

// state logs the up/down transitions of one connection role once each.
type state struct {
	down     atomic.Bool
	restores atomic.Uint64 // times the connection came back (metrics.go)
}

func (s *state) lost(log *slog.Logger, role string, err error) {
	if s.down.CompareAndSwap(false, true) {
		log.Warn("cluster: Redis "+role+" connection lost; cross-node delivery paused, local delivery continues", "err", err)
	}
}

func (s *state) restored(log *slog.Logger, role string) {
	if s.down.CompareAndSwap(true, false) {
		s.restores.Add(1)
		log.Warn("cluster: Redis " + role + " connection restored")
	}
}

// redisLogger forwards go-redis's internal log lines to slog.Default at
// Debug.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := slog.Default(); l.Enabled(ctx, slog.LevelDebug) {
		l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}

// ready tells the hub that the Pusher channels carried by Redis channel name
// now reach this node, so subscriptions waiting for them are acknowledged.
func (b *Broker) ready(name string) {
	b.namesMu.Lock()
	keys := append([]chanKey(nil), b.byName[name]...)
	b.namesMu.Unlock()
	b.readyKeys(keys...)
}

func (b *Broker) readyKeys(keys ...chanKey) {
	h := b.hub.Load()
	if h == nil {
		return
	}
	for _, k := range keys {
		b.channelReady(h, k)
	}
}

// name records (on) or forgets the Pusher channel k under Redis channel name.
func (b *Broker) nameKey(name string, k chanKey, on bool) {
	b.namesMu.Lock()
	defer b.namesMu.Unlock()
	keys := b.byName[name]
	if on {
		b.byName[name] = append(keys, k)
		return
	}
	for i := range keys {
		if keys[i] == k {
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			break
		}
	}
	if len(keys) == 0 {
		delete(b.byName, name)
	} else {
		b.byName[name] = keys
	}
}
