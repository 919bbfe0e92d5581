package main

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/cmd/reverb/config"
)

var scalingAppEnv = []string{"REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s"}

func loadScaling(t *testing.T, environ ...string) *config.Config {
	t.Helper()
	t.Chdir(t.TempDir()) // no stray ./.env
	c, err := config.LoadConfig(config.Flags{}, append(environ, scalingAppEnv...))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return c
}

func TestClusterConfigFromEnvironment(t *testing.T) {
	c := loadScaling(t,
		"REVERB_SCALING_ENABLED=true",
		"REVERB_SCALING_CHANNEL=fleet",
		"REDIS_URL=rediss://bob:p%23ss@[::1]:7000/3",
		"REDIS_TIMEOUT=2.5",
	)
	got := clusterConfig(c)
	want := cluster.Config{Channel: "fleet", Addr: "[::1]:7000", Username: "bob", Password: "p#ss", DB: 3, TLS: true,
		Timeout: 2500 * time.Millisecond, Liveness: 3 * time.Second, QueueSize: 16384, StateQueueSize: 65536}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
	c = loadScaling(t, "REVERB_SCALING_ENABLED=1", "REVERB_SCALING_QUEUE_SIZE=100", "REVERB_SCALING_STATE_QUEUE_SIZE=7")
	if got := clusterConfig(c); got.QueueSize != 100 || got.StateQueueSize != 7 {
		t.Fatalf("queue sizes: %+v", got)
	}
	c = loadScaling(t, "REVERB_SCALING_ENABLED=1", "REDIS_CLUSTER_NODES=10.0.0.1:7000, 10.0.0.2:7000", "REDIS_LIVENESS=1.5")
	if got := clusterConfig(c); !reflect.DeepEqual(got.ClusterNodes, []string{"10.0.0.1:7000", "10.0.0.2:7000"}) || got.Liveness != 1500*time.Millisecond {
		t.Fatalf("cluster mode: %+v", got)
	}
	c = loadScaling(t, "REVERB_SCALING_ENABLED=1", "REDIS_SENTINEL_NODES=s1:26379,s2:26379", "REDIS_SENTINEL_MASTER=mymaster", "REDIS_SENTINEL_PASSWORD=sp")
	if got := clusterConfig(c); !reflect.DeepEqual(got.SentinelNodes, []string{"s1:26379", "s2:26379"}) || got.SentinelMaster != "mymaster" || got.SentinelPassword != "sp" {
		t.Fatalf("sentinel mode: %+v", got)
	}
	t.Chdir(t.TempDir())
	for _, bad := range [][]string{
		{"REDIS_CLUSTER_NODES=a:1", "REDIS_SENTINEL_NODES=b:2", "REDIS_SENTINEL_MASTER=m"},
		{"REDIS_SENTINEL_NODES=b:2"},
		{"REDIS_CLUSTER_NODES=no-port"},
		{"REVERB_SCALING_QUEUE_SIZE=0"},
		{"REVERB_SCALING_STATE_QUEUE_SIZE=many"},
	} {
		if _, err := config.LoadConfig(config.Flags{}, append(append([]string{"REVERB_SCALING_ENABLED=1"}, bad...), scalingAppEnv...)); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	c = loadScaling(t, "REVERB_SCALING_ENABLED=1", "REDIS_HOST=cache", "REDIS_PORT=6380")
	if got := clusterConfig(c); got.Addr != "cache:6380" || got.Channel != "reverb" || got.TLS || got.Timeout != time.Minute {
		t.Fatalf("defaults: %+v", got)
	}
}

func TestScalingDisabledNeedsNoRedis(t *testing.T) {
	// A listener stands where Redis would be; nothing may connect to it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	c := loadScaling(t, "REDIS_HOST=127.0.0.1", "REDIS_PORT="+port)
	b, err := startScaling(c, nil)
	if b != nil || err != nil {
		t.Fatalf("startScaling with scaling off = %v, %v; want nil, nil", b, err)
	}
	if err := restartViaRedis(c); err == nil {
		t.Fatal("restartViaRedis succeeded with scaling off")
	}
	_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	if conn, err := l.Accept(); err == nil {
		conn.Close()
		t.Fatal("something connected to Redis although scaling is off")
	}
}

func TestRestartViaRedisReachesRunningNode(t *testing.T) {
	addr := startTestRedis(t)
	_, port, _ := net.SplitHostPort(addr)
	c := loadScaling(t, "REVERB_SCALING_ENABLED=true", "REVERB_SCALING_CHANNEL=cmd-test",
		"REDIS_URL=redis://127.0.0.1:"+port, "REDIS_TIMEOUT=1")
	b, err := startScaling(c, nil)
	if err != nil || b == nil {
		t.Fatalf("startScaling = %v, %v", b, err)
	}
	defer b.Close()
	fired := make(chan struct{}, 1)
	b.OnRestart(func() { fired <- struct{}{} })
	deadline := time.Now().Add(5 * time.Second)
	for numSub(t, addr, "cmd-test") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the node never subscribed to the scaling channel")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := restartViaRedis(c); err != nil {
		t.Fatalf("restartViaRedis: %v", err)
	}
	select {
	case <-fired:
	case <-time.After(time.Second):
		t.Fatal("the running node did not get the restart command within 1 s")
	}
}

// startTestRedis runs redis-server on a free loopback port until the test
// ends; a missing binary fails the test.
func startTestRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not in PATH (apt-get install -y redis-server, or scripts/test-deps.sh as root)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for numSub(nil, addr, "x") < 0 {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr
}

// numSub asks Redis for PUBSUB NUMSUB of one channel over raw RESP (only
// package cluster uses a Redis client library); -1 when Redis is not there.
func numSub(t *testing.T, addr, channel string) int {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n", len(channel), channel)
	r := bufio.NewReader(c)
	var last string
	for range 4 { // *2, $len, name, :count
		line, err := r.ReadString('\n')
		if err != nil {
			return -1
		}
		last = strings.TrimSpace(line)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if err != nil && t != nil {
		t.Fatalf("PUBSUB NUMSUB reply ends with %q", last)
	}
	return n
}
