package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	pushersdk "github.com/pusher/pusher-http-go/v5"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	addr string
	out  *syncBuffer
	rc   chan int
}

// startServer runs `reverb start` in-process on a free loopback port.
// prefix is the route prefix the server is configured with ("" or "/ws").
func startServer(t *testing.T, environ []string, prefix string, extra ...string) *running {
	t.Helper()
	port := freePort(t)
	r := &running{addr: "127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, rc: make(chan int, 1)}
	args := append([]string{"start", "--host", "127.0.0.1", "--port", strconv.Itoa(port)}, extra...)
	go func() { r.rc <- run(args, environ, r.out, io.Discard) }()
	eventually(t, 5*time.Second, "server up", func() bool {
		if up(r.addr + prefix) {
			return true
		}
		select {
		case rc := <-r.rc:
			t.Fatalf("server exited %d; output: %s", rc, r.out.String())
		default:
		}
		return false
	})
	return r
}

// dial connects a WebSocket client and returns the first server message.
func dial(t *testing.T, addr, key string) (net.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, "ws://"+addr+"/app/"+key+"?protocol=7&client=js&version=8.6.0")
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader = c
	if br != nil {
		rd = io.MultiReader(br, c)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{rd, c})
	if err != nil {
		t.Fatal(err)
	}
	return c, string(msg)
}

func TestDevelopmentAppAndRestart(t *testing.T) {
	dir := t.TempDir()
	env := []string{"REVERB_STATE_DIR=" + dir, "HOME=" + dir}
	r := startServer(t, env, "")
	out := r.out.String()
	if !regexp.MustCompile(`Starting server on 127\.0\.0\.1:\d+`).MatchString(out) {
		t.Fatalf("startup line missing: %q", out)
	}
	m := regexp.MustCompile(`REVERB_APP_KEY=(\w+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("development app key not printed: %q", out)
	}
	c, first := dial(t, r.addr, m[1])
	defer c.Close()
	if !regexp.MustCompile(`^\{"event":"pusher:connection_established","data":"\{\\"socket_id\\":\\"\d+\.\d+\\",\\"activity_timeout\\":30\}"\}$`).MatchString(first) {
		t.Fatalf("first message = %s", first)
	}

	// `reverb restart` reaches the running server through the state dir:
	// its socket gets close 4200 and `start` returns 0 within ~5 s.
	var rout bytes.Buffer
	if rc := run([]string{"restart"}, env, &rout, io.Discard); rc != 0 {
		t.Fatalf("restart exited %d: %s", rc, rout.String())
	}
	c.SetReadDeadline(time.Now().Add(8 * time.Second))
	br := bufio.NewReader(c)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("no close frame before the connection ended: %v", err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(payload)
			if code != 4200 || reason != "Server is restarting" {
				t.Fatalf("close %d %q, want 4200 \"Server is restarting\"", code, reason)
			}
			break
		}
	}
	select {
	case rc := <-r.rc:
		if rc != 0 {
			t.Fatalf("start exited %d", rc)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("server did not exit after restart")
	}
}

func TestStartServesAppFromEnvFile(t *testing.T) {
	dir := t.TempDir()
	envFile := dir + "/.env"
	content := "REVERB_APP_ID=42\nREVERB_APP_KEY=\"laravel-key\"\nexport REVERB_APP_SECRET=s3cret # comment\nREVERB_SERVER_PATH=ws\n"
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServer(t, []string{"REVERB_STATE_DIR=" + dir}, "/ws", "--env-file", envFile)
	if out := r.out.String(); bytes.Contains([]byte(out), []byte("development app")) {
		t.Fatalf("env file ignored: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, "ws://"+r.addr+"/ws/app/laravel-key")
	if err != nil {
		t.Fatalf("dial under the REVERB_SERVER_PATH prefix: %v", err)
	}
	c.Close()
	if rc := run([]string{"restart"}, []string{"REVERB_STATE_DIR=" + dir}, io.Discard, io.Discard); rc != 0 {
		t.Fatal("restart failed")
	}
	select {
	case <-r.rc:
	case <-time.After(8 * time.Second):
		t.Fatal("server did not exit after restart")
	}
}

func TestStartRefusesDuplicateKeys(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/reverb.json"
	if err := os.WriteFile(file, []byte(`{"apps":{"apps":[{"app_id":"1","key":"k","secret":"a"},{"app_id":"2","key":"k","secret":"b"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	rc := run([]string{"start", "--config", file}, nil, io.Discard, &stderr)
	if rc == 0 || !bytes.Contains(stderr.Bytes(), []byte(`"k"`)) {
		t.Fatalf("rc=%d stderr=%q, want a refusal naming the duplicate key", rc, stderr.String())
	}
}

// TestClusteredStartDeliversAcrossNodesAndRestartsThroughRedis runs two
// `reverb start` nodes bridged by a real redis-server: an event triggered
// through one node's HTTP API reaches a socket on the other, and `reverb
// restart` stops both through Redis (their state dirs differ, so only
// Redis can reach them).
func TestClusteredStartDeliversAcrossNodesAndRestartsThroughRedis(t *testing.T) {
	redisAddr := startTestRedis(t)
	host, port, _ := net.SplitHostPort(redisAddr)
	env := func(dir string) []string {
		return []string{
			"REVERB_STATE_DIR=" + dir,
			"REVERB_APP_ID=7", "REVERB_APP_KEY=cluster-key", "REVERB_APP_SECRET=cluster-secret",
			"REVERB_SCALING_ENABLED=true", "REVERB_SCALING_CHANNEL=e2e-cluster",
			"REDIS_HOST=" + host, "REDIS_PORT=" + port,
		}
	}
	a := startServer(t, env(t.TempDir()), "")
	b := startServer(t, env(t.TempDir()), "")

	c, first := dial(t, b.addr, "cluster-key")
	defer c.Close()
	if !strings.Contains(first, "connection_established") {
		t.Fatalf("first message = %s", first)
	}
	if err := wsutil.WriteClientText(c, []byte(`{"event":"pusher:subscribe","data":{"channel":"news"}}`)); err != nil {
		t.Fatal(err)
	}
	if got := wsRead(t, c); !strings.Contains(got, "subscription_succeeded") {
		t.Fatalf("subscribe answered %s", got)
	}
	// B acknowledged only once its Redis subscription was in effect, so one
	// trigger on A must reach B's socket.
	sdk := pushersdk.Client{AppID: "7", Key: "cluster-key", Secret: "cluster-secret", Host: a.addr}
	if err := sdk.Trigger("news", "Published", "hello"); err != nil {
		t.Fatal(err)
	}
	if got, want := wsRead(t, c), `{"event":"Published","data":"hello","channel":"news"}`; got != want {
		t.Fatalf("node B delivered %s, want %s", got, want)
	}

	if rc := run([]string{"restart"}, env(t.TempDir()), io.Discard, io.Discard); rc != 0 {
		t.Fatalf("restart exited %d", rc)
	}
	for _, n := range []*running{a, b} {
		select {
		case rc := <-n.rc:
			if rc != 0 {
				t.Fatalf("node exited %d", rc)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a node did not stop within 5 s of reverb restart")
		}
	}
}
