package loop_test

// The HTTP API through the official pusher-http-go SDK and raw sockets
// (PROTOCOL.md §6.3, §8.2, §9), and slow-consumer protection.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/loop"
)

func chParams(info string) pusherapi.ChannelParams { return pusherapi.ChannelParams{Info: &info} }

func strp(s string) *string { return &s }

// TestSignerMatchesSpecVectors proves the two small signing helpers the
// tests use where the SDK has no call (§6.2, §6.3 vectors).
func TestSignerMatchesSpecVectors(t *testing.T) {
	t.Parallel()
	const key, secret = "278d425bdf160c739803", "7ad3773142a6692b25b8"
	sig := func(method, path string, params url.Values, body []byte) string {
		q, err := url.ParseQuery(signQuery(method, path, params, body, key, secret, 1353088179))
		if err != nil {
			t.Fatal(err)
		}
		return q.Get("auth_signature")
	}
	cases := []struct{ got, want string }{
		{sig("GET", "/apps/3/connections", nil, nil), "37023bce146b72320751f497a98d5d47c4b0092cd2c7f231e00be7f6bfa31a07"},
		{sig("POST", "/apps/3/users/42/terminate_connections", nil, []byte("{}")), "2829710742ff5f799010258297d09016e2366257e3e954039eeda349073a2bcf"},
		{sig("GET", "/apps/3/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, nil), "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"},
		{pusherSign(secret, `1234.1234::user::{"id":"12345"}`), "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("vector %d: got %s, want %s", i, c.got, c.want)
		}
	}
}

// TestUp checks §9.10 with and without a prefix.
func TestUp(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	resp, body := s.roundTrip(t, rawRequest("GET", "/up", nil, ""))
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)

	p := startDefault(t, withPathPrefix("/ws"))
	resp, body = p.roundTrip(t, rawRequest("GET", "/ws/up", nil, ""))
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)
	resp, body = p.roundTrip(t, rawRequest("GET", "/up", nil, ""))
	if resp.StatusCode != 404 {
		t.Fatalf("/up outside the prefix: want 404, got %d %s", resp.StatusCode, body)
	}
}

// TestTrigger checks §9.3: {} response, data forwarded verbatim, socket_id
// exclusion, unknown socket ids ignored.
func TestTrigger(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	a := s.connect(t)
	b := s.connect(t)
	a.subscribe("orders")
	b.subscribe("orders")

	for _, data := range []string{`{"some":"data"}`, `not json at all`, `{"b":2, "a":[1.0,"é\/\u2028"]}`, `""`} {
		must(t, api.Trigger("orders", "App\\Events\\OrderShipped", data))
		api.expectLast(t, 200, `{}`)
		if _, body := api.last(); string(body) != "{}" {
			t.Errorf("trigger response must be exactly {} (§9.3), got %s", body)
		}
		a.expectAppEvent("orders", "App\\Events\\OrderShipped", data)
		b.expectAppEvent("orders", "App\\Events\\OrderShipped", data)
	}

	_, err := api.TriggerWithParams("orders", "ev", "excluded", pusherapi.TriggerParams{SocketID: &a.socketID})
	must(t, err)
	b.expectAppEvent("orders", "ev", "excluded")
	must(t, api.Trigger("orders", "ev", "after"))
	a.expectAppEvent("orders", "ev", "after") // a never saw "excluded"
	b.expectAppEvent("orders", "ev", "after")

	_, err = api.TriggerWithParams("orders", "ev", "unknown id", pusherapi.TriggerParams{SocketID: strp("1.1")})
	must(t, err)
	a.expectAppEvent("orders", "ev", "unknown id")
	b.expectAppEvent("orders", "ev", "unknown id")
}

// TestTriggerMulti checks §9.3 with several channels, with exclusion.
func TestTriggerMulti(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	a := s.connect(t)
	b := s.connect(t)
	for _, c := range []*wsClient{a, b} {
		c.subscribe("multi-a")
		c.subscribe("multi-b")
	}
	must(t, api.TriggerMulti([]string{"multi-a", "multi-b", "multi-empty"}, "ev", "d"))
	for _, c := range []*wsClient{a, b} {
		expectOnEach(t, c, []string{"multi-a", "multi-b"}, "ev", "d")
	}
	_, err := api.TriggerMultiWithParams([]string{"multi-a", "multi-b"}, "ev", "x", pusherapi.TriggerParams{SocketID: &a.socketID})
	must(t, err)
	expectOnEach(t, b, []string{"multi-a", "multi-b"}, "ev", "x")
	must(t, api.Trigger("multi-a", "ev", "sentinel"))
	a.expectAppEvent("multi-a", "ev", "sentinel")
}

// expectOnEach reads len(channels) messages, one per channel in any order.
func expectOnEach(t *testing.T, c *wsClient, channels []string, event, data string) {
	t.Helper()
	want := map[string]bool{}
	for _, ch := range channels {
		want[ch] = true
	}
	for range channels {
		m := c.expectMsg()
		if !want[m.Channel] {
			t.Fatalf("unexpected or repeated channel: %s", m.raw)
		}
		delete(want, m.Channel)
		assertAppEvent(t, m, m.Channel, event, data)
	}
}

// TestTriggerInfo checks §9.3 info: counts after dispatch for every listed channel.
func TestTriggerInfo(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	for _, u := range []string{"1", "1", "2"} {
		s.connect(t).subscribePresence(api, "presence-info", u, nil)
	}
	for range 2 {
		s.connect(t).subscribe("pub-info")
	}
	res, err := api.TriggerMultiWithParams([]string{"presence-info", "pub-info", "pub-none"}, "ev", "d",
		pusherapi.TriggerParams{Info: strp("user_count,subscription_count")})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"presence-info":{"user_count":2},"pub-info":{"subscription_count":2},"pub-none":{}}}`)
	if uc := res.Channels["presence-info"].UserCount; uc == nil || *uc != 2 {
		t.Fatalf("SDK view of user_count: %+v", res.Channels)
	}
	_, err = api.TriggerWithParams("pub-info", "ev", "d", pusherapi.TriggerParams{Info: strp("subscription_count")})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"pub-info":{"subscription_count":2}}}`)
}

// TestTriggerBatch checks §9.4: {"batch":{}} without info, one object per
// item with info, items dispatched in order with their own exclusion.
func TestTriggerBatch(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	a := s.connect(t)
	b := s.connect(t)
	a.subscribe("batch-a")
	b.subscribe("batch-a")
	a.subscribePresence(api, "presence-batch", "1", nil)

	t.Run("without info", func(t *testing.T) {
		_, err := api.TriggerBatch([]pusherapi.Event{
			{Channel: "batch-a", Name: "e1", Data: "1"},
			{Channel: "batch-a", Name: "e2", Data: "2", SocketID: &a.socketID},
			{Channel: "presence-batch", Name: "e3", Data: "3"},
		})
		a.expectAppEvent("batch-a", "e1", "1")
		a.expectAppEvent("presence-batch", "e3", "3")
		b.expectAppEvent("batch-a", "e1", "1")
		b.expectAppEvent("batch-a", "e2", "2")
		// Reverb answers {"batch":{}}, which pusher-http-go cannot decode
		// (it wants an array); we answer Pusher's {}, which pusher-php and
		// pusher-http-go both accept (a documented deviation).
		must(t, err)
		api.expectLast(t, 200, `{}`)
	})
	t.Run("with info", func(t *testing.T) {
		res, err := api.TriggerBatch([]pusherapi.Event{
			{Channel: "presence-batch", Name: "e", Data: "x", Info: strp("user_count")},
			{Channel: "batch-a", Name: "e", Data: "y"},
			{Channel: "batch-a", Name: "e", Data: "z", Info: strp("subscription_count,user_count")},
		})
		must(t, err)
		api.expectLast(t, 200, `{"batch":[{"user_count":1},{},{"subscription_count":2}]}`)
		if len(res.Batch) != 3 {
			t.Fatalf("SDK view: %+v", res)
		}
		a.expectAppEvent("presence-batch", "e", "x")
		a.expectAppEvent("batch-a", "e", "y")
		a.expectAppEvent("batch-a", "e", "z")
	})
}

// TestChannels checks §9.5: only occupied channels, {} when empty, prefix
// filter and user_count.
func TestChannels(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	_, err := api.Channels(pusherapi.ChannelsParams{})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{}}`)

	s.connect(t).subscribe("test-channel-one")
	s.connect(t).subscribe("test-channel-two")
	s.connect(t).subscribePresence(api, "presence-p", "1", nil)
	s.connect(t).subscribePresence(api, "presence-p", "1", nil)
	s.connect(t).subscribePresence(api, "presence-p", "2", nil)
	must(t, api.Trigger("cache-unoccupied", "ev", "d")) // cached but not occupied

	_, err = api.Channels(pusherapi.ChannelsParams{})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"test-channel-one":{},"test-channel-two":{},"presence-p":{}}}`)

	res, err := api.Channels(pusherapi.ChannelsParams{FilterByPrefix: strp("presence-"), Info: strp("user_count")})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"presence-p":{"user_count":2}}}`)
	if res.Channels["presence-p"].UserCount != 2 {
		t.Fatalf("SDK view: %+v", res)
	}
	_, err = api.Channels(pusherapi.ChannelsParams{Info: strp("user_count")})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"test-channel-one":{},"test-channel-two":{},"presence-p":{"user_count":2}}}`)
	_, err = api.Channels(pusherapi.ChannelsParams{FilterByPrefix: strp("nothing-")})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{}}`)
}

// TestChannel checks §9.6 for each channel type.
func TestChannel(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	all := "user_count,subscription_count,cache"

	s.connect(t).subscribe("pub")
	s.connect(t).subscribe("pub")
	s.connect(t).subscribePresence(api, "presence-one", "1", nil)
	s.connect(t).subscribePresence(api, "presence-one", "1", nil)
	c := s.connect(t)
	c.subscribe("cache-x")
	c.expectEvent("pusher:cache_miss")

	cases := []struct{ channel, info, want string }{
		{"pub", all, `{"occupied":true,"subscription_count":2}`},
		{"pub", "", `{"occupied":true}`},
		{"presence-one", all, `{"occupied":true,"user_count":1}`},
		{"cache-x", "subscription_count,cache", `{"occupied":true,"subscription_count":1}`},
		{"nobody", all, `{"occupied":false}`},
	}
	for _, tc := range cases {
		p := pusherapi.ChannelParams{}
		if tc.info != "" {
			p = chParams(tc.info)
		}
		_, err := api.Channel(tc.channel, p)
		must(t, err)
		api.expectLast(t, 200, tc.want)
	}

	must(t, api.Trigger("cache-x", "App\\Ev", `{"foo":"bar"}`))
	c.expectAppEvent("cache-x", "App\\Ev", `{"foo":"bar"}`)
	ch, err := api.Channel("cache-x", chParams("subscription_count,cache"))
	must(t, err)
	api.expectLast(t, 200, `{"occupied":true,"subscription_count":1,"cache":{"event":"App\\Ev","data":"{\"foo\":\"bar\"}","channel":"cache-x"}}`)
	if !ch.Occupied || ch.SubscriptionCount != 1 {
		t.Fatalf("SDK view: %+v", ch)
	}
	must(t, api.Trigger("cache-empty", "ev", "d"))
	_, err = api.Channel("cache-empty", chParams("cache"))
	must(t, err)
	api.expectLast(t, 200, `{"occupied":false}`)
}

// TestChannelUsers checks §9.7: 404 unoccupied, 400 non-presence, the list.
func TestChannelUsers(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	_, err := api.GetChannelUsers("presence-nobody")
	if err == nil {
		t.Fatal("unoccupied channel: want an error")
	}
	api.expectLast(t, 404, `{}`)

	s.connect(t).subscribe("public")
	_, err = api.GetChannelUsers("public")
	if err == nil {
		t.Fatal("public channel: want an error")
	}
	api.expectLast(t, 400, `{}`)

	for _, u := range []string{"1", "2", "1", "3"} {
		s.connect(t).subscribePresence(api, "presence-users", u, nil)
	}
	users, err := api.GetChannelUsers("presence-users")
	must(t, err)
	api.expectLast(t, 200, `{"users":[{"id":"1"},{"id":"2"},{"id":"3"}]}`)
	if len(users.List) != 3 || users.List[0].ID != "1" {
		t.Fatalf("SDK view: %+v", users)
	}
}

// TestTerminateConnections checks §9.8/§2.6: every socket of the user (by
// presence user_id or signin) is closed with 4009, others get member_removed.
func TestTerminateConnections(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	api := s.api(t)
	const ch = "presence-term"
	obs := s.connect(t)
	obs.subscribePresence(api, ch, "7", nil)

	byPresence := s.connect(t)
	byPresence.subscribe("some-public")
	byPresence.subscribePresence(api, ch, "42", nil)
	obs.expectJSON(memberAddedJSON(t, ch, "42", nil))

	bySignin := s.connect(t)
	auth, ud := api.authUser(t, bySignin.socketID, map[string]any{"id": "42"})
	bySignin.sendJSON(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": auth, "user_data": ud}})
	bySignin.expectEvent("pusher:signin_success")

	bystander := s.connect(t)
	bystander.subscribePresence(api, "presence-other", "420", nil)

	resp, body := s.roundTrip(t, s.signedRequest("POST", "/apps/"+testAppID+"/users/42/terminate_connections", nil, []byte("{}"), ""))
	expectResponse(t, resp, body, 200, `{}`)

	byPresence.expectClose(4009, "Connection terminated by the application")
	bySignin.expectClose(4009, "Connection terminated by the application")
	obs.expectJSON(memberRemovedJSON(t, ch, "42"))
	obs.sync()
	bystander.sync()

	resp, body = s.roundTrip(t, s.signedRequest("POST", "/apps/"+testAppID+"/users/nobody/terminate_connections", nil, []byte("{}"), ""))
	expectResponse(t, resp, body, 200, `{}`)
}

// TestConnections checks §9.9: every established socket counts once.
func TestConnections(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	get := func() (int, []byte) {
		resp, body := s.roundTrip(t, s.signedRequest("GET", "/apps/"+testAppID+"/connections", nil, nil, ""))
		return resp.StatusCode, body
	}
	st, body := get()
	if st != 200 || !jsonEqual(body, `{"connections":0}`) {
		t.Fatalf(`want 200 {"connections":0}, got %d %s`, st, body)
	}
	a := s.connect(t)
	a.subscribe("x")
	a.subscribe("y")
	s.connect(t)
	s.connect(t)
	st, body = get()
	if st != 200 || !jsonEqual(body, `{"connections":3}`) {
		t.Fatalf(`want 200 {"connections":3}, got %d %s`, st, body)
	}
}

// TestAPIAuth checks §6.3/§9.1: bad signatures are 401, unknown apps 404,
// and the timestamp window when configured.
func TestAPIAuth(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.TimestampWindow = 600 * time.Second })
	good := s.api(t)
	must(t, good.Trigger("c", "ev", "d"))

	for name, mod := range map[string]func(*pusherapi.Client){
		"wrong secret": func(c *pusherapi.Client) { c.Secret = "wrong" },
		"wrong key":    func(c *pusherapi.Client) { c.Key = "other-key" },
	} {
		bad := s.api(t, mod)
		if err := bad.Trigger("c", "ev", "d"); err == nil {
			t.Errorf("%s: trigger succeeded", name)
		}
		if st, body := bad.last(); st != 401 {
			t.Errorf("%s: want 401, got %d %s", name, st, body)
		}
		if _, err := bad.Channels(pusherapi.ChannelsParams{}); err == nil {
			t.Errorf("%s: channels succeeded", name)
		}
		if st, _ := bad.last(); st != 401 {
			t.Errorf("%s: GET want 401, got %d", name, st)
		}
	}
	unknown := s.api(t, func(c *pusherapi.Client) { c.AppID = "9999" })
	if err := unknown.Trigger("c", "ev", "d"); err == nil {
		t.Error("unknown app: trigger succeeded")
	}
	if st, body := unknown.last(); st != 404 {
		t.Errorf("unknown app: want 404, got %d %s", st, body)
	}

	path := "/apps/" + testAppID + "/connections"
	old := signQuery("GET", path, nil, nil, testKey, testSecret, time.Now().Add(-time.Hour).Unix())
	resp, body := s.roundTrip(t, rawRequest("GET", path+"?"+old, nil, ""))
	if resp.StatusCode != 401 {
		t.Errorf("timestamp an hour old with a 600 s window: want 401, got %d %s", resp.StatusCode, body)
	}
	resp, body = s.roundTrip(t, rawRequest("GET", path, nil, ""))
	if resp.StatusCode != 401 {
		t.Errorf("unsigned: want 401, got %d %s", resp.StatusCode, body)
	}

	// body_md5 is recomputed from the body: a tampered body fails (§6.3).
	evPath := "/apps/" + testAppID + "/events"
	signed := signQuery("POST", evPath, nil, []byte(`{"name":"a","channel":"c","data":"1"}`), testKey, testSecret, time.Now().Unix())
	resp, body = s.roundTrip(t, rawRequest("POST", evPath+"?"+signed, []byte(`{"name":"b","channel":"c","data":"1"}`), ""))
	if resp.StatusCode != 401 {
		t.Errorf("tampered body: want 401, got %d %s", resp.StatusCode, body)
	}

	// Window 0 = off ([R]): an old timestamp is accepted.
	off := startDefault(t)
	resp, body = off.roundTrip(t, rawRequest("GET", path+"?"+old, nil, ""))
	expectResponse(t, resp, body, 200, `{"connections":0}`)
}

// TestAPIErrors checks §1/§9.1 statuses and JSON error bodies.
func TestAPIErrors(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	resp, body := s.roundTrip(t, s.signedRequest("GET", "/apps/"+testAppID+"/events", nil, nil, ""))
	expectErrorBody(t, resp, body, 405)
	if !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Errorf("405 must carry Allow: POST, got %q", resp.Header.Get("Allow"))
	}
	resp, body = s.roundTrip(t, rawRequest("GET", "/nothing-here", nil, ""))
	expectErrorBody(t, resp, body, 404)
	resp, body = s.roundTrip(t, rawRequest("GET", "/apps/"+testAppID+"/channels/", nil, ""))
	expectErrorBody(t, resp, body, 404)

	evPath := "/apps/" + testAppID + "/events"
	resp, body = s.roundTrip(t, s.signedRequest("POST", evPath, nil, []byte(`not json`), ""))
	expectResponse(t, resp, body, 400, `{"error":"Invalid JSON body."}`)

	for _, tc := range []struct{ body, field string }{
		{`{"name":"a","channel":"c"}`, "data"},
		{`{"name":"a","data":"d"}`, "channels"},
		{`{"channel":"c","data":"d"}`, "name"},
		{`{"name":"a","channel":"c","data":"d","socket_id":1234}`, "socket_id"},
	} {
		resp, body = s.roundTrip(t, s.signedRequest("POST", evPath, nil, []byte(tc.body), ""))
		expectResponse(t, resp, body, 422, "")
		var bag map[string][]string
		if err := json.Unmarshal(body, &bag); err != nil || len(bag[tc.field]) == 0 {
			t.Errorf("%s: want a 422 validation bag naming %q, got %s", tc.body, tc.field, body)
		}
	}
}

// TestRequestSize checks §8.2: a request over max_request_size is 413.
func TestRequestSize(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.MaxRequestSize = 2000 })
	api := s.api(t)
	if err := api.Trigger("c", "ev", strings.Repeat("x", 2500)); err == nil {
		t.Fatal("oversized trigger succeeded")
	}
	if st, body := api.last(); st != 413 {
		t.Fatalf("want 413, got %d %s", st, body)
	}
	must(t, api.Trigger("c", "ev", "small"))
	api.expectLast(t, 200, `{}`)
}

// TestKeepAlive checks §9.1 [S]: two requests on one connection, two
// pipelined in one write, and Connection: close honoured.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	conns := s.signedRequest("GET", "/apps/"+testAppID+"/connections", nil, nil, "")
	trigger := s.signedRequest("POST", "/apps/"+testAppID+"/events", nil, []byte(`{"name":"ev","channel":"c","data":"d"}`), "")

	h := s.httpConn(t)
	h.write(rawRequest("GET", "/up", nil, ""))
	resp, body := h.read()
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)
	h.write(conns)
	resp, body = h.read()
	expectResponse(t, resp, body, 200, `{"connections":0}`)

	h = s.httpConn(t)
	h.write(trigger + conns + rawRequest("GET", "/up", nil, ""))
	resp, body = h.read()
	expectResponse(t, resp, body, 200, `{}`)
	resp, body = h.read()
	expectResponse(t, resp, body, 200, `{"connections":0}`)
	resp, body = h.read()
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)

	h = s.httpConn(t)
	h.write(rawRequest("GET", "/up", nil, "Connection: close\r\n"))
	resp, body = h.read()
	expectResponse(t, resp, body, 200, `{"health":"OK"}`)
	h.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := h.r.ReadByte(); !isClosedErr(err) {
		t.Fatalf("Connection: close: want EOF, got %v %v", n, err)
	}
}

// TestAPIUnderPrefix checks §6.3: with a prefix the SDK signs /apps/... and
// posts to P/apps/...; /apps/... without the prefix is 404.
func TestAPIUnderPrefix(t *testing.T) {
	t.Parallel()
	s := startDefault(t, withPathPrefix("/ws"))
	api := s.api(t)
	c := s.connect(t)
	c.subscribe("pfx")
	must(t, api.Trigger("pfx", "ev", "d"))
	c.expectAppEvent("pfx", "ev", "d")
	_, err := api.Channels(pusherapi.ChannelsParams{})
	must(t, err)
	api.expectLast(t, 200, `{"channels":{"pfx":{}}}`)

	q := signQuery("GET", "/apps/"+testAppID+"/channels", nil, nil, testKey, testSecret, time.Now().Unix())
	resp, body := s.roundTrip(t, rawRequest("GET", "/apps/"+testAppID+"/channels?"+q, nil, ""))
	if resp.StatusCode != 404 {
		t.Fatalf("without the prefix: want 404, got %d %s", resp.StatusCode, body)
	}
}

// TestSlowConsumer checks that a socket that stops reading is dropped once
// its outbound queue passes MaxOutboundBuffer, while a reading socket on the
// same channel gets every event in order.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) {
		c.MaxOutboundBuffer = 64 << 10
		c.MaxRequestSize = 64 << 10
	})
	api := s.api(t)
	slow := s.connect(t, withRcvBuf(4096))
	slow.subscribe("firehose")
	fast := s.connect(t)
	fast.subscribe("firehose")

	frames := make(chan frame, 10000)
	go func() {
		defer close(frames)
		for {
			f, err := fast.readFrame(3 * ioTimeout)
			if err != nil {
				return
			}
			frames <- f
		}
	}()

	pad := strings.Repeat("p", 8000)
	data := func(i int) string { return fmt.Sprintf("%05d%s", i, pad) }
	sent := 0
	dropped := false
	for sent < 3000 && !dropped {
		must(t, api.Trigger("firehose", "ev", data(sent)))
		sent++
		if sent%10 == 0 {
			ch, err := api.Channel("firehose", chParams("subscription_count"))
			must(t, err)
			dropped = ch.SubscriptionCount == 1
		}
	}
	if !dropped {
		t.Fatalf("slow socket still subscribed after %d events of 8 KB", sent)
	}
	for range 5 { // the channel keeps working after the drop
		must(t, api.Trigger("firehose", "ev", data(sent)))
		sent++
	}

	for i := range sent {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("fast socket ended after %d of %d events", i, sent)
			}
			if f.op != ws.OpText {
				t.Fatalf("fast socket: event %d: got %s", i, f)
			}
			assertAppEvent(t, parseMessage(t, f.payload), "firehose", "ev", data(i))
		case <-time.After(ioTimeout):
			t.Fatalf("fast socket got %d of %d events", i, sent)
		}
	}

	got := 0
	for {
		f, err := slow.readFrame(ioTimeout)
		if err != nil {
			if !isClosedErr(err) {
				t.Fatalf("slow socket: want the connection closed, got %v after %d events", err, got)
			}
			break
		}
		if f.op == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.payload); code != 4100 {
				t.Fatalf("slow consumer: want close 4100, got %s", f)
			}
			slow.expectEOF()
			break
		}
		got++
	}
	if got >= sent {
		t.Fatalf("slow socket received all %d events; it was not dropped", got)
	}
	t.Logf("slow socket dropped after %d sent events, %d delivered to it", sent, got)
}
