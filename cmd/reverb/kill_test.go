package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
	pushersdk "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/pusher"
)

// TestMain lets the test binary act as the reverb command when the kill
// test starts it as a separate process (a node must be a real process to
// be SIGKILLed).
func TestMain(m *testing.M) {
	if os.Getenv("REVERB_TEST_AS_COMMAND") == "1" {
		os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestClusterSurvivesSIGKILLedNode kills one of two clustered nodes with
// SIGKILL (no goodbye): the survivor keeps serving and delivering, its
// cluster-wide /connections stops counting the dead node's sockets, and the
// dead node's presence member is removed (member_removed) within 5 s.
func TestClusterSurvivesSIGKILLedNode(t *testing.T) {
	redisAddr := startTestRedis(t)
	rhost, rport, _ := net.SplitHostPort(redisAddr)
	env := append(os.Environ(),
		"REVERB_TEST_AS_COMMAND=1",
		"REVERB_APP_ID=7", "REVERB_APP_KEY=kill-key", "REVERB_APP_SECRET=kill-secret",
		"REVERB_SCALING_ENABLED=true", "REVERB_SCALING_CHANNEL=kill-test",
		"REDIS_HOST="+rhost, "REDIS_PORT="+rport, "REDIS_TIMEOUT=2",
	)
	victimPort := freePort(t)
	victim := exec.Command(os.Args[0], "start", "--host", "127.0.0.1", "--port", strconv.Itoa(victimPort))
	victim.Env = append(env, "REVERB_STATE_DIR="+t.TempDir())
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = victim.Process.Kill(); _ = victim.Wait() })
	victimAddr := "127.0.0.1:" + strconv.Itoa(victimPort)
	waitUp(t, victimAddr)

	survivor := startServer(t, append(env, "REVERB_STATE_DIR="+t.TempDir()), "")
	t.Cleanup(func() {
		_ = run([]string{"restart"}, append(env, "REVERB_STATE_DIR="+t.TempDir()), io.Discard, io.Discard)
		select {
		case <-survivor.rc:
		case <-time.After(8 * time.Second):
		}
	})

	sdk := pushersdk.Client{AppID: "7", Key: "kill-key", Secret: "kill-secret", Host: survivor.addr}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, id := dial(t, victimAddr, "kill-key")
		held = append(held, c)
		if i == 0 {
			// A member of a presence channel on the node about to die.
			joinPresence(t, &sdk, c, id, "presence-room", "ghost")
		}
	}
	s1, s1ID := dial(t, survivor.addr, "kill-key")
	defer s1.Close()
	if members := joinPresence(t, &sdk, s1, s1ID, "presence-room", "stay"); !strings.Contains(members, `\"ghost\"`) || !strings.Contains(members, `\"stay\"`) {
		t.Fatalf("survivor's member list %s lacks the other node's member", members)
	}
	eventually(t, 5*time.Second, "survivor counts 4 sockets", func() bool {
		return connections(t, survivor.addr) == 4
	})

	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	killed := time.Now()
	// /connections asks the live nodes, so the dead node's sockets stop
	// counting at once (the heartbeat sums behind max_connections follow
	// within about 3 s).
	eventually(t, 6*time.Second, "the dead node's sockets stop counting", func() bool {
		return connections(t, survivor.addr) == 1
	})
	// Its member is gone too, announced once (bound stated in README: 5 s).
	if got := wsRead(t, s1); got != `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"ghost\"}"}` {
		t.Fatalf("survivor got %s, want member_removed of the dead node's user", got)
	}
	if d := time.Since(killed); d > 5*time.Second {
		t.Fatalf("member_removed came %v after SIGKILL", d)
	}
	t.Logf("member_removed of the dead node's user %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	for _, c := range held {
		c.Close()
	}

	// The survivor still serves its own sockets and the HTTP API.
	if err := wsSend(s1, `{"event":"pusher:subscribe","data":{"channel":"after"}}`); err != nil {
		t.Fatal(err)
	}
	if got := wsRead(t, s1); !strings.Contains(got, "subscription_succeeded") {
		t.Fatalf("subscribe answered %s", got)
	}
	if err := sdk.Trigger("after", "still", "alive"); err != nil {
		t.Fatal(err)
	}
	if got := wsRead(t, s1); got != `{"event":"still","data":"alive","channel":"after"}` {
		t.Fatalf("survivor delivered %s", got)
	}
}

// joinPresence subscribes the socket c (its connection_established given) to a presence channel as user
// (SDK signature) and returns the subscription_succeeded data.
func joinPresence(t *testing.T, sdk *pushersdk.Client, c net.Conn, established, channel, user string) string {
	t.Helper()
	var env struct{ Data string }
	var est struct {
		SocketID string `json:"socket_id"`
	}
	if json.Unmarshal([]byte(established), &env) != nil || json.Unmarshal([]byte(env.Data), &est) != nil {
		t.Fatalf("not connection_established: %s", established)
	}
	id := est.SocketID
	auth, err := sdk.AuthorizePresenceChannel([]byte("socket_id="+id+"&channel_name="+channel), pushersdk.MemberData{UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Auth        string `json:"auth"`
		ChannelData string `json:"channel_data"`
	}
	if err := json.Unmarshal(auth, &a); err != nil {
		t.Fatal(err)
	}
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": a.Auth, "channel_data": a.ChannelData}})
	if err := wsSend(c, string(msg)); err != nil {
		t.Fatal(err)
	}
	got := wsRead(t, c)
	if !strings.Contains(got, "pusher_internal:subscription_succeeded") {
		t.Fatalf("presence subscribe answered %s", got)
	}
	return got
}

func waitUp(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 10*time.Second, addr+" serves /up", func() bool { return up(addr) })
}

// up reports whether GET base/up answers 200.
func up(base string) bool {
	resp, err := http.Get("http://" + base + "/up")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connections asks GET /apps/7/connections, signed as a client would.
func connections(t *testing.T, addr string) int {
	t.Helper()
	path := "/apps/7/connections"
	q := "auth_key=kill-key&auth_timestamp=" + strconv.FormatInt(time.Now().Unix(), 10) + "&auth_version=1.0"
	sig := pusher.SignAPIRequest(nil, "kill-secret", []byte("GET"), []byte(path), []byte(q), nil)
	resp, err := http.Get("http://" + addr + path + "?" + q + "&auth_signature=" + string(sig))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Connections int }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /connections: %d %v", resp.StatusCode, err)
	}
	return body.Connections
}

func wsSend(c net.Conn, msg string) error { return wsutil.WriteClientText(c, []byte(msg)) }

func wsRead(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg, err := wsutil.ReadServerText(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(msg)
}
