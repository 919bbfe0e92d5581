package monitor

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"testing"
	"time"

	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startRedis runs a real redis-server on a free loopback port until the
// test ends; the test fails, never skips, without one.
func startRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not in PATH (apt-get install -y redis-server, or scripts/test-deps.sh as root)")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNode runs a clustered server over Redis with node id node.
func startNode(t *testing.T, redis, node string) (*loop.Server, *cluster.Broker) {
	t.Helper()
	apps, err := pusher.NewAppSet([]pusher.App{pusher.App{ID: appID, Key: appKey, Secret: secret}.WithDefaults()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.New(cluster.Config{Addr: redis, NodeID: node}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := loop.Start(loop.Config{Addr: freeAddr(t), Apps: apps, Loops: 2, Broker: b, AsyncAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Attach(srv.Hub())
	b.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		b.Close()
	})
	return srv, b
}

// TestClusterMetrics: on two nodes over a real redis-server, node A's
// metrics show the Redis link, the message that came from node B with its
// cross-node latency, node B's sockets as its heartbeat reports them, and
// A's local deliveries of B's event.
func TestClusterMetrics(t *testing.T) {
	redis := startRedis(t)
	srvA, bA := startNode(t, redis, "node-a")
	srvB, bB := startNode(t, redis, "node-b")
	mon, err := Start(Config{Addr: "127.0.0.1:0", Token: token}, srvA, bA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mon.Close() })
	// B runs a monitor too, so its heartbeat carries its own figures.
	monB, err := Start(Config{Addr: "127.0.0.1:0"}, srvB, bB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = monB.Close() })
	ra, rb := &rig{srvA, mon}, &rig{srv: srvB}

	var onA []*client
	for i := 0; i < 3; i++ {
		c := ra.dial(t, appKey)
		c.subscribe("news")
		onA = append(onA, c)
	}
	for i := 0; i < 2; i++ {
		rb.dial(t, appKey).subscribe("news")
	}
	// Published on B, delivered on A through Redis.
	api := pusherapi.Client{AppID: appID, Key: appKey, Secret: secret, Host: srvB.Addr()}
	if err := api.Trigger("news", "from-b", "x"); err != nil {
		t.Fatal(err)
	}
	for _, c := range onA {
		c.expect("from-b")
	}
	a := `{app_id="1001"}`
	got := ra.waitMetrics(t, map[string]float64{
		"reverb_cluster_connected":                                     1,
		"reverb_cluster_latency_seconds_count":                         1,
		"reverb_cluster_received_total":                                1,
		"reverb_cluster_dropped_total":                                 0,
		"reverb_cluster_publish_queue_length":                          0,
		"reverb_cluster_publish_queue_capacity":                        16384,
		"reverb_cluster_state_queue_length":                            0,
		"reverb_cluster_state_queue_capacity":                          65536,
		`reverb_cluster_peer_connections{app_id="1001",node="node-b"}`: 2,
		"reverb_connections" + a:                                       3,
		"reverb_delivery_latency_seconds_count" + a:                    3,
		`reverb_build_info{node="node-a",version=""}`:                  1,
	})
	if s := got["reverb_cluster_latency_seconds_sum"]; s < 0 || s > 5 {
		t.Fatalf("cross-node latency %v s on loopback", s)
	}

	// A's dashboard data: both nodes, B's figures from its heartbeat (its
	// sampler and heartbeat each run once a second).
	var st Stats
	for deadline := time.Now().Add(5 * time.Second); ; {
		code, body := get(t, "http://"+mon.Addr()+"/api/stats", "Bearer "+token)
		if code != 200 {
			t.Fatalf("/api/stats: %d", code)
		}
		st = Stats{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Nodes) == 2 && st.Nodes[1].Apps[appID].Deliveries == 2 && st.Nodes[0].Apps[appID].Deliveries == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-b's figures never arrived: %+v", st.Nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !st.Clustered || st.Cluster == nil || !st.Cluster.Connected || len(st.Nodes) != 2 ||
		st.Nodes[0].ID != "node-a" || !st.Nodes[0].Self || st.Nodes[0].Connections[appID] != 3 ||
		st.Nodes[0].Apps[appID].Channels != 1 || st.Nodes[0].Apps[appID].Deliveries != 3 ||
		st.Nodes[1].ID != "node-b" || st.Nodes[1].Connections[appID] != 2 || st.Nodes[1].Apps[appID].Channels != 1 {
		t.Fatalf("/api/stats nodes %+v cluster %+v", st.Nodes, st.Cluster)
	}
}
