package cluster_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	pusherapi "github.com/pusher/pusher-http-go/v5"
)

// joinPresence subscribes c to a presence channel as user with info (SDK
// signature) and returns the member ids of its subscription_succeeded.
func (c *wsClient) joinPresence(api *pusherapi.Client, channel, user string, info map[string]string) []string {
	c.t.Helper()
	auth, err := api.AuthorizePresenceChannel([]byte("socket_id="+url.QueryEscape(c.socketID)+"&channel_name="+url.QueryEscape(channel)),
		pusherapi.MemberData{UserID: user, UserInfo: info})
	if err != nil {
		c.t.Fatalf("AuthorizePresenceChannel: %v", err)
	}
	var a struct {
		Auth        string `json:"auth"`
		ChannelData string `json:"channel_data"`
	}
	_ = json.Unmarshal(auth, &a)
	c.send(`{"event":"pusher:subscribe","data":{"channel":` + jsonString(channel) + `,"auth":` + jsonString(a.Auth) +
		`,"channel_data":` + jsonString(a.ChannelData) + `}}`)
	m := c.expect("pusher_internal:subscription_succeeded", channel)
	var d struct {
		Presence struct {
			Count int                        `json:"count"`
			IDs   []string                   `json:"ids"`
			Hash  map[string]json.RawMessage `json:"hash"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(m.dataString()), &d); err != nil {
		c.t.Fatalf("%s: bad member list %s", c.name, m.raw)
	}
	if d.Presence.Count != len(d.Presence.IDs) || len(d.Presence.Hash) != len(d.Presence.IDs) {
		c.t.Fatalf("%s: inconsistent member list %s", c.name, m.raw)
	}
	ids := slices.Clone(d.Presence.IDs)
	slices.Sort(ids)
	return ids
}

// expectMember waits for member_added or member_removed of user.
func (c *wsClient) expectMember(event, channel, user string) {
	c.t.Helper()
	c.expectMemberWithin(event, channel, user, ioTimeout)
}

// expectMemberWithin is expectMember with its own wait.
func (c *wsClient) expectMemberWithin(event, channel, user string, within time.Duration) {
	c.t.Helper()
	m, ok := c.next(within)
	if !ok {
		c.t.Fatalf("%s: waited %v for %s of %q: nothing", c.name, within, event, user)
	}
	if m.Event != "pusher_internal:"+event || m.Channel != channel {
		c.t.Fatalf("%s: got %s, want %s of %q on %q", c.name, m.raw, event, user, channel)
	}
	var d struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(m.dataString()), &d); err != nil || d.UserID != user {
		c.t.Fatalf("%s: got %s, want %s of %q", c.name, m.raw, event, user)
	}
}

func (n *node) userCount(channel string) int {
	n.t.Helper()
	info := "user_count,subscription_count"
	ch, err := n.api.Channel(channel, pusherapi.ChannelParams{Info: &info})
	if err != nil {
		n.t.Fatalf("GET /channels/%s on %s: %v", channel, n.name, err)
	}
	return ch.UserCount
}

func (n *node) users(channel string) []string {
	n.t.Helper()
	us, err := n.api.GetChannelUsers(channel)
	if err != nil {
		n.t.Fatalf("GET /channels/%s/users on %s: %v", channel, n.name, err)
	}
	var ids []string
	for _, u := range us.List {
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	return ids
}

// channelNames asks n's GET /channels and returns the names, sorted.
func (n *node) channelNames() []string {
	n.t.Helper()
	list, err := n.api.Channels(pusherapi.ChannelsParams{})
	if err != nil {
		n.t.Fatalf("GET /channels on %s: %v", n.name, err)
	}
	var names []string
	for name := range list.Channels {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// presencePair starts Redis and nodes A and B with ann joined to room on A
// and bob on B, and waits until A announced bob.
func presencePair(t *testing.T, room string, opts ...nodeOpt) (r *redisServer, a, b *node, a1, b1 *wsClient) {
	t.Helper()
	r, nodes := startCluster(t, 2, opts...)
	a, b = nodes[0], nodes[1]
	a1, b1 = a.connect("a1"), b.connect("b1")
	a1.joinPresence(a.api, room, "ann", nil)
	b1.joinPresence(b.api, room, "bob", nil)
	a1.expectMember("member_added", room, "bob")
	return r, a, b, a1, b1
}

// TestPresenceAcrossNodes: one member list for the whole cluster, and
// member_added/member_removed once per user, also when a user has sockets
// on two nodes.
func TestPresenceAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room = "presence-room"
	a1, b1, c1, c2 := a.connect("a1"), b.connect("b1"), c.connect("c1"), c.connect("c2")

	if got := a1.joinPresence(a.api, room, "ann", map[string]string{"name": "Ann"}); !slices.Equal(got, []string{"ann"}) {
		t.Fatalf("first member sees %v", got)
	}
	if got := b1.joinPresence(b.api, room, "bob", nil); !slices.Equal(got, []string{"ann", "bob"}) {
		t.Fatalf("member on B sees %v, want ann (on A) and bob", got)
	}
	a1.expectMember("member_added", room, "bob")

	// ann again, from a socket on C: already a member, so nobody hears of it.
	if got := c1.joinPresence(c.api, room, "ann", nil); !slices.Equal(got, []string{"ann", "bob"}) {
		t.Fatalf("ann's second socket (on C) sees %v", got)
	}
	if got := c2.joinPresence(c.api, room, "cy", nil); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("cy on C sees %v", got)
	}
	a1.expectMember("member_added", room, "cy")
	b1.expectMember("member_added", room, "cy")
	c1.expectMember("member_added", room, "cy")
	a1.expectQuiet()
	b1.expectQuiet()

	for _, n := range nodes {
		if got := n.userCount(room); got != 3 {
			t.Fatalf("user_count on %s = %d, want 3", n.name, got)
		}
		if got := n.users(room); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
			t.Fatalf("users on %s = %v", n.name, got)
		}
	}

	// ann leaves A but is still on C: no member_removed anywhere.
	a1.send(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	b1.expectQuiet()
	c2.expectQuiet()
	// ann's last socket goes: everyone still there hears it once.
	c1.conn.Close()
	b1.expectMember("member_removed", room, "ann")
	c2.expectMember("member_removed", room, "ann")
	b1.expectQuiet()
	c2.expectQuiet()
	for _, n := range nodes {
		if got := n.users(room); !slices.Equal(got, []string{"bob", "cy"}) {
			t.Fatalf("users on %s after ann left = %v", n.name, got)
		}
	}
}

// TestPresenceSurvivesRedisRestart: Redis loses every key; the nodes write
// their members back when it returns, and a node joining later sees them.
func TestPresenceSurvivesRedisRestart(t *testing.T) {
	const room = "presence-lobby"
	r, _, _, a1, b1 := presencePair(t, room)

	r.stop()
	r.start() // empty: no persistence
	waitNumSub(t, r, redisChannel(room), 2)
	// Both nodes write their members back once they hear from Redis again.
	rc := r.client(t)
	key := presenceKey(room)
	deadline := time.Now().Add(ioTimeout)
	for !rc.HExists(context.Background(), key, "A\nann").Val() || !rc.HExists(context.Background(), key, "B\nbob").Val() {
		if time.Now().After(deadline) {
			t.Fatalf("members not written back: %v", rc.HGetAll(context.Background(), key).Val())
		}
		time.Sleep(20 * time.Millisecond)
	}

	c := startNode(t, r, "C")
	waitNumSub(t, r, controlChannel(), 3)
	c1 := c.connect("c1")
	if got := c1.joinPresence(c.api, room, "cy", nil); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("a node joining after Redis lost its data sees %v", got)
	}
	a1.expectMember("member_added", room, "cy")
	b1.expectMember("member_added", room, "cy")
	// Members that never left were not announced again.
	a1.expectQuiet()
	b1.expectQuiet()
}

// TestCacheChannelAcrossNodes: a node whose first subscriber arrives after
// the event was published elsewhere replays it.
func TestCacheChannelAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a.trigger("cache-news", "headline", "first")
	b1 := b.connect("b1")
	b1.subscribe("cache-news")
	b1.expectData("headline", "cache-news", "first")
	b2 := b.connect("b2")
	b2.send(`{"event":"pusher:subscribe","data":{"channel":"cache-empty"}}`)
	b2.expect("pusher_internal:subscription_succeeded", "cache-empty")
	b2.expect("pusher:cache_miss", "cache-empty")
}

// TestChannelCountsAcrossNodes: subscription_count, occupied and the
// channel list count every node's sockets, asked on any node.
func TestChannelCountsAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.connect("a1").subscribe("news")
	a.connect("a2").subscribe("news")
	b.connect("b1").subscribe("news")
	c.connect("c1").subscribe("sports")
	// Every node must have heard the others' heartbeats to wait for them.
	waitConnections(t, nodes, 4, time.Now(), ioTimeout)

	info := "subscription_count"
	for _, n := range nodes {
		ch, err := n.api.Channel("news", pusherapi.ChannelParams{Info: &info})
		if err != nil {
			t.Fatal(err)
		}
		if !ch.Occupied || ch.SubscriptionCount != 3 {
			t.Fatalf("news on %s: occupied %v, subscription_count %d, want true, 3", n.name, ch.Occupied, ch.SubscriptionCount)
		}
		empty, err := n.api.Channel("nobody", pusherapi.ChannelParams{Info: &info})
		if err != nil {
			t.Fatal(err)
		}
		if empty.Occupied || empty.SubscriptionCount != 0 {
			t.Fatalf("nobody on %s: %+v", n.name, empty)
		}
		if names := n.channelNames(); !slices.Equal(names, []string{"news", "sports"}) {
			t.Fatalf("channels on %s = %v", n.name, names)
		}
	}
}

// TestPresenceLeavesWithCleanStop: a node that shuts down removes its
// members at once, not after its heartbeats expire (3 s).
func TestPresenceLeavesWithCleanStop(t *testing.T) {
	const room = "presence-stop"
	_, _, b, a1, _ := presencePair(t, room)

	stopped := time.Now()
	b.shutdown()
	a1.expectMember("member_removed", room, "bob")
	if d := time.Since(stopped); d >= 2*time.Second {
		t.Fatalf("member_removed %v after the stop: waited for heartbeat expiry", d)
	}
}
