package cluster_test

// Helpers for the black-box tests: a real redis-server per test on a free
// loopback port, real nodes (loop server + cluster broker) on loopback, raw
// WebSocket clients on gobwas/ws and the pusher-http-go SDK for triggers and
// auth signatures, so nothing of ours checks itself.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	pusherapi "github.com/pusher/pusher-http-go/v5"
	"github.com/redis/go-redis/v9"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

const (
	appID     = "1001"
	appKey    = "key-a"
	appSecret = "secret-a"

	// prefix is the scaling channel of the test clusters.
	prefix = "reverb-test"
	// ioTimeout bounds every wait for something that must happen.
	ioTimeout = 5 * time.Second
	// quietFor is how long we listen to prove that nothing arrives.
	quietFor = 300 * time.Millisecond
)

func testApp() pusher.App {
	return pusher.App{ID: appID, Key: appKey, Secret: appSecret, Signin: true, ClientEvents: pusher.ClientEventsMembers}
}

// ---- redis-server ----

// redisMode is the Redis the tests run against: "" one redis-server,
// "cluster" a Redis Cluster of three masters (TestMain runs the suite in
// both modes unless REVERB_TEST_REDIS names one).
var redisMode = os.Getenv("REVERB_TEST_REDIS")

func clusterMode() bool { return redisMode == "cluster" }

// redisServer is the Redis a test started and owns: one redis-server
// process, or in cluster mode the processes of a Redis Cluster (shards;
// the fields of the parent then describe no process of its own).
type redisServer struct {
	t      testing.TB
	path   string
	addr   string
	args   []string // extra redis-server arguments
	mu     sync.Mutex
	cmd    *exec.Cmd
	exit   chan struct{}
	shards []*redisServer
	// sentinelConf makes this a redis-sentinel process with that config.
	sentinelConf string
}

// startRedis starts the Redis of the current mode on free loopback ports;
// the test fails, never skips, when the binary is missing.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if clusterMode() {
		return startRedisCluster(t, 3, 0)
	}
	return startRedisProc(t)
}

func startRedisProc(t testing.TB, args ...string) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not in PATH: the cluster tests need a real Redis " +
			"(apt-get install -y redis-server, or run scripts/test-deps.sh as root)")
	}
	// Its own directory: a replica writes the master's snapshot there,
	// which would otherwise land in the package's source folder.
	args = append([]string{"--dir", t.TempDir()}, args...)
	r := &redisServer{t: t, path: path, addr: freeAddr(t), args: args}
	r.start()
	t.Cleanup(r.kill)
	return r
}

// startRedisCluster starts a Redis Cluster of masters masters, each with
// replicas replicas, the slots split evenly, and waits until every node
// reports cluster_state:ok. Node timeout is 1 s, so a failover takes a
// few seconds.
func startRedisCluster(t testing.TB, masters, replicas int) *redisServer {
	t.Helper()
	dir := t.TempDir()
	r := &redisServer{t: t}
	var buses []string
	for i := range masters * (1 + replicas) {
		bus := freeAddr(t)
		_, busPort, _ := net.SplitHostPort(bus)
		buses = append(buses, busPort)
		sh := startRedisProc(t, "--cluster-enabled", "yes", "--cluster-port", busPort,
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--cluster-node-timeout", "1000", "--dir", dir)
		r.shards = append(r.shards, sh)
	}
	r.addr = r.shards[0].addr
	ctx := context.Background()
	ids := make([]string, len(r.shards))
	for i, sh := range r.shards {
		c := redis.NewClient(&redis.Options{Addr: sh.addr, DisableIdentity: true})
		ids[i] = c.Do(ctx, "CLUSTER", "MYID").Val().(string)
		if i < masters {
			lo, hi := i*16384/masters, (i+1)*16384/masters-1
			if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
				t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
			}
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(sh.addr)
			c0 := redis.NewClient(&redis.Options{Addr: r.shards[0].addr, DisableIdentity: true})
			if err := c0.Do(ctx, "CLUSTER", "MEET", host, port, buses[i]).Err(); err != nil {
				t.Fatalf("CLUSTER MEET: %v", err)
			}
			c0.Close()
		}
		c.Close()
	}
	for i := masters; i < len(r.shards); i++ {
		master := ids[(i-masters)%masters]
		c := redis.NewClient(&redis.Options{Addr: r.shards[i].addr, DisableIdentity: true})
		deadline := time.Now().Add(ioTimeout)
		for {
			err := c.Do(ctx, "CLUSTER", "REPLICATE", master).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CLUSTER REPLICATE: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A replica that never synced would not take over (its data
		// counts as too old): wait for the link.
		for !strings.Contains(c.Info(ctx, "replication").Val(), "master_link_status:up") {
			if time.Now().After(deadline.Add(ioTimeout)) {
				t.Fatalf("replica %s did not sync", r.shards[i].addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
	r.waitClusterOK()
	return r
}

// waitClusterOK waits until every node says cluster_state:ok and knows
// every other node.
func (r *redisServer) waitClusterOK() {
	r.t.Helper()
	deadline := time.Now().Add(3 * ioTimeout)
	for _, sh := range r.shards {
		c := redis.NewClient(&redis.Options{Addr: sh.addr, DisableIdentity: true})
		for {
			info, _ := c.ClusterInfo(context.Background()).Result()
			known := strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", len(r.shards)))
			if strings.Contains(info, "cluster_state:ok") && known {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				r.t.Fatalf("Redis Cluster node %s not ready: %s", sh.addr, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
}

func (r *redisServer) start() {
	r.t.Helper()
	if r.shards != nil {
		var wg sync.WaitGroup
		for _, sh := range r.shards {
			wg.Go(sh.start)
		}
		wg.Wait()
		r.waitClusterOK()
		return
	}
	_, port, _ := net.SplitHostPort(r.addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning"}, r.args...)
	cmd := exec.Command(r.path, args...)
	if r.sentinelConf != "" {
		cmd = exec.Command(r.path, r.sentinelConf)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	r.mu.Lock()
	r.cmd, r.exit = cmd, exit
	r.mu.Unlock()
	deadline := time.Now().Add(ioTimeout)
	for {
		if redisPing(r.addr) == nil {
			return
		}
		select {
		case <-exit:
			r.t.Fatalf("redis-server on %s exited at start", r.addr)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not answer PING", r.addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the redis-server process(es) this test started.
func (r *redisServer) signal(sig syscall.Signal) {
	for _, sh := range r.shards {
		sh.signal(sig)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

// stop ends redis-server with SIGTERM, as an operator would, and waits.
// In cluster mode every node stops; start brings them back without data
// (no persistence) but with their cluster configuration.
func (r *redisServer) stop() {
	r.t.Helper()
	if r.shards != nil {
		var wg sync.WaitGroup
		for _, sh := range r.shards {
			wg.Go(sh.stop)
		}
		wg.Wait()
		return
	}
	r.signal(syscall.SIGTERM)
	r.mu.Lock()
	exit := r.exit
	r.mu.Unlock()
	select {
	case <-exit:
	case <-time.After(ioTimeout):
		r.t.Fatalf("redis-server did not exit after SIGTERM")
	}
}

// sigkill ends the process with SIGKILL and waits.
func (r *redisServer) sigkill() {
	r.signal(syscall.SIGKILL)
	r.mu.Lock()
	exit := r.exit
	r.mu.Unlock()
	<-exit
}

// kill removes the process by its PID at the end of the test.
func (r *redisServer) kill() {
	r.mu.Lock()
	cmd, exit := r.cmd, r.exit
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-exit
}

// config is the broker configuration reaching this Redis.
func (r *redisServer) config() cluster.Config {
	cfg := cluster.Config{Channel: prefix, Timeout: time.Second}
	if r.shards != nil {
		cfg.ClusterNodes = []string{r.shards[0].addr} // one seed is enough
	} else {
		cfg.Addr = r.addr
	}
	return cfg
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// client is a plain Redis client for the test's own checks and injections
// (a cluster client in cluster mode).
func (r *redisServer) client(t testing.TB) redis.UniversalClient {
	var c redis.UniversalClient
	if r.shards != nil {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{r.shards[0].addr}, DisableIdentity: true})
	} else {
		c = redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true})
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eachNode runs f on a client of every Redis process (the one, or every
// cluster node).
func (r *redisServer) eachNode(f func(c *redis.Client)) {
	procs := r.shards
	if procs == nil {
		procs = []*redisServer{r}
	}
	for _, p := range procs {
		c := redis.NewClient(&redis.Options{Addr: p.addr, DisableIdentity: true})
		f(c)
		c.Close()
	}
}

// publish sends msg on a Redis channel as the brokers of this mode do
// (SPUBLISH in cluster mode).
func (r *redisServer) publish(t testing.TB, name, msg string) {
	t.Helper()
	c := r.client(t)
	var err error
	if r.shards != nil {
		err = c.SPublish(context.Background(), name, msg).Err()
	} else {
		err = c.Publish(context.Background(), name, msg).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// subscribe listens on one Redis channel as a node of this mode would.
func (r *redisServer) subscribe(t testing.TB, name string) *redis.PubSub {
	t.Helper()
	c := r.client(t)
	if r.shards != nil {
		return c.(*redis.ClusterClient).SSubscribe(context.Background(), name)
	}
	return c.Subscribe(context.Background(), name)
}

// ---- nodes ----

// node is one running server with its broker.
type node struct {
	t    testing.TB
	name string
	srv  *loop.Server
	b    *cluster.Broker
	addr string
	api  *pusherapi.Client
	logs *logRecorder
	once sync.Once
}

// shutdown stops the server (once); the broker closes in its own cleanup.
func (n *node) shutdown() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
	})
}

type nodeOpt func(*cluster.Config)

// startNode starts a server on a free port bridged by a broker to r.
func startNode(t testing.TB, r *redisServer, name string, opts ...nodeOpt) *node {
	t.Helper()
	return startNodeApp(t, r, name, testApp(), opts...)
}

// startNodeApp is startNode serving app instead of testApp(); app must keep
// testApp's id, key and secret.
func startNodeApp(t testing.TB, r *redisServer, name string, app pusher.App, opts ...nodeOpt) *node {
	t.Helper()
	cfg := r.config()
	cfg.NodeID = name
	for _, o := range opts {
		o(&cfg)
	}
	logs := &logRecorder{t: t}
	b, err := cluster.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	t.Cleanup(b.Close)
	set, err := pusher.NewAppSet([]pusher.App{app})
	if err != nil {
		t.Fatal(err)
	}
	var srv *loop.Server
	for attempt := 1; ; attempt++ {
		srv, err = loop.Start(loop.Config{Addr: freeAddr(t), Apps: set, Broker: b, Loops: 2, AsyncAPI: true})
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("loop.Start: %v", err)
		}
	}
	n := &node{t: t, name: name, srv: srv, b: b, addr: srv.Addr(), logs: logs}
	t.Cleanup(n.shutdown)
	b.Attach(srv.Hub())
	b.Start(context.Background())
	n.api = &pusherapi.Client{AppID: appID, Key: appKey, Secret: appSecret, Host: n.addr}
	return n
}

// startCluster starts redis-server and count nodes, and waits until every
// node listens on the control channel.
func startCluster(t testing.TB, count int, opts ...nodeOpt) (*redisServer, []*node) {
	t.Helper()
	return startNodes(t, count, func(r *redisServer, name string) *node { return startNode(t, r, name, opts...) })
}

// startNodes starts a redis-server and count nodes named A, B, … on it with
// start, stops them side by side when the test ends (each server takes a
// while to stop), and waits until every node listens.
func startNodes(t testing.TB, count int, start func(r *redisServer, name string) *node) (*redisServer, []*node) {
	t.Helper()
	r := startRedis(t)
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = start(r, string(rune('A'+i)))
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.shutdown)
		}
		wg.Wait()
	})
	waitNumSub(t, r, controlChannel(), count)
	return r, nodes
}

// Redis names of the current mode (cluster/names.go).
func tag(s string) string {
	if clusterMode() {
		return "{" + s + "}"
	}
	return s
}

func redisChannel(channel string) string { return prefix + "#" + tag(appID+"#"+channel) }
func controlChannel() string             { return tag(prefix) }
func replyChannel(node string) string    { return prefix + "#node#" + tag(node) }
func presenceKey(channel string) string  { return prefix + "#presence#" + tag(appID+"#"+channel) }
func aliveKey(node string) string        { return prefix + "#alive#" + tag(node) }

// waitNumSub waits until want pub/sub connections listen on a Redis channel
// (PUBSUB SHARDNUMSUB on every master in cluster mode).
func waitNumSub(t testing.TB, r *redisServer, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	var got int64
	for time.Now().Before(deadline) {
		got = r.numSub(name)
		if got == int64(want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("PUBSUB NUMSUB %s = %d, want %d", name, got, want)
}

func (r *redisServer) numSub(name string) int64 {
	var n int64
	ctx := context.Background()
	r.eachNode(func(c *redis.Client) {
		if r.shards != nil {
			n += c.PubSubShardNumSub(ctx, name).Val()[name]
		} else {
			n += c.PubSubNumSub(ctx, name).Val()[name]
		}
	})
	return n
}

// channels lists the Redis channels with subscribers matching pattern.
func (r *redisServer) channels(pattern string) []string {
	var out []string
	ctx := context.Background()
	r.eachNode(func(c *redis.Client) {
		if r.shards != nil {
			out = append(out, c.PubSubShardChannels(ctx, pattern).Val()...)
		} else {
			out = append(out, c.PubSubChannels(ctx, pattern).Val()...)
		}
	})
	return out
}

// logRecorder keeps a node's log lines and shows them in the test log.
type logRecorder struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Log(line)
	return len(p), nil
}

// count returns how many lines contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probe port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// trigger publishes through n's HTTP API with the SDK.
func (n *node) trigger(channel, event, data string) {
	n.t.Helper()
	if err := n.api.Trigger(channel, event, data); err != nil {
		n.t.Fatalf("trigger on %s: %v", n.name, err)
	}
}

// terminate calls POST /apps/{id}/users/{user}/terminate_connections, which
// the SDK does not offer, signed per the Pusher HTTP API rules.
func (n *node) terminate(user string) {
	n.t.Helper()
	path := "/apps/" + appID + "/users/" + url.PathEscape(user) + "/terminate_connections"
	body := []byte("{}")
	sum := md5.Sum(body)
	q := map[string]string{
		"auth_key":       appKey,
		"auth_timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"auth_version":   "1.0",
		"body_md5":       hex.EncodeToString(sum[:]),
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + q[k]
	}
	query := strings.Join(parts, "&")
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte("POST\n" + path + "\n" + query))
	query += "&auth_signature=" + hex.EncodeToString(mac.Sum(nil))
	resp, err := http.Post("http://"+n.addr+path+"?"+query, "application/json", bytes.NewReader(body))
	if err != nil {
		n.t.Fatalf("terminate_connections: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		n.t.Fatalf("terminate_connections: %d %s", resp.StatusCode, b)
	}
}

// ---- WebSocket client ----

// message is one Pusher message a client received.
type message struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  json.RawMessage `json:"user_id"`
	raw     string
}

// dataString returns Data decoded when it is a JSON string, else raw.
func (m message) dataString() string {
	var s string
	if json.Unmarshal(m.Data, &s) == nil {
		return s
	}
	return string(m.Data)
}

// wsClient is a raw Pusher client; one goroutine reads its frames.
type wsClient struct {
	t        testing.TB
	name     string
	conn     net.Conn
	socketID string
	msgs     chan message
	done     chan struct{}
	stop     chan struct{}
	closeErr error // set before done is closed
	wmu      sync.Mutex
}

// connect opens a socket to n and waits for connection_established.
func (n *node) connect(name string) *wsClient {
	n.t.Helper()
	c := n.dial(name)
	m := c.expect("pusher:connection_established", "")
	var est struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(m.dataString()), &est); err != nil || est.SocketID == "" {
		n.t.Fatalf("%s: bad connection_established %s", c.name, m.raw)
	}
	c.socketID = est.SocketID
	return c
}

// dial opens a socket to n and returns before anything is read.
func (n *node) dial(name string) *wsClient {
	n.t.Helper()
	t := n.t
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+n.addr+"/app/"+appKey+"?protocol=7&client=js&version=8.4.0&flash=false")
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, n.name, err)
	}
	c := &wsClient{t: t, name: name + "@" + n.name, conn: conn, msgs: make(chan message, 1024), done: make(chan struct{}), stop: make(chan struct{})}
	var rd io.Reader = conn
	if br != nil {
		rd = br
	}
	go c.read(struct {
		io.Reader
		io.Writer
	}{rd, conn})
	t.Cleanup(func() { close(c.stop); conn.Close(); <-c.done })
	return c
}

func (c *wsClient) read(rw io.ReadWriter) {
	defer close(c.done)
	for {
		b, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			c.closeErr = err
			return
		}
		if op != ws.OpText {
			continue
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			c.closeErr = fmt.Errorf("bad JSON from server: %s", b)
			return
		}
		m.raw = string(b)
		if m.Event == "pusher:ping" {
			c.send(`{"event":"pusher:pong","data":{}}`)
			continue
		}
		select {
		case c.msgs <- m:
		case <-c.stop:
			return
		}
	}
}

func (c *wsClient) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := wsutil.WriteClientText(c.conn, []byte(s)); err != nil {
		c.t.Errorf("%s: write: %v", c.name, err)
	}
}

// next returns the next message, failing the test after d.
func (c *wsClient) next(d time.Duration) (message, bool) {
	select {
	case m := <-c.msgs:
		return m, true
	case <-time.After(d):
		return message{}, false
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m, true
		default:
		}
		return message{}, false
	}
}

// expect waits for the next message and checks its event and channel.
func (c *wsClient) expect(event, channel string) message {
	c.t.Helper()
	m, ok := c.next(ioTimeout)
	if !ok {
		c.t.Fatalf("%s: waited for %s on %q: nothing (closed: %v)", c.name, event, channel, c.closed())
	}
	if m.Event != event || m.Channel != channel {
		c.t.Fatalf("%s: got %s, want %s on %q", c.name, m.raw, event, channel)
	}
	return m
}

// expectData waits for event on channel carrying data.
func (c *wsClient) expectData(event, channel, data string) {
	c.t.Helper()
	m := c.expect(event, channel)
	if got := m.dataString(); got != data {
		c.t.Fatalf("%s: %s data = %q, want %q", c.name, event, got, data)
	}
}

// expectQuiet proves that nothing arrives for quietFor.
func (c *wsClient) expectQuiet() {
	c.t.Helper()
	if m, ok := c.next(quietFor); ok {
		c.t.Fatalf("%s: unexpected %s", c.name, m.raw)
	}
}

// expectClose waits for a close frame with code.
func (c *wsClient) expectClose(code ws.StatusCode) {
	c.t.Helper()
	for {
		select {
		case m := <-c.msgs:
			c.t.Fatalf("%s: got %s while waiting for close %d", c.name, m.raw, code)
		case <-c.done:
			var ce wsutil.ClosedError
			if !errors.As(c.closeErr, &ce) || ce.Code != code {
				c.t.Fatalf("%s: closed with %v, want close code %d", c.name, c.closeErr, code)
			}
			return
		case <-time.After(ioTimeout):
			c.t.Fatalf("%s: not closed", c.name)
		}
	}
}

func (c *wsClient) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *wsClient) subscribe(channel string) {
	c.t.Helper()
	c.send(`{"event":"pusher:subscribe","data":{"channel":` + jsonString(channel) + `}}`)
	c.expect("pusher_internal:subscription_succeeded", channel)
}

// subscribePrivate subscribes with an auth signature made by the SDK.
func (c *wsClient) subscribePrivate(api *pusherapi.Client, channel string) {
	c.t.Helper()
	resp, err := api.AuthorizePrivateChannel([]byte("socket_id=" + url.QueryEscape(c.socketID) + "&channel_name=" + url.QueryEscape(channel)))
	if err != nil {
		c.t.Fatalf("AuthorizePrivateChannel: %v", err)
	}
	var a struct {
		Auth string `json:"auth"`
	}
	_ = json.Unmarshal(resp, &a)
	c.send(`{"event":"pusher:subscribe","data":{"channel":` + jsonString(channel) + `,"auth":` + jsonString(a.Auth) + `}}`)
	c.expect("pusher_internal:subscription_succeeded", channel)
}

// signin signs the socket in as user (SDK signature) and joins its
// #server-to-user channel, as pusher-js does.
func (c *wsClient) signin(api *pusherapi.Client, user string) {
	c.t.Helper()
	resp, err := api.AuthenticateUser([]byte("socket_id="+url.QueryEscape(c.socketID)), map[string]any{"id": user})
	if err != nil {
		c.t.Fatalf("AuthenticateUser: %v", err)
	}
	c.send(`{"event":"pusher:signin","data":` + string(resp) + `}`)
	c.expect("pusher:signin_success", "")
	c.subscribe("#server-to-user-" + user)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
