package loop_test

// Subscriptions, presence, cache and encrypted channels, client events and
// signin through real sockets (PROTOCOL.md §4.2–§4.9, §5).

import (
	"encoding/json"
	"fmt"
	"testing"

	pusherapi "github.com/pusher/pusher-http-go/v5"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// TestSubscribeTypes checks §4.2/§4.4 for every channel type with valid auth.
func TestSubscribeTypes(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	c := s.connect(t)
	for _, ch := range []string{"orders", "privatefoo", "presencefoo", "cachefoo", "a.b-c_d=e@f,g;h"} {
		c.subscribe(ch) // dashless names are public in [S] (§5)
	}
	for _, ch := range []string{"private-orders.1", "private-encrypted-x"} {
		c.subscribePrivate(a, ch)
	}
	c.sync()
}

// TestSubscribeBadAuth checks §4.2 step 2: every wrong signature gets 4009
// "Connection is unauthorized", nothing is subscribed, the socket stays open.
func TestSubscribeBadAuth(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	wrong := s.api(t, func(c *pusherapi.Client) { c.Secret = "not-the-secret" })
	c := s.connect(t)
	other := s.connect(t)
	const priv, pres = "private-bad", "presence-bad"
	goodPres, _ := a.authPresence(t, c.socketID, pres, "1", nil)
	_, otherCD := a.authPresence(t, c.socketID, pres, "2", nil)
	cases := []struct {
		name                 string
		channel, auth, cdata string
		nullAuth, noAuth     bool
	}{
		{name: "wrong secret", channel: priv, auth: wrong.authPrivate(t, c.socketID, priv)},
		{name: "other socket", channel: priv, auth: a.authPrivate(t, other.socketID, priv)},
		{name: "other channel", channel: priv, auth: a.authPrivate(t, c.socketID, "private-other")},
		{name: "empty auth", channel: priv, auth: ""},
		{name: "missing auth", channel: priv, noAuth: true},
		{name: "null auth", channel: priv, nullAuth: true},
		{name: "uppercase hex", channel: priv, auth: upperHex(a.authPrivate(t, c.socketID, priv))},
		{name: "presence channel_data swapped", channel: pres, auth: goodPres, cdata: otherCD},
		{name: "presence channel_data missing", channel: pres, auth: goodPres},
		{name: "private auth on encrypted", channel: "private-encrypted-x", auth: a.authPrivate(t, c.socketID, "private-encrypted-y")},
		{name: "private-cache", channel: "private-cache-x", auth: ""},
		{name: "presence-cache", channel: "presence-cache-x", auth: ""},
		{name: "reserved #", channel: "#foo", auth: ""},
	}
	for _, tc := range cases {
		d := map[string]any{"channel": tc.channel}
		switch {
		case tc.nullAuth:
			d["auth"] = nil
		case !tc.noAuth:
			d["auth"] = tc.auth
		}
		if tc.cdata != "" {
			d["channel_data"] = tc.cdata
		}
		c.sendJSON(map[string]any{"event": "pusher:subscribe", "data": d})
		m := c.expectMsg()
		assertJSON(t, tc.name, m.raw, errorJSON(4009, "Connection is unauthorized"))
	}
	c.sync()
	for _, ch := range []string{priv, pres, "private-encrypted-x", "private-cache-x", "presence-cache-x"} {
		if _, err := a.Channel(ch, pusherapi.ChannelParams{}); err != nil {
			t.Fatal(err)
		}
		a.expectLast(t, 200, `{"occupied":false}`)
	}
	// A correct signature still works on the same socket.
	c.subscribePrivate(a, priv)
}

func upperHex(auth string) string {
	b := []byte(auth)
	for i := len(b) - 1; i >= 0 && b[i] != ':'; i-- {
		if b[i] >= 'a' && b[i] <= 'f' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// TestDuplicateSubscribe checks §4.2: a second subscribe is re-acknowledged,
// counts do not change, presence sends no second member_added.
func TestDuplicateSubscribe(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	c := s.connect(t)
	c.subscribe("dup")
	c.subscribe("dup")
	if _, err := a.Channel("dup", chParams("subscription_count")); err != nil {
		t.Fatal(err)
	}
	a.expectLast(t, 200, `{"occupied":true,"subscription_count":1}`)

	obs := s.connect(t)
	obs.subscribePresence(a, "presence-dup", "obs", nil)
	info := map[string]string{"name": "Ann"}
	m := c.subscribePresence(a, "presence-dup", "1", info)
	assertJSON(t, "first", m.raw, presenceJSON(t, "presence-dup", []string{"obs", "1"}, []any{nil, info}))
	obs.expectJSON(memberAddedJSON(t, "presence-dup", "1", info))
	m = c.subscribePresence(a, "presence-dup", "1", info)
	assertJSON(t, "again", m.raw, presenceJSON(t, "presence-dup", []string{"obs", "1"}, []any{nil, info}))
	c.sync()
	obs.sync()
	obs.expectQuiet()
	if _, err := a.Channel("presence-dup", chParams("user_count")); err != nil {
		t.Fatal(err)
	}
	a.expectLast(t, 200, `{"occupied":true,"user_count":2}`)
}

// TestPresencePayload checks §4.4: count, ids in join order, hash as an
// object (also when ids are 0..n-1), id-less subscriptions left out.
func TestPresencePayload(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	ann := map[string]string{"name": "Ann"}
	bob := map[string]string{"name": "Bob"}

	t.Run("join order", func(t *testing.T) {
		c1 := s.connect(t)
		m := c1.subscribePresence(a, "presence-chat.1", "1", ann)
		assertJSON(t, "alone", m.raw, presenceJSON(t, "presence-chat.1", []string{"1"}, []any{ann}))
		c2 := s.connect(t)
		m = c2.subscribePresence(a, "presence-chat.1", "2", bob)
		assertJSON(t, "two", m.raw, presenceJSON(t, "presence-chat.1", []string{"1", "2"}, []any{ann, bob}))
	})
	t.Run("ids 0..n-1", func(t *testing.T) {
		// ids 0 and 1 would make a PHP array; hash must stay an object.
		z0 := s.connect(t)
		z0.subscribePresence(a, "presence-zero", "0", nil)
		z1 := s.connect(t)
		m := z1.subscribePresence(a, "presence-zero", "1", ann)
		var d struct {
			Presence struct {
				Hash json.RawMessage `json:"hash"`
			} `json:"presence"`
		}
		decodeInto(t, m.dataString(t), &d)
		if len(d.Presence.Hash) == 0 || d.Presence.Hash[0] != '{' {
			t.Errorf("hash must be a JSON object, got %s", d.Presence.Hash)
		}
		assertJSON(t, "ids 0..n-1", m.raw, presenceJSON(t, "presence-zero", []string{"0", "1"}, []any{nil, ann}))
	})
	t.Run("id-less", func(t *testing.T) {
		// A presence subscription without channel_data (signed like a private
		// one) has no user: left out of count/ids/hash, no member events (§4.4, §4.5).
		obs := s.connect(t)
		obs.subscribePresence(a, "presence-anon", "obs", nil)
		anon := s.connect(t)
		anon.sendSubscribe("presence-anon", a.authPrivate(t, anon.socketID, "presence-anon"), "")
		m := anon.expectEvent("pusher_internal:subscription_succeeded")
		assertJSON(t, "id-less", m.raw, presenceJSON(t, "presence-anon", []string{"obs"}, []any{nil}))
		anon2 := s.connect(t)
		anon2.sendSubscribe("presence-anon2", a.authPrivate(t, anon2.socketID, "presence-anon2"), "")
		m = anon2.expectEvent("pusher_internal:subscription_succeeded")
		assertJSON(t, "id-less alone", m.raw, presenceJSON(t, "presence-anon2", nil, nil))
		anon.close()
		obs.sync()
		obs.expectQuiet()
	})
}

// TestPresenceMembership checks §4.5: member_added and member_removed go to
// the others exactly once per user even with two sockets of one user;
// unsubscribe and disconnect behave the same.
func TestPresenceMembership(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	const ch = "presence-room"
	ann := map[string]string{"name": "Ann"}

	obs := s.connect(t)
	obs.subscribePresence(a, ch, "9", nil)

	a1 := s.connect(t)
	m := a1.subscribePresence(a, ch, "1", ann)
	assertJSON(t, "a1", m.raw, presenceJSON(t, ch, []string{"9", "1"}, []any{nil, ann}))
	obs.expectJSON(memberAddedJSON(t, ch, "1", ann))
	a1.sync() // the joiner never gets its own member_added

	a2 := s.connect(t)
	m = a2.subscribePresence(a, ch, "1", ann)
	assertJSON(t, "a2", m.raw, presenceJSON(t, ch, []string{"9", "1"}, []any{nil, ann}))
	a1.sync()

	a1.unsubscribe(ch)
	a1.sync() // no reply to unsubscribe (§4.3)
	obs.sync()
	obs.expectQuiet() // user 1 is still present through a2

	a2.close() // disconnect = unsubscribe
	obs.expectJSON(memberRemovedJSON(t, ch, "1"))
	obs.sync()
	obs.expectQuiet()

	if _, err := a.GetChannelUsers(ch); err != nil {
		t.Fatal(err)
	}
	a.expectLast(t, 200, `{"users":[{"id":"9"}]}`)
}

// TestNoStaleDeliveries checks §4.5/§9.3: a socket that joins after
// another member's join completed never gets that member's member_added
// (it is already in its subscription_succeeded). Repeated on fresh channels
// because the race needs the two sockets on different loops.
func TestNoStaleDeliveries(t *testing.T) {
	t.Parallel()
	s := startDefault(t, func(c *loop.Config) { c.Loops = 4 })
	a := s.api(t)
	t.Run("join", func(t *testing.T) {
		late := s.connect(t)
		for i := range 30 {
			ch := fmt.Sprintf("presence-stale-%d", i)
			first := s.connect(t)
			first.subscribePresence(a, ch, "first", nil)
			m := late.subscribePresence(a, ch, "late", nil)
			assertJSON(t, ch, m.raw, presenceJSON(t, ch, []string{"first", "late"}, []any{nil, nil}))
			late.sync()
		}
		late.expectQuiet()
	})
	t.Run("leave", func(t *testing.T) {
		late := s.connect(t)
		for i := range 30 {
			ch := fmt.Sprintf("presence-left-%d", i)
			first := s.connect(t)
			first.subscribePresence(a, ch, "first", nil)
			first.unsubscribe(ch)
			first.sync()
			m := late.subscribePresence(a, ch, "late", nil)
			assertJSON(t, ch, m.raw, presenceJSON(t, ch, []string{"late"}, []any{nil}))
			late.sync()
		}
		late.expectQuiet()
	})
	t.Run("event before subscribe", func(t *testing.T) {
		// An HTTP event answered before the subscribe is not delivered
		// live to it; a cache channel replays it exactly once.
		late := s.connect(t)
		other := s.connect(t)
		for i := range 30 {
			ch := fmt.Sprintf("cache-race-%d", i)
			pub := fmt.Sprintf("pub-race-%d", i)
			other.subscribe(pub) // occupied, so the event is fanned out
			must(t, a.Trigger(ch, "ev", "before"))
			must(t, a.Trigger(pub, "ev", "before"))
			other.expectAppEvent(pub, "ev", "before")
			late.subscribe(ch)
			late.expectAppEvent(ch, "ev", "before")
			late.subscribe(pub)
			late.sync()
		}
		late.expectQuiet()
	})
}

// TestUnsubscribe checks §4.3: no reply ever, no more events, and the
// channel vanishes when its last subscriber leaves.
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	c := s.connect(t)
	c.unsubscribe("never-joined")
	c.sync()

	c.subscribe("gone")
	c.subscribe("sentinel")
	c.unsubscribe("gone")
	c.sync()
	must(t, a.Trigger("gone", "ev", "x"))
	must(t, a.Trigger("sentinel", "ev", "y"))
	c.expectAppEvent("sentinel", "ev", "y")

	if _, err := a.Channels(pusherapi.ChannelsParams{}); err != nil {
		t.Fatal(err)
	}
	a.expectLast(t, 200, `{"channels":{"sentinel":{}}}`)

	d := s.connect(t)
	d.subscribe("dropped")
	d.close()
	eventually(t, "a disconnected socket's channel to vanish", func() bool {
		if _, err := a.Channel("dropped", pusherapi.ChannelParams{}); err != nil {
			t.Fatal(err)
		}
		_, body := a.last()
		return jsonEqual(body, `{"occupied":false}`)
	})
}

// TestCacheChannels checks §4.6: cache_miss when empty, byte-identical
// replay of the last HTTP event, events to an empty cache channel are
// cached, replay on every subscribe.
func TestCacheChannels(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	const ch = "cache-test-channel"

	first := s.connect(t)
	first.subscribe(ch)
	first.expectJSON(`{"event":"pusher:cache_miss","channel":"cache-test-channel"}`)
	first.sync() // exactly two messages

	must(t, a.Trigger(ch, `App\Events\TestEvent`, `{"foo":"bar"}`))
	live := first.expectAppEvent(ch, `App\Events\TestEvent`, `{"foo":"bar"}`)

	second := s.connect(t)
	second.subscribe(ch)
	replay := second.expectMsg()
	if string(replay.raw) != string(live.raw) {
		t.Fatalf("cache replay must be byte-identical:\n got  %s\n want %s", replay.raw, live.raw)
	}
	second.sync()
	second.subscribe(ch) // a duplicate subscribe replays again
	if again := second.expectMsg(); string(again.raw) != string(live.raw) {
		t.Fatalf("replay after duplicate subscribe: got %s", again.raw)
	}

	// Nobody subscribed: the event is still cached ([S] deviation).
	must(t, a.Trigger("cache-empty", "ev", "cached while empty"))
	late := s.connect(t)
	late.subscribe("cache-empty")
	late.expectAppEvent("cache-empty", "ev", "cached while empty")

	// Client events are not cached ([S], Pusher semantics).
	ce := s.connect(t)
	ce.subscribe("cache-client")
	ce.expectEvent("pusher:cache_miss")
	ce.send(`{"event":"client-x","channel":"cache-client","data":{"a":1}}`)
	ce.sync()
	lc := s.connect(t)
	lc.subscribe("cache-client")
	lc.expectJSON(`{"event":"pusher:cache_miss","channel":"cache-client"}`)

	// Authenticated cache types replay too.
	for _, pc := range []string{"private-cache-x", "private-encrypted-cache-x"} {
		p := s.connect(t)
		p.subscribePrivate(a, pc)
		p.expectJSON(jsonOf(t, map[string]any{"event": "pusher:cache_miss", "channel": pc}))
	}
	pres := s.connect(t)
	pres.subscribePresence(a, "presence-cache-x", "1", nil)
	pres.expectJSON(`{"event":"pusher:cache_miss","channel":"presence-cache-x"}`)
	must(t, a.Trigger("presence-cache-x", "ev", "p"))
	pres.expectAppEvent("presence-cache-x", "ev", "p")
	pres2 := s.connect(t)
	pres2.subscribePresence(a, "presence-cache-x", "2", nil)
	pres2.expectAppEvent("presence-cache-x", "ev", "p")
}

// TestEncryptedChannel checks §4.7: the ciphertext from the SDK reaches
// subscribers unchanged.
func TestEncryptedChannel(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	const ch = "private-encrypted-orders"
	c := s.connect(t)
	c.subscribePrivate(a, ch)
	must(t, a.Trigger(ch, "secret", map[string]string{"card": "4242"}))
	var sent struct {
		Data string `json:"data"`
	}
	decodeInto(t, string(a.lastRequestBody()), &sent)
	var enc struct{ Nonce, Ciphertext string }
	decodeInto(t, sent.Data, &enc)
	if enc.Nonce == "" || enc.Ciphertext == "" {
		t.Fatalf("SDK did not encrypt: %s", sent.Data)
	}
	c.expectAppEvent(ch, "secret", sent.Data)
}

// clientEventApp returns testApp with this client-event policy.
func clientEventApp(mode pusher.ClientEvents) pusher.App {
	app := testApp()
	app.ClientEvents = mode
	return app
}

// TestClientEventsAll checks §4.8 in "all" mode: relayed as-is to the
// others, never echoed, also from a non-subscriber, JSON text preserved.
func TestClientEventsAll(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{clientEventApp(pusher.ClientEventsAll)})
	a := s.api(t)
	sender := s.connect(t)
	recv := s.connect(t)
	for _, ch := range []string{"room", "private-room"} {
		if ch == "room" {
			sender.subscribe(ch)
			recv.subscribe(ch)
		} else {
			sender.subscribePrivate(a, ch)
			recv.subscribePrivate(a, ch)
		}
		msg := `{"event":"client-typing","channel":"` + ch + `","data":{"name":"Ann"},"user_id":"forged"}`
		sender.send(msg)
		recv.expectJSON(msg)
	}
	cases := []struct{ in, out string }{
		{`{"event":"client-a","channel":"room","data":{}}`, `{"event":"client-a","channel":"room","data":{}}`},
		{`{"event":"client-a","channel":"room","data":[]}`, `{"event":"client-a","channel":"room","data":[]}`},
		{`{"event":"client-a","channel":"room","data":{"n":1.0}}`, `{"event":"client-a","channel":"room","data":{"n":1.0}}`},
		{`{"event":"client-a","channel":"room","data":"{\"a\":1}"}`, `{"event":"client-a","channel":"room","data":{"a":1}}`},
		{`{"event":"client-a","channel":"room","data":"hello"}`, `{"event":"client-a","channel":"room","data":"hello"}`},
		{`{"event":"client-a","channel":"room","data":42}`, `{"event":"client-a","channel":"room","data":42}`},
		{`{"event":"client-a","channel":"room"}`, `{"event":"client-a","channel":"room"}`},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			sender.send(tc.in)
			m := recv.expectMsg()
			assertJSON(t, tc.in, m.raw, tc.out)
			if i == 2 {
				var raw struct {
					Data json.RawMessage `json:"data"`
				}
				decodeInto(t, string(m.raw), &raw)
				if string(raw.Data) != `{"n":1.0}` {
					t.Errorf("client data should be forwarded as the original JSON text (§3.3), got %s", raw.Data)
				}
			}
		})
	}
	sender.sync()
	sender.expectQuiet() // never echoed

	// Not subscribed: still relayed in "all" mode.
	outsider := s.connect(t)
	outsider.send(`{"event":"client-x","channel":"room","data":{"o":1}}`)
	recv.expectJSON(`{"event":"client-x","channel":"room","data":{"o":1}}`)
	// No subscribers at all: nothing, no error.
	outsider.send(`{"event":"client-x","channel":"empty-room","data":{}}`)
	outsider.sync()
}

// TestClientEventsMembers checks §4.8 "members": non-members get 4009;
// members' events are rebuilt with event/channel/data and, on presence,
// the sender's user_id.
func TestClientEventsMembers(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{clientEventApp(pusher.ClientEventsMembers)})
	a := s.api(t)
	const pres = "presence-chat.1"
	sender := s.connect(t)
	recv := s.connect(t)
	sender.subscribePresence(a, pres, "1", nil)
	recv.subscribePresence(a, pres, "2", nil)
	sender.expectEvent("pusher_internal:member_added")

	sender.send(`{"event":"client-typing","channel":"presence-chat.1","data":{"name":"Ann"},"user_id":"evil","extra":1}`)
	recv.expectJSON(`{"event":"client-typing","channel":"presence-chat.1","data":{"name":"Ann"},"user_id":"1"}`)
	sender.send(`{"event":"client-typing","channel":"presence-chat.1"}`)
	recv.expectJSON(`{"event":"client-typing","channel":"presence-chat.1","data":null,"user_id":"1"}`)

	sender.subscribe("pub")
	recv.subscribe("pub")
	sender.send(`{"event":"client-typing","channel":"pub","data":{"a":1},"user_id":"evil"}`)
	recv.expectJSON(`{"event":"client-typing","channel":"pub","data":{"a":1}}`)

	outsider := s.connect(t)
	outsider.send(`{"event":"client-typing","channel":"pub","data":{}}`)
	outsider.expectError(4009, "The client is not a member of the specified channel.")
	outsider.sync()
	sender.sync()
	sender.expectQuiet()
	recv.sync()
}

// TestClientEventsDisabled checks §4.8: with any other policy client events
// get 4301 whether or not the sender is subscribed.
func TestClientEventsDisabled(t *testing.T) {
	t.Parallel()
	s := startServer(t, []pusher.App{clientEventApp(pusher.ClientEventsNone)})
	c := s.connect(t)
	r := s.connect(t)
	r.subscribe("room")
	c.send(`{"event":"client-a","channel":"room","data":{}}`)
	c.expectError(4301, "The app does not have client messaging enabled.")
	c.subscribe("room")
	c.send(`{"event":"client-a","channel":"room","data":{}}`)
	c.expectError(4301, "The app does not have client messaging enabled.")
	c.sync()
	r.sync()
	r.expectQuiet()
}

// TestSignin checks §4.9: signin_success payload, bad signin 4009 with the
// socket left open, #server-to-user-{id} only for that id, SendToUser.
func TestSignin(t *testing.T) {
	t.Parallel()
	s := startDefault(t)
	a := s.api(t)
	wrong := s.api(t, func(c *pusherapi.Client) { c.Secret = "nope" })

	c := s.connect(t)
	user := map[string]any{"id": "12345", "user_info": map[string]any{"name": "Ann"}}
	auth, userData := a.authUser(t, c.socketID, user)
	c.sendJSON(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": auth, "user_data": userData}})
	m := c.expectEvent("pusher:signin_success")
	if m.Channel != "" {
		t.Fatalf("signin_success has no channel: %s", m.raw)
	}
	var d map[string]any
	decodeInto(t, m.dataString(t), &d)
	if d["user_data"] != userData || len(d) != 1 {
		t.Fatalf("signin_success data must be {\"user_data\":<the signed string>}, got %s (want user_data %s)", m.dataString(t), userData)
	}
	c.subscribe("#server-to-user-12345")
	must(t, a.SendToUser("12345", "notify", `{"n":1}`))
	c.expectAppEvent("#server-to-user-12345", "notify", `{"n":1}`)

	// Not signed in, signed in as someone else, other # names: 4009.
	x := s.connect(t)
	x.sendSubscribe("#server-to-user-12345", "", "")
	x.expectError(4009, "Connection is unauthorized")
	xa, xd := a.authUser(t, x.socketID, map[string]any{"id": "777"})
	x.sendJSON(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": xa, "user_data": xd}})
	x.expectEvent("pusher:signin_success")
	// Already signed in as 777: signing in as another id fails.
	ya, yd := a.authUser(t, x.socketID, map[string]any{"id": "888"})
	x.sendJSON(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": ya, "user_data": yd}})
	x.expectErrorCode(4009)
	for _, ch := range []string{"#server-to-user-12345", "#server-to-user-888", "#server-to-user-", "#other"} {
		x.sendSubscribe(ch, "", "")
		x.expectError(4009, "Connection is unauthorized")
	}

	// Bad signatures.
	b := s.connect(t)
	ba, bd := wrong.authUser(t, b.socketID, map[string]any{"id": "5"})
	oa, od := a.authUser(t, x.socketID, map[string]any{"id": "5"}) // signed for another socket
	for _, data := range []map[string]any{
		{"auth": ba, "user_data": bd},
		{"auth": oa, "user_data": od},
	} {
		b.sendJSON(map[string]any{"event": "pusher:signin", "data": data})
		b.expectErrorCode(4009)
	}
	// user_data whose id is not a non-empty string is rejected even when signed.
	for _, ud := range []string{`{"id":""}`, `{"id":5}`, `{"name":"x"}`, `not json`} {
		sig := pusherSign(testSecret, b.socketID+"::user::"+ud)
		b.sendJSON(map[string]any{"event": "pusher:signin", "data": map[string]any{"auth": testKey + ":" + sig, "user_data": ud}})
		b.expectErrorCode(4009)
	}
	b.sync()
	b.sendSubscribe("#server-to-user-5", "", "")
	b.expectError(4009, "Connection is unauthorized")
}
