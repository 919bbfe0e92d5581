package loop_test

// Helpers for the black-box tests: a real server per test on 127.0.0.1, a raw
// WebSocket client built on gobwas/ws, JSON comparison that ignores key order
// (PROTOCOL.md §0.3) and auth/API signing done by the official
// pusher-http-go SDK so that our pusher package never checks itself.

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
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

const (
	testAppID  = "1001"
	testKey    = "key-a"
	testSecret = "secret-a"

	// ioTimeout bounds every read that waits for something that must come.
	ioTimeout = 5 * time.Second
	// quietFor is how long we listen to prove that nothing arrives (≤ 300 ms).
	quietFor = 200 * time.Millisecond
	// masterKeyB64 is a 32-byte end-to-end encryption key for the SDK.
	masterKeyB64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
)

var socketIDShape = regexp.MustCompile(`^\d+\.\d+$`)

// testApp is the app most tests use; tests change fields as they need.
func testApp() pusher.App {
	return pusher.App{
		ID:           testAppID,
		Key:          testKey,
		Secret:       testSecret,
		Signin:       true,
		ClientEvents: pusher.ClientEventsAll,
	}
}

// testServer is one running server with its config.
type testServer struct {
	t    testing.TB
	srv  *loop.Server
	addr string
	path string
	cfg  loop.Config

	once        sync.Once
	shutdownErr error
}

// startServer starts a server with these apps on a free loopback port and
// shuts it down when the test ends.
func startServer(t testing.TB, apps []pusher.App, opts ...func(*loop.Config)) *testServer {
	t.Helper()
	set, err := pusher.NewAppSet(apps)
	if err != nil {
		t.Fatalf("NewAppSet: %v", err)
	}
	cfg := loop.Config{Apps: set, Loops: 2}
	for _, o := range opts {
		o(&cfg)
	}
	// The port can be taken between probing and listening; retry a few times.
	var srv *loop.Server
	for attempt := 1; ; attempt++ {
		cfg.Addr = freeAddr(t)
		srv, err = loop.Start(cfg)
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("loop.Start(%s): %v", cfg.Addr, err)
		}
	}
	s := &testServer{t: t, srv: srv, addr: srv.Addr(), cfg: cfg}
	if s.addr == "" {
		s.addr = cfg.Addr
	}
	if p := strings.Trim(cfg.Path, "/"); p != "" {
		s.path = "/" + p
	}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// startDefault starts a server with testApp only.
func startDefault(t testing.TB, opts ...func(*loop.Config)) *testServer {
	t.Helper()
	return startServer(t, []pusher.App{testApp()}, opts...)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probe port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// shutdown stops the server once; later calls return the first result.
func (s *testServer) shutdown() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdownErr = s.srv.Shutdown(ctx)
	})
	return s.shutdownErr
}

// ---- WebSocket client ----

type frame struct {
	op      ws.OpCode
	fin     bool
	payload []byte
}

func (f frame) String() string {
	switch f.op {
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(f.payload)
		return fmt.Sprintf("close frame %d %q", code, reason)
	case ws.OpText:
		return fmt.Sprintf("text %s", clip(f.payload))
	}
	return fmt.Sprintf("op %d fin=%v %s", f.op, f.fin, clip(f.payload))
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return string(b)
}

// wsClient is a raw client: every frame is visible, nothing is answered
// automatically, every read has a deadline.
type wsClient struct {
	t        testing.TB
	conn     net.Conn
	r        *bufio.Reader
	socketID string
	header   http.Header // non-WebSocket response headers of the handshake
	hs       ws.Handshake
}

type dialCfg struct {
	key     string
	path    string // full request path, overrides key
	query   string
	header  string
	rcvBuf  int
	offerPM bool
}

type dialOpt func(*dialCfg)

func withKey(k string) dialOpt              { return func(c *dialCfg) { c.key = k } }
func withPath(p string) dialOpt             { return func(c *dialCfg) { c.path = p } }
func withOrigin(o string) dialOpt           { return withHeader("Origin: " + o + "\r\n") }
func withRcvBuf(n int) dialOpt              { return func(c *dialCfg) { c.rcvBuf = n } }
func withDeflateOffer() dialOpt             { return func(c *dialCfg) { c.offerPM = true } }
func withHeader(h string) dialOpt           { return func(c *dialCfg) { c.header += h } }
func withRawQuery(q string) dialOpt         { return func(c *dialCfg) { c.query = q } }
func (s *testServer) wsURL(p string) string { return "ws://" + s.addr + p }

// dial performs the WebSocket handshake and returns the client or the error.
func (s *testServer) dial(t testing.TB, opts ...dialOpt) (*wsClient, error) {
	t.Helper()
	dc := dialCfg{key: testKey, query: "protocol=7&client=js&version=8.6.0&flash=false"}
	for _, o := range opts {
		o(&dc)
	}
	p := dc.path
	if p == "" {
		p = s.path + "/app/" + dc.key
	}
	u := s.wsURL(p)
	if dc.query != "" {
		u += "?" + dc.query
	}
	hdr := http.Header{}
	d := ws.Dialer{
		Timeout: ioTimeout,
		OnHeader: func(k, v []byte) error {
			hdr.Add(string(k), string(v))
			return nil
		},
	}
	if dc.header != "" {
		d.Header = ws.HandshakeHeaderString(dc.header)
	}
	if dc.offerPM {
		d.Extensions = []httphead.Option{{Name: []byte("permessage-deflate")}}
	}
	if dc.rcvBuf > 0 {
		// A small receive buffer set before connect keeps the TCP window
		// small, so a client that stops reading backs up the server fast.
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, dc.rcvBuf)
			})
			return errors.Join(err, serr)
		}}
		d.NetDial = nd.DialContext
	}
	conn, br, hs, err := d.Dial(context.Background(), u)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	c := &wsClient{t: t, conn: conn, r: br, header: hdr, hs: hs}
	t.Cleanup(func() { conn.Close() })
	return c, nil
}

// open dials and fails the test if the handshake does not succeed.
func (s *testServer) open(t testing.TB, opts ...dialOpt) *wsClient {
	t.Helper()
	c, err := s.dial(t, opts...)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

// connect dials and reads pusher:connection_established (§2.5), checking
// its shape and keeping the socket id.
func (s *testServer) connect(t testing.TB, opts ...dialOpt) *wsClient {
	t.Helper()
	c := s.open(t, opts...)
	m := c.expectEvent("pusher:connection_established")
	if m.Channel != "" || len(m.fields) != 2 {
		t.Fatalf("connection_established: want exactly event and data, got %s", m.raw)
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m.dataString(t)), &d); err != nil {
		t.Fatalf("connection_established data is not a JSON object: %s", m.raw)
	}
	var sid string
	if err := json.Unmarshal(d["socket_id"], &sid); err != nil || !socketIDShape.MatchString(sid) {
		t.Fatalf("socket_id must be a string shaped \\d+\\.\\d+ (§2.5), got %s", d["socket_id"])
	}
	var at int
	if err := json.Unmarshal(d["activity_timeout"], &at); err != nil || at < 1 {
		t.Fatalf("activity_timeout must be an integer ≥ 1 (§2.5), got %s", d["activity_timeout"])
	}
	if len(d) != 2 {
		t.Fatalf("connection_established data: want only socket_id and activity_timeout, got %s", m.dataString(t))
	}
	c.socketID = sid
	return c
}

// readFrame reads one frame within d.
func (c *wsClient) readFrame(d time.Duration) (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return frame{}, err
	}
	if h.Masked {
		return frame{}, errors.New("server sent a masked frame (RFC 6455 §5.1)")
	}
	if h.Rsv != 0 {
		return frame{}, errors.New("server set RSV bits without a negotiated extension")
	}
	if h.Length > 64<<20 {
		return frame{}, fmt.Errorf("frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return frame{}, err
	}
	return frame{op: h.OpCode, fin: h.Fin, payload: p}, nil
}

// next returns the next frame or fails the test.
func (c *wsClient) next() frame {
	c.t.Helper()
	return c.nextWithin(ioTimeout)
}

func (c *wsClient) nextWithin(d time.Duration) frame {
	c.t.Helper()
	f, err := c.readFrame(d)
	if err != nil {
		c.t.Fatalf("socket %s: waiting %v for a frame: %v", c.socketID, d, err)
	}
	return f
}

// message is one server → client Pusher message.
type message struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	raw     []byte
	fields  map[string]json.RawMessage
}

// dataString returns data, which must be a JSON string.
func (m message) dataString(t testing.TB) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("data must be a string (data-string, §3.1), got %s in %s", m.Data, m.raw)
	}
	return s
}

// expectMsg returns the next frame, which must be a complete text message.
func (c *wsClient) expectMsg() message {
	c.t.Helper()
	return c.expectMsgWithin(ioTimeout)
}

func (c *wsClient) expectMsgWithin(d time.Duration) message {
	c.t.Helper()
	f := c.nextWithin(d)
	if f.op != ws.OpText {
		c.t.Fatalf("want a text message, got %s", f)
	}
	if !f.fin {
		c.t.Fatalf("server messages must be one unfragmented text frame (§3.3), got a fragment: %s", f)
	}
	return parseMessage(c.t, f.payload)
}

func parseMessage(t testing.TB, b []byte) message {
	t.Helper()
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("server sent invalid JSON: %s", clip(b))
	}
	if err := json.Unmarshal(b, &m.fields); err != nil {
		t.Fatalf("server message is not a JSON object: %s", clip(b))
	}
	m.raw = b
	return m
}

// expectEvent returns the next message, which must carry this event name.
func (c *wsClient) expectEvent(event string) message {
	c.t.Helper()
	m := c.expectMsg()
	if m.Event != event {
		c.t.Fatalf("want event %q, got %s", event, clip(m.raw))
	}
	return m
}

// expectJSON asserts the next message equals want as JSON (key order
// ignored; a string `data` holding JSON is compared as that JSON but must
// still be a string on both sides).
func (c *wsClient) expectJSON(want string) message {
	c.t.Helper()
	m := c.expectMsg()
	assertJSON(c.t, "message", m.raw, want)
	return m
}

// expectError asserts the next message is pusher:error with code and message.
func (c *wsClient) expectError(code int, text string) {
	c.t.Helper()
	c.expectJSON(errorJSON(code, text))
}

// expectErrorCode asserts a pusher:error with this code, any message text.
func (c *wsClient) expectErrorCode(code int) {
	c.t.Helper()
	m := c.expectEvent("pusher:error")
	var d struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(m.dataString(c.t)), &d); err != nil || d.Code != code || d.Message == "" {
		c.t.Fatalf("want pusher:error code %d with a message, got %s", code, m.raw)
	}
}

// expectAppEvent asserts an event from the HTTP API: exactly event, channel
// and the data string forwarded byte for byte (§9.3).
func (c *wsClient) expectAppEvent(channel, event, data string) message {
	c.t.Helper()
	m := c.expectMsg()
	assertAppEvent(c.t, m, channel, event, data)
	return m
}

func assertAppEvent(t testing.TB, m message, channel, event, data string) {
	t.Helper()
	if m.Event != event || m.Channel != channel || len(m.fields) != 3 || m.dataString(t) != data {
		t.Fatalf("want {event:%q, channel:%q, data:%q}, got %s", event, channel, data, clip(m.raw))
	}
}

// expectClose asserts the next frame is a close frame with code (and reason
// unless reason is "*"), answers it and checks the server then ends TCP.
func (c *wsClient) expectClose(code ws.StatusCode, reason string) {
	c.t.Helper()
	c.expectCloseWithin(ioTimeout, code, reason)
}

func (c *wsClient) expectCloseWithin(d time.Duration, code ws.StatusCode, reason string) {
	c.t.Helper()
	f := c.nextWithin(d)
	if f.op != ws.OpClose {
		c.t.Fatalf("want close frame %d, got %s", code, f)
	}
	gotCode, gotReason := ws.ParseCloseFrameData(f.payload)
	if gotCode != code || (reason != "*" && gotReason != reason) {
		c.t.Fatalf("want close frame %d %q, got %d %q", code, reason, gotCode, gotReason)
	}
	// Answer like a browser would; the write may fail if TCP is gone already.
	_ = c.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
	c.expectEOF()
}

// expectEOF asserts the server closes the TCP connection without sending more frames.
func (c *wsClient) expectEOF() {
	c.t.Helper()
	f, err := c.readFrame(ioTimeout)
	if err == nil {
		c.t.Fatalf("want the connection closed, got another frame: %s", f)
	}
	if isClosedErr(err) {
		return
	}
	c.t.Fatalf("want the connection closed by the server, got %v", err)
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// expectQuiet asserts that nothing arrives for quietFor.
func (c *wsClient) expectQuiet() {
	c.t.Helper()
	f, err := c.readFrame(quietFor)
	if err == nil {
		c.t.Fatalf("want nothing, got %s", f)
	}
	if !isTimeout(err) {
		c.t.Fatalf("want nothing, got error %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sync sends pusher:ping and asserts the very next message is the pong:
// everything the server produced for earlier messages of this socket must
// have arrived before it, so it proves those messages caused no reply.
func (c *wsClient) sync() {
	c.t.Helper()
	c.send(`{"event":"pusher:ping","data":{}}`)
	c.expectJSON(`{"event":"pusher:pong"}`)
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := c.writeFrame(ws.NewTextFrame([]byte(s))); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// sendJSON marshals v and sends it as a text message.
func (c *wsClient) sendJSON(v any) {
	c.t.Helper()
	c.send(jsonOf(c.t, v))
}

// writeFrame masks a copy of f and writes it with one write, as browsers do;
// TestSplitFrames covers frames that arrive in pieces.
func (c *wsClient) writeFrame(f ws.Frame) error {
	b, err := ws.CompileFrame(ws.MaskFrame(f))
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *wsClient) writeRaw(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.conn.Write(b)
	return err
}

func (c *wsClient) close() { c.conn.Close() }

// ---- Pusher messages ----

func (c *wsClient) sendSubscribe(channel, auth, channelData string) {
	c.t.Helper()
	d := map[string]any{"channel": channel, "auth": auth}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	c.sendJSON(map[string]any{"event": "pusher:subscribe", "data": d})
}

func (c *wsClient) unsubscribe(channel string) {
	c.t.Helper()
	c.sendJSON(map[string]any{"event": "pusher:unsubscribe", "data": map[string]any{"channel": channel}})
}

// subscribe joins a public channel and expects the empty success (§4.4).
func (c *wsClient) subscribe(channel string) {
	c.t.Helper()
	c.sendSubscribe(channel, "", "")
	c.expectJSON(succeededJSON(c.t, channel))
}

// subscribePrivate joins a private-type channel with an SDK signature.
func (c *wsClient) subscribePrivate(a *apiClient, channel string) {
	c.t.Helper()
	c.sendSubscribe(channel, a.authPrivate(c.t, c.socketID, channel), "")
	c.expectJSON(succeededJSON(c.t, channel))
}

// subscribePresence joins a presence channel as userID and returns the
// subscription_succeeded message for the caller to check.
func (c *wsClient) subscribePresence(a *apiClient, channel, userID string, info map[string]string) message {
	c.t.Helper()
	auth, cd := a.authPresence(c.t, c.socketID, channel, userID, info)
	c.sendSubscribe(channel, auth, cd)
	m := c.expectEvent("pusher_internal:subscription_succeeded")
	if m.Channel != channel {
		c.t.Fatalf("subscription_succeeded for %q, want %q: %s", m.Channel, channel, m.raw)
	}
	return m
}

func succeededJSON(t testing.TB, channel string) string {
	return jsonOf(t, map[string]any{"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}"})
}

// presenceJSON is the presence subscription_succeeded message (§4.4);
// ids are user ids in join order and info[i] is the user_info of ids[i].
func presenceJSON(t testing.TB, channel string, ids []string, info []any) string {
	t.Helper()
	hash := map[string]any{}
	for i, id := range ids {
		hash[id] = info[i]
	}
	if ids == nil {
		ids = []string{}
	}
	data := jsonOf(t, map[string]any{"presence": map[string]any{"count": len(ids), "ids": ids, "hash": hash}})
	return jsonOf(t, map[string]any{"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": data})
}

func memberAddedJSON(t testing.TB, channel, userID string, info map[string]string) string {
	t.Helper()
	d := map[string]any{"user_id": userID}
	if info != nil {
		d["user_info"] = info
	}
	return jsonOf(t, map[string]any{"event": "pusher_internal:member_added", "channel": channel, "data": jsonOf(t, d)})
}

func memberRemovedJSON(t testing.TB, channel, userID string) string {
	t.Helper()
	return jsonOf(t, map[string]any{"event": "pusher_internal:member_removed", "channel": channel,
		"data": jsonOf(t, map[string]any{"user_id": userID})})
}

func errorJSON(code int, text string) string {
	inner, _ := json.Marshal(map[string]any{"code": code, "message": text})
	outer, _ := json.Marshal(map[string]any{"event": "pusher:error", "data": string(inner)})
	return string(outer)
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// ---- JSON comparison ----

// canonical parses JSON for comparison. A top-level string `data` that holds
// JSON is replaced by a marker object around the parsed value, so that
// "{\"a\":1}" and {"a":1} stay different while key order inside does not matter.
func canonical(b []byte) (any, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["data"].(string); ok {
			if inner, err := decodeJSON([]byte(s)); err == nil {
				m["data"] = map[string]any{"(data-string)": inner}
			}
		}
	}
	return v, nil
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// assertJSON fails unless got and want are the same JSON (see canonical).
func assertJSON(t testing.TB, what string, got []byte, want string) {
	t.Helper()
	g, err := canonical(got)
	if err != nil {
		t.Fatalf("%s: invalid JSON %s: %v", what, clip(got), err)
	}
	w, err := canonical([]byte(want))
	if err != nil {
		t.Fatalf("%s: bad expectation %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %s\n want %s", what, clip(got), want)
	}
}

// jsonEqual reports whether got and want are the same JSON (see canonical).
func jsonEqual(got []byte, want string) bool {
	g, err1 := canonical(got)
	w, err2 := canonical([]byte(want))
	return err1 == nil && err2 == nil && reflect.DeepEqual(g, w)
}

// pusherSign is HMAC-SHA256 hex, for negative tests the SDK refuses to sign
// (it validates user data); TestSignerMatchesSpecVectors proves it.
func pusherSign(secret, s string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(s))
	return hex.EncodeToString(mac.Sum(nil))
}

// ---- HTTP API through the official SDK ----

// apiClient is a pusher-http-go client whose transport records the last
// exchange so tests can assert exact statuses and bodies.
type apiClient struct {
	*pusherapi.Client
	rec *recorder
}

type recorder struct {
	next http.RoundTripper

	mu      sync.Mutex
	reqBody []byte
	status  int
	body    []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.reqBody, r.status, r.body = reqBody, resp.StatusCode, body
	r.mu.Unlock()
	return resp, nil
}

// api returns an SDK client for testApp reaching this server (the prefix is
// put into Host so the SDK signs /apps/... and posts to P/apps/..., §6.3).
func (s *testServer) api(t testing.TB, mods ...func(*pusherapi.Client)) *apiClient {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rec := &recorder{next: tr}
	c := &pusherapi.Client{
		AppID:                     testAppID,
		Key:                       testKey,
		Secret:                    testSecret,
		Host:                      s.addr + s.path,
		EncryptionMasterKeyBase64: masterKeyB64,
		HTTPClient:                &http.Client{Transport: rec, Timeout: ioTimeout},
	}
	for _, m := range mods {
		m(c)
	}
	return &apiClient{Client: c, rec: rec}
}

// last returns the status and body of the last response.
func (a *apiClient) last() (int, []byte) {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	return a.rec.status, a.rec.body
}

// lastRequestBody returns the body the SDK sent last.
func (a *apiClient) lastRequestBody() []byte {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	return a.rec.reqBody
}

// expectLast asserts the last response's status and JSON body.
func (a *apiClient) expectLast(t testing.TB, status int, body string) {
	t.Helper()
	st, b := a.last()
	if st != status {
		t.Fatalf("want HTTP %d %s, got %d %s", status, body, st, b)
	}
	assertJSON(t, "response body", b, body)
}

func authParams(socketID, channel string) []byte {
	return []byte("socket_id=" + url.QueryEscape(socketID) + "&channel_name=" + url.QueryEscape(channel))
}

type authResponse struct {
	Auth        string `json:"auth"`
	ChannelData string `json:"channel_data"`
	UserData    string `json:"user_data"`
}

func decodeAuth(t testing.TB, b []byte, err error) authResponse {
	t.Helper()
	if err != nil {
		t.Fatalf("SDK auth: %v", err)
	}
	var r authResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("SDK auth response %s: %v", b, err)
	}
	return r
}

// authPrivate signs socketID:channel with the SDK (§6.1).
func (a *apiClient) authPrivate(t testing.TB, socketID, channel string) string {
	t.Helper()
	b, err := a.AuthorizePrivateChannel(authParams(socketID, channel))
	return decodeAuth(t, b, err).Auth
}

// authPresence signs a presence subscription with the SDK and returns auth and channel_data.
func (a *apiClient) authPresence(t testing.TB, socketID, channel, userID string, info map[string]string) (string, string) {
	t.Helper()
	b, err := a.AuthorizePresenceChannel(authParams(socketID, channel), pusherapi.MemberData{UserID: userID, UserInfo: info})
	r := decodeAuth(t, b, err)
	return r.Auth, r.ChannelData
}

// authUser signs a pusher:signin with the SDK (§6.2) and returns auth and user_data.
func (a *apiClient) authUser(t testing.TB, socketID string, user map[string]any) (string, string) {
	t.Helper()
	b, err := a.AuthenticateUser([]byte("socket_id="+url.QueryEscape(socketID)), user)
	r := decodeAuth(t, b, err)
	return r.Auth, r.UserData
}

// ---- raw HTTP ----

// signQuery returns the query string of a signed API request (§6.3). The SDK
// has no terminate_connections or connections call, so this tiny signer
// exists for those; TestSignerMatchesSpecVectors proves it.
func signQuery(method, path string, params url.Values, body []byte, key, secret string, ts int64) string {
	q := url.Values{}
	for k, v := range params {
		q[k] = slices.Clone(v)
	}
	q.Set("auth_key", key)
	q.Set("auth_timestamp", strconv.FormatInt(ts, 10))
	q.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(k + "=" + strings.Join(q[k], ","))
	}
	q.Set("auth_signature", pusherSign(secret, method+"\n"+path+"\n"+sb.String()))
	return q.Encode()
}

// signedRequest builds the raw text of a signed HTTP/1.1 request for testApp.
func (s *testServer) signedRequest(method, apiPath string, params url.Values, body []byte, extraHeaders string) string {
	q := signQuery(method, apiPath, params, body, testKey, testSecret, time.Now().Unix())
	return rawRequest(method, s.path+apiPath+"?"+q, body, extraHeaders)
}

func rawRequest(method, target string, body []byte, extraHeaders string) string {
	var sb strings.Builder
	sb.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	if body != nil {
		sb.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	sb.WriteString(extraHeaders)
	sb.WriteString("\r\n")
	sb.Write(body)
	return sb.String()
}

// httpConn is one raw TCP connection for HTTP exchanges.
type httpConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func (s *testServer) httpConn(t testing.TB) *httpConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &httpConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (h *httpConn) write(req string) {
	h.t.Helper()
	h.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(h.conn, req); err != nil {
		h.t.Fatalf("write request: %v", err)
	}
}

// read reads one response and its whole body.
func (h *httpConn) read() (*http.Response, []byte) {
	h.t.Helper()
	resp, b, err := h.tryRead()
	if err != nil {
		h.t.Fatalf("read response: %v", err)
	}
	return resp, b
}

// tryRead is read for goroutines other than the test's: it fails nothing.
func (h *httpConn) tryRead() (*http.Response, []byte, error) {
	h.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b, err
}

// expectEOF asserts the server closes the connection within d without
// sending anything more.
func (h *httpConn) expectEOF(d time.Duration) {
	h.t.Helper()
	h.conn.SetReadDeadline(time.Now().Add(d))
	if n, err := h.r.ReadByte(); !isClosedErr(err) {
		h.t.Fatalf("want the connection closed, got byte %q, error %v", n, err)
	}
}

// expectQuiet asserts nothing arrives for quietFor and the connection stays open.
func (h *httpConn) expectQuiet() {
	h.t.Helper()
	h.conn.SetReadDeadline(time.Now().Add(quietFor))
	if n, err := h.r.ReadByte(); !isTimeout(err) {
		h.t.Fatalf("want nothing, got byte %q, error %v", n, err)
	}
}

// roundTrip sends one request on a fresh connection and returns the response.
func (s *testServer) roundTrip(t testing.TB, req string) (*http.Response, []byte) {
	t.Helper()
	h := s.httpConn(t)
	h.write(req)
	return h.read()
}

// expectResponse asserts status, a JSON content type and the JSON body.
func expectResponse(t testing.TB, resp *http.Response, body []byte, status int, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("want HTTP %d, got %d %s", status, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("want Content-Type application/json, got %q (body %s)", ct, body)
	}
	if want != "" {
		assertJSON(t, "response body", body, want)
	}
}

// expectErrorBody asserts status and a JSON {"error": "<text>"} body (§9.1).
func expectErrorBody(t testing.TB, resp *http.Response, body []byte, status int) {
	t.Helper()
	expectResponse(t, resp, body, status, "")
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	if s, ok := e["error"].(string); !ok || s == "" || len(e) != 1 {
		t.Fatalf(`want body {"error":"…"}, got %s`, body)
	}
}

// eventually polls cond for up to ioTimeout: for state that no message
// announces (e.g. a channel vanishing after a TCP drop).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decodeInto(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", clip([]byte(s)), err)
	}
}
