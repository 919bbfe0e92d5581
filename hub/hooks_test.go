package hub

import (
	"fmt"
	"slices"
	"testing"

	"github.com/goreverb/reverb/pusher"
)

// recordingHooks records what the hub reports, as "kind channel args".
type recordingHooks struct{ got []string }

func (r *recordingHooks) Occupancy(app *pusher.App, channel string, on bool) {
	r.got = append(r.got, fmt.Sprintf("occupancy %s %v", channel, on))
}

func (r *recordingHooks) Member(app *pusher.App, channel, user string, on bool) {
	r.got = append(r.got, fmt.Sprintf("member %s %s %v", channel, user, on))
}

func (r *recordingHooks) SubscriptionCount(app *pusher.App, channel string, n int) {
	r.got = append(r.got, fmt.Sprintf("count %s %d", channel, n))
}

func (r *recordingHooks) ClientEvent(app *pusher.App, channel, event string, data []byte, socketID, userID string) {
	r.got = append(r.got, fmt.Sprintf("client %s %s %s %s", channel, event, data, userID))
}

func (r *recordingHooks) CacheMiss(app *pusher.App, channel string) {
	r.got = append(r.got, "miss "+channel)
}

func newHookedHub(t *testing.T, events pusher.HookMask) (*testHub, *recordingHooks) {
	t.Helper()
	a := pusher.App{ID: "1", Key: "key", Secret: "secret", ClientEvents: pusher.ClientEventsMembers,
		Webhooks: []pusher.Webhook{{URL: "http://127.0.0.1:1/", Events: events}}}
	apps, _ := pusher.NewAppSet([]pusher.App{a})
	rec := &recordingHooks{}
	h := New(Options{Apps: apps, Loops: 2, Frame: rawFrame, Hooks: rec})
	th := &testHub{h: h, app: apps.ByKey("key")}
	for i := range 2 {
		th.l = append(th.l, h.Local(i))
		th.l[i].Bind(&manualPoster{})
	}
	return th, rec
}

// TestHooksReportNodeTransitions: the hub reports the first/last subscriber
// of a channel and the first/last socket of a presence user, whatever the
// loop, plus counts, cache misses and client events with the sender's user.
func TestHooksReportNodeTransitions(t *testing.T) {
	th, rec := newHookedHub(t, 0) // 0 = every event
	a, b := th.connect(t, 0), th.connect(t, 1)
	th.joinPresence(t, a, "presence-r", "7")
	th.joinPresence(t, b, "presence-r", "7")
	b.send(`{"event":"client-x","channel":"presence-r","data":{"k":1}}`)
	a.send(`{"event":"pusher:subscribe","data":{"channel":"cache-c"}}`)
	a.send(`{"event":"pusher:subscribe","data":{"channel":"pub"}}`)
	b.send(`{"event":"pusher:subscribe","data":{"channel":"pub"}}`)
	th.h.Local(0).Closed(&a.s)
	th.h.Local(1).Closed(&b.s)
	th.drain()
	want := []string{
		"occupancy presence-r true", "member presence-r 7 true",
		`client presence-r client-x {"k":1} 7`,
		"occupancy cache-c true", "count cache-c 1", "miss cache-c",
		"occupancy pub true", "count pub 1", "count pub 2",
		// a closes: its channels in reverse order of subscription
		"count pub 1", "count cache-c 0", "occupancy cache-c false",
		// b closes
		"count pub 0", "occupancy pub false", "member presence-r 7 false", "occupancy presence-r false",
	}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("hooks\n got %q\nwant %q", rec.got, want)
	}
}

// TestHooksOnlyWhenWanted: an app whose webhooks want only member events
// never reaches the hooks for client events, cache misses or counts.
func TestHooksOnlyWhenWanted(t *testing.T) {
	th, rec := newHookedHub(t, pusher.HookMask(0).With(pusher.HookMemberAdded))
	a := th.connect(t, 0)
	a.send(`{"event":"pusher:subscribe","data":{"channel":"cache-c"}}`)
	th.joinPresence(t, a, "presence-r", "7")
	a.send(`{"event":"client-x","channel":"presence-r","data":{}}`)
	want := []string{"occupancy cache-c true", "occupancy presence-r true", "member presence-r 7 true"}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("hooks %q, want %q", rec.got, want)
	}
}

// BenchmarkClientEventWebhooks: a whisper relayed to 100 sockets of an app
// with no webhooks, with webhooks that do not want client_event (one bit
// test), and with ones that do (the hook is called once per event, never
// per receiver).
func BenchmarkClientEventWebhooks(b *testing.B) {
	for _, c := range []struct {
		name  string
		hooks []pusher.Webhook
	}{
		{"none", nil},
		{"members-only", []pusher.Webhook{{URL: "http://x/", Events: pusher.HookMask(0).With(pusher.HookMemberAdded)}}},
		{"client_event", []pusher.Webhook{{URL: "http://x/", Events: pusher.HookMask(0).With(pusher.HookClientEvent)}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			a := pusher.App{ID: "1", Key: "key", Secret: "secret", ClientEvents: pusher.ClientEventsMembers, Webhooks: c.hooks}
			apps, _ := pusher.NewAppSet([]pusher.App{a})
			h := New(Options{Apps: apps, Loops: 1, Frame: rawFrame, Hooks: nopHooks{}})
			th := &testHub{h: h, app: apps.ByKey("key"), l: []*Local{h.Local(0)}}
			th.l[0].Bind(&manualPoster{})
			var sender *client
			for range 100 {
				cl := th.connect(b, 0)
				cl.c.record = false
				cl.send(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
				sender = cl
			}
			msg := []byte(`{"event":"client-typing","channel":"room","data":{"name":"Ann"}}`)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				sender.loop.Message(&sender.s, msg)
				th.drain()
			}
		})
	}
}

type nopHooks struct{}

func (nopHooks) Occupancy(*pusher.App, string, bool)                             {}
func (nopHooks) Member(*pusher.App, string, string, bool)                        {}
func (nopHooks) SubscriptionCount(*pusher.App, string, int)                      {}
func (nopHooks) ClientEvent(*pusher.App, string, string, []byte, string, string) {}
func (nopHooks) CacheMiss(*pusher.App, string)                                   {}
