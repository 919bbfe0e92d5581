package hub

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/goreverb/reverb/pusher"
)

func subMsg(channel string) string {
	return `{"event":"pusher:subscribe","data":{"channel":"` + channel + `"}}`
}

func unsubMsg(channel string) string {
	return `{"event":"pusher:unsubscribe","data":{"channel":"` + channel + `"}}`
}

// TestSubscriptionIndexFollowsEveryChange: across the size where a socket's
// subscriptions get a name index (and lose it again), every lookup finds
// exactly the channels the socket is on, in whatever order they were left.
func TestSubscriptionIndexFollowsEveryChange(t *testing.T) {
	th := newTestHub(t, 1, func(a *pusher.App) { a.MaxChannels = -1 })
	cl := th.connect(t, 0)
	cl.c.record = false
	on := map[string]bool{}
	check := func(when string) {
		t.Helper()
		if cl.s.SubscriptionCount() != len(on) {
			t.Fatalf("%s: %d subscriptions, want %d", when, cl.s.SubscriptionCount(), len(on))
		}
		for i := range 3 * indexFrom {
			name := "c" + strconv.Itoa(i)
			if got := cl.s.findSub([]byte(name)) >= 0; got != on[name] {
				t.Fatalf("%s: findSub(%s) = %v, want %v", when, name, got, on[name])
			}
			if i := cl.s.findSub([]byte(name)); i >= 0 && cl.s.subs[i].ch.name != name {
				t.Fatalf("%s: findSub(%s) points at %s", when, name, cl.s.subs[i].ch.name)
			}
		}
	}
	for i := range 3 * indexFrom {
		name := "c" + strconv.Itoa(i)
		cl.send(subMsg(name))
		on[name] = true
		check("subscribing " + name)
	}
	if cl.s.index == nil {
		t.Fatal("no index at 3×indexFrom subscriptions")
	}
	// Leave from the middle, the front and the back, so moved entries are
	// re-indexed, down to below the point where the index is dropped.
	for k := 0; len(on) > 2; k++ {
		var name string
		switch k % 3 {
		case 0:
			name = cl.s.subs[len(cl.s.subs)/2].ch.name
		case 1:
			name = cl.s.subs[0].ch.name
		default:
			name = cl.s.subs[len(cl.s.subs)-1].ch.name
		}
		cl.send(unsubMsg(name))
		delete(on, name)
		check("unsubscribing " + name)
	}
	if cl.s.index != nil {
		t.Fatal("index kept with 2 subscriptions")
	}
	th.l[0].Closed(&cl.s)
	th.drain()
}

// TestChannelCapRefusesAndKeepsTheRest: at the app's cap a subscribe to one
// more channel gets pusher:error 4303 and changes nothing; a repeated
// subscribe to a channel the socket is on is still acknowledged, and after
// an unsubscribe there is room for one again.
func TestChannelCapRefusesAndKeepsTheRest(t *testing.T) {
	th := newTestHub(t, 1, func(a *pusher.App) { a.MaxChannels = 3 })
	cl := th.connect(t, 0)
	for _, c := range []string{"a", "b", "c"} {
		cl.send(subMsg(c))
	}
	th.drain()
	if got := strings.Join(names(cl.c.events(t)), ","); got != strings.Repeat("pusher_internal:subscription_succeeded,", 2)+"pusher_internal:subscription_succeeded" {
		t.Fatalf("first three subscribes: %s", got)
	}
	cl.send(subMsg("d"))
	evs := cl.c.events(t)
	if len(evs) != 1 || evs[0]["event"] != "pusher:error" || !strings.Contains(evs[0]["data"].(string), `"code":4303`) {
		t.Fatalf("subscribe over the cap got %v", evs)
	}
	if n := th.h.Counters().RefusedSubscriptions.Load(); n != 1 {
		t.Fatalf("RefusedSubscriptions = %d, want 1", n)
	}
	if cl.c.closed != 0 {
		t.Fatalf("socket closed with %d", cl.c.closed)
	}
	cl.send(subMsg("b")) // already on it: acknowledged again
	th.h.Publish(th.app, []string{"a", "b", "c", "d"}, "Ev", []byte("x"), "")
	th.drain()
	got := cl.c.events(t)
	var seen []string
	for _, ev := range got {
		seen = append(seen, fmt.Sprint(ev["event"], "/", ev["channel"]))
	}
	if strings.Join(seen, " ") != "pusher_internal:subscription_succeeded/b Ev/a Ev/b Ev/c" {
		t.Fatalf("after the refusal: %v", seen)
	}
	cl.send(unsubMsg("a"))
	cl.send(subMsg("d"))
	th.drain()
	if got := names(cl.c.events(t)); len(got) != 1 || got[0] != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe after an unsubscribe at the cap: %v", got)
	}
}

// TestClusteredAckOnLoopsBeyond64: the set of loops waiting for a channel
// to be ready covers any loop count (it was one 64-bit word).
func TestClusteredAckOnLoopsBeyond64(t *testing.T) {
	const loops = 130
	th, _ := newClusteredHub(t, loops)
	var cls []*client
	for _, i := range []int{0, 63, 64, 100, 129} {
		cl := th.connect(t, i)
		cl.send(subMsg("room"))
		cls = append(cls, cl)
	}
	th.drain()
	th.h.InterestReady("1", "room")
	th.drain()
	for i, cl := range cls {
		if got := names(cl.c.events(t)); len(got) != 1 || got[0] != "pusher_internal:subscription_succeeded" {
			t.Fatalf("socket %d: %v", i, got)
		}
	}
}

// BenchmarkSubscribeUnsubscribe: one socket already on `held` channels
// subscribes to one more and leaves it again. The cost must not grow with
// held (the socket's subscriptions were scanned linearly).
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	for _, held := range []int{0, 10, 100, 10_000} {
		b.Run("held="+strconv.Itoa(held), func(b *testing.B) {
			th := newTestHub(b, 1, func(a *pusher.App) { a.MaxChannels = -1 })
			cl := th.connect(b, 0)
			cl.c.record = false
			for i := range held {
				cl.send(subMsg("held-" + strconv.Itoa(i)))
				th.l[0].ResetScratch()
			}
			if cl.s.SubscriptionCount() != held {
				b.Fatalf("on %d channels, want %d", cl.s.SubscriptionCount(), held)
			}
			sub := []byte(subMsg("extra"))
			unsub := []byte(unsubMsg("extra"))
			// The name lookup of a miss scans everything without an index.
			miss := []byte(unsubMsg("not-there"))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cl.loop.Message(&cl.s, sub)
				cl.loop.Message(&cl.s, miss)
				cl.loop.Message(&cl.s, unsub)
				th.l[0].ResetScratch()
			}
		})
	}
}
