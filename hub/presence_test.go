package hub

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/goreverb/reverb/pusher"
)

// newClusteredHub is a hub with loops loops whose broker records what it is
// told, as on a node of a cluster.
func newClusteredHub(t *testing.T, loops int) (*testHub, *recordingBroker) {
	t.Helper()
	a := pusher.App{ID: "1", Key: "key", Secret: "secret"}
	apps, _ := pusher.NewAppSet([]pusher.App{a})
	br := &recordingBroker{}
	h := New(Options{Apps: apps, Loops: loops, Frame: rawFrame, Broker: br})
	th := &testHub{h: h, app: apps.ByKey("key")}
	for i := range loops {
		th.l = append(th.l, h.Local(i))
		th.l[i].Bind(&manualPoster{})
	}
	return th, br
}

// data decodes an event's data string.
func data(ev map[string]any) map[string]any {
	var d map[string]any
	if s, ok := ev["data"].(string); ok {
		_ = json.Unmarshal([]byte(s), &d)
	}
	return d
}

func memberIDs(t *testing.T, ev map[string]any) string {
	t.Helper()
	var ids []string
	for _, id := range data(ev)["presence"].(map[string]any)["ids"].([]any) {
		ids = append(ids, id.(string))
	}
	return strings.Join(ids, ",")
}

func eventSummary(evs []map[string]any) string {
	var out []string
	for _, e := range evs {
		s := e["event"].(string)
		if d := data(e); d != nil {
			if u, ok := d["user_id"]; ok {
				s += ":" + u.(string)
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestPresenceFromOtherNodes: members reported by other nodes join the list,
// a user on two nodes is announced once, a snapshot corrects the list with
// events only for differences, and a node that went away takes its users
// with it. Changes that happen while a subscription waits for its snapshot
// reach it only through its member list.
func TestPresenceFromOtherNodes(t *testing.T) {
	th, br := newClusteredHub(t, 1)
	h := th.h
	x := th.connect(t, 0)
	th.joinPresence(t, x, "presence-r", "xu")
	// Other nodes' reports before the snapshot: applied, but x is pending.
	h.PresenceRemote("1", "presence-r", RemoteMember{Node: "B", Key: "bu", ID: []byte(`"bu"`), Info: []byte(`null`)}, true)
	th.drain()
	if evs := x.c.events(t); len(evs) != 0 {
		t.Fatalf("a pending subscriber got %s", eventSummary(evs))
	}
	h.PresenceSnapshot("1", "presence-r", []RemoteMember{
		{Node: "B", Key: "bu", ID: []byte(`"bu"`), Info: []byte(`null`)},
		{Node: "C", Key: "cu", ID: []byte(`"cu"`), Info: []byte(`{"n":1}`)},
	}, []string{"B", "C"})
	th.drain()
	evs := x.c.events(t)
	if len(evs) != 1 || memberIDs(t, evs[0]) != "xu,bu,cu" {
		t.Fatalf("after the snapshot x got %s", eventSummary(evs))
	}
	br.mu.Lock()
	if got := strings.Join(br.presence, "|"); got != `1 presence-r xu "xu" {"name":"uxu"} true` {
		t.Fatalf("broker told %q", got)
	}
	br.mu.Unlock()

	// cu also on B: nothing to announce; gone from C: still there via B.
	h.PresenceRemote("1", "presence-r", RemoteMember{Node: "B", Key: "cu", ID: []byte(`"cu"`), Info: []byte(`null`)}, true)
	h.PresenceRemote("1", "presence-r", RemoteMember{Node: "C", Key: "cu"}, false)
	// A repeated report changes nothing.
	h.PresenceRemote("1", "presence-r", RemoteMember{Node: "B", Key: "bu", ID: []byte(`"bu"`), Info: []byte(`null`)}, true)
	th.drain()
	if evs := x.c.events(t); len(evs) != 0 {
		t.Fatalf("x got %s", eventSummary(evs))
	}
	// A snapshot in which D's list is not known complete keeps D's users;
	// B's complete list no longer has bu.
	h.PresenceRemote("1", "presence-r", RemoteMember{Node: "D", Key: "du", ID: []byte(`"du"`), Info: []byte(`null`)}, true)
	h.PresenceSnapshot("1", "presence-r", []RemoteMember{{Node: "B", Key: "cu", ID: []byte(`"cu"`), Info: []byte(`null`)}}, []string{"B"})
	th.drain()
	if got := eventSummary(x.c.events(t)); got != "pusher_internal:member_added:du pusher_internal:member_removed:bu" {
		t.Fatalf("x got %q", got)
	}
	if n := h.Channel(th.app, "presence-r").UserCount; n != 3 {
		t.Fatalf("user_count = %d, want 3 (xu, cu, du)", n)
	}
	// B stops answering: cu goes; D's du stays.
	h.PresenceNodeGone("B")
	th.drain()
	if got := eventSummary(x.c.events(t)); got != "pusher_internal:member_removed:cu" {
		t.Fatalf("after B went x got %q", got)
	}
	// The local user leaving is reported, announced locally only if no
	// other node has it.
	y := th.connect(t, 0)
	th.joinPresence(t, y, "presence-r", "du")
	th.drain()
	if evs := y.c.events(t); len(evs) != 1 || memberIDs(t, evs[0]) != "xu,du" {
		t.Fatalf("y got %s", eventSummary(evs))
	}
	y.send(`{"event":"pusher:unsubscribe","data":{"channel":"presence-r"}}`)
	th.drain()
	if evs := x.c.events(t); len(evs) != 0 {
		t.Fatalf("du left this node but is on D: x got %s", eventSummary(evs))
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if got := br.presence[len(br.presence)-2:]; got[0] != `1 presence-r du "du" {"name":"udu"} true` || got[1] != `1 presence-r du "du" null false` {
		t.Fatalf("broker told %q", got)
	}
}
