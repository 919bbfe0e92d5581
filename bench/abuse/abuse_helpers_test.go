//go:build linux

package abuse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/bench"
	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

const (
	abuseAppID  = "abuse"
	abuseKey    = "abuse-key"
	abuseSecret = "abuse-secret"
)

// abuseScale reports whether the scale versions run (ABUSE_SCALE=1).
func abuseScale() bool { return os.Getenv("ABUSE_SCALE") == "1" }

// abuseTarget is the server under test: in-process (srv set) or the real
// binary as a subprocess (pid set).
type abuseTarget struct {
	addr string
	srv  *loop.Server
	pid  int
}

// abuseApp is the app every scenario uses; mod adjusts it.
func abuseApp(mod func(*pusher.App)) pusher.App {
	a := pusher.App{ID: abuseAppID, Key: abuseKey, Secret: abuseSecret, ClientEvents: pusher.ClientEventsMembers, Signin: true}
	if mod != nil {
		mod(&a)
	}
	return a
}

// abuseStartLocal starts an in-process server (short versions).
func abuseStartLocal(t testing.TB, app pusher.App, mod func(*loop.Config)) *abuseTarget {
	t.Helper()
	set, err := pusher.NewAppSet([]pusher.App{app})
	if err != nil {
		t.Fatal(err)
	}
	cfg := loop.Config{Apps: set, Loops: 2}
	if mod != nil {
		mod(&cfg)
	}
	var srv *loop.Server
	for attempt := 1; ; attempt++ {
		cfg.Addr = abuseFreeAddr(t)
		if srv, err = loop.Start(cfg); err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("loop.Start: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &abuseTarget{addr: cfg.Addr, srv: srv}
}

// counters returns the in-process server's counters (nil for a subprocess).
func (tg *abuseTarget) counters() *hub.Counters {
	if tg.srv == nil {
		return nil
	}
	return tg.srv.Hub().Counters()
}

func abuseFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// abuseStartBinary builds cmd/reverb and starts it with env (REVERB_*
// settings on top of the abuse app) on a free loopback port; the process
// is killed when the test ends.
func abuseStartBinary(t testing.TB, env ...string) *abuseTarget {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "reverb")
	build := exec.Command("go", "build", "-o", bin, "github.com/goreverb/reverb/cmd/reverb")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "none.env"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := abuseFreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "start", "--host", "127.0.0.1", "--port", port, "--env-file", filepath.Join(dir, "none.env"))
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"REVERB_STATE_DIR=" + dir,
		"REVERB_APP_ID=" + abuseAppID,
		"REVERB_APP_KEY=" + abuseKey,
		"REVERB_APP_SECRET=" + abuseSecret,
	}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_, _ = c.Write([]byte("GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			if bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reverb did not come up on %s: %s", addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &abuseTarget{addr: addr, pid: cmd.Process.Pid}
}

// rssKiB is the server process's resident set (VmRSS) in KiB.
func (tg *abuseTarget) rssKiB(t testing.TB) int64 {
	t.Helper()
	pid := tg.pid
	if pid == 0 {
		pid = os.Getpid()
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// abusePeakRSS samples the server's RSS every 20 ms until stop is closed
// and returns the peak.
func abusePeakRSS(t testing.TB, tg *abuseTarget, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := tg.rssKiB(t); n > peak {
				peak = n
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// abuseFigure prints one measured figure next to its target and fails the
// test when ok is false.
func abuseFigure(t testing.TB, name, value, target string, ok bool) {
	t.Helper()
	verdict := "ok"
	if !ok {
		verdict = "MISSED"
	}
	t.Logf("FIGURE %-52s %-16s target %-14s %s", name, value, target, verdict)
	if !ok {
		t.Errorf("%s = %s, target %s", name, value, target)
	}
}

// abuseWS is a minimal Pusher WebSocket client over a raw TCP connection.
type abuseWS struct {
	c  net.Conn
	r  *bufio.Reader
	id string // socket id from connection_established
}

// abuseDial opens a WebSocket to the abuse app and reads
// connection_established.
func abuseDial(addr string) (*abuseWS, error) { return abuseDialRcv(addr, 0) }

// abuseDialRcv is abuseDial with SO_RCVBUF set to rcvBuf before connecting
// (0: the kernel's default): a small receive window makes a client that
// stops reading back the server up at once.
func abuseDialRcv(addr string, rcvBuf int) (*abuseWS, error) {
	dialer := net.Dialer{Timeout: 10 * time.Second}
	if rcvBuf > 0 {
		dialer.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	w := &abuseWS{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	req := "GET /app/" + abuseKey + "?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	status, err := w.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		c.Close()
		return nil, fmt.Errorf("handshake: %q %v", status, err)
	}
	for {
		line, err := w.r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	m, err := w.readMsg()
	if err != nil {
		c.Close()
		return nil, err
	}
	var ev struct{ Event, Data string }
	var d struct {
		SocketID string `json:"socket_id"`
	}
	if json.Unmarshal(m, &ev) != nil || ev.Event != "pusher:connection_established" || json.Unmarshal([]byte(ev.Data), &d) != nil {
		c.Close()
		return nil, fmt.Errorf("want connection_established, got %s", m)
	}
	w.id = d.SocketID
	_ = c.SetDeadline(time.Time{})
	return w, nil
}

func (w *abuseWS) close() { w.c.Close() }

// abuseFrame appends a masked client frame (zero mask key, so the payload
// is sent as is) with opcode op.
func abuseFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, 0, 0, 0, 0)
	return append(dst, payload...)
}

// send writes one text message.
func (w *abuseWS) send(msg string) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := w.c.Write(abuseFrame(nil, ws.OpText, []byte(msg)))
	return err
}

// abuseClosed is the error readMsg returns for a close frame.
type abuseClosed struct {
	code   int
	reason string
}

func (e *abuseClosed) Error() string { return fmt.Sprintf("closed %d %q", e.code, e.reason) }

// readMsg returns the next text message, answering nothing and skipping
// pings and pongs; a close frame returns *abuseClosed.
func (w *abuseWS) readMsg() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(w.r)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(w.r, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText:
			return p, nil
		case ws.OpClose:
			e := &abuseClosed{}
			if len(p) >= 2 {
				e.code = int(binary.BigEndian.Uint16(p))
				e.reason = string(p[2:])
			}
			return nil, e
		}
	}
}

// readUntil reads messages until one contains want or d passes.
func (w *abuseWS) readUntil(want string, d time.Duration) ([]byte, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	defer w.c.SetReadDeadline(time.Time{})
	for {
		m, err := w.readMsg()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(m, []byte(want)) {
			return m, nil
		}
	}
}

// abuseCloseCode reads until the server closes and returns the close code
// (0 for a TCP close without a close frame).
func (w *abuseWS) closeCode(d time.Duration) (int, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	for {
		_, err := w.readMsg()
		var ce *abuseClosed
		switch {
		case errors.As(err, &ce):
			return ce.code, nil
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "reset by peer"):
			return 0, nil
		default:
			return 0, err
		}
	}
}

// abusePresenceAuth returns auth and channel_data for socket id joining a
// presence channel as user.
func abusePresenceAuth(id, channel, user string) (auth, data string) {
	data = `{"user_id":"` + user + `","user_info":{"n":"` + user + `"}}`
	return string(bench.AppendChannelAuth(nil, abuseKey, abuseSecret, []byte(id), []byte(channel), []byte(data))), data
}

// abuseSubscribePresence sends a presence subscribe for w.
func (w *abuseWS) subscribePresence(channel, user string) error {
	auth, data := abusePresenceAuth(w.id, channel, user)
	b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{
		"channel": channel, "auth": auth, "channel_data": data}})
	return w.send(string(b))
}

// abusePublish triggers event on channel through the signed HTTP API.
func abusePublish(addr, channel, event, data string) error {
	body, _ := json.Marshal(map[string]any{"name": event, "channel": channel, "data": data})
	path := "/apps/" + abuseAppID + "/events"
	q := string(bench.APISigner{Key: abuseKey, Secret: abuseSecret}.AppendQuery(nil, "POST", path, body, time.Now().Unix()))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST " + path + "?" + q + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return err
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("publish: %.200s", b)
	}
	return nil
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
