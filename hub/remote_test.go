package hub

import (
	"testing"

	"github.com/goreverb/reverb/pusher"
)

func localCounts(h *Hub) map[string]int64 {
	m := make(map[string]int64)
	h.LocalConnections(func(appID string, n int64) { m[appID] += n })
	return m
}

func TestRemoteConnectionsAddToLocalCount(t *testing.T) {
	th := newTestHub(t, 2, nil)
	a, _ := th.connect(t, 0), th.connect(t, 1)
	if got := th.h.Connections(th.app); got != 2 {
		t.Fatalf("Connections = %d with 2 local sockets, want 2", got)
	}
	th.h.SetRemoteConnections(th.app.ID, 5)
	if got := th.h.Connections(th.app); got != 7 {
		t.Fatalf("Connections = %d with 2 local + 5 remote, want 7", got)
	}
	// The broker is told only this node's own sockets.
	if got := localCounts(th.h); len(got) != 1 || got[th.app.ID] != 2 {
		t.Fatalf("LocalConnections = %v, want only this node's 2", got)
	}
	a.loop.Closed(&a.s)
	th.h.SetRemoteConnections(th.app.ID, 3)
	if got := th.h.Connections(th.app); got != 4 {
		t.Fatalf("Connections = %d with 1 local + 3 remote, want 4", got)
	}
	if got := localCounts(th.h)[th.app.ID]; got != 1 {
		t.Fatalf("LocalConnections = %d after a close, want 1", got)
	}
	// A report for an app this node does not know changes nothing.
	th.h.SetRemoteConnections("no-such-app", 9)
	th.h.SetRemoteConnections(th.app.ID, 0)
	if got := th.h.Connections(th.app); got != 1 {
		t.Fatalf("Connections = %d after remote dropped to 0, want 1", got)
	}
}

func TestMaxConnectionsCountsRemoteSockets(t *testing.T) {
	th := newTestHub(t, 2, func(a *pusher.App) { a.MaxConnections = 3 })
	th.connect(t, 0)
	th.h.SetRemoteConnections(th.app.ID, 2)

	var s Session
	var c fakeConn
	c.record = true
	if th.l[1].Open(&s, &c, "key", nil) {
		t.Fatal("a 4th socket (1 local + 2 remote) was accepted with max_connections 3")
	}
	if c.closed != pusher.ErrOverQuota.Code {
		t.Fatalf("closed with %d, want %d", c.closed, pusher.ErrOverQuota.Code)
	}
	if evs := c.events(t); len(evs) != 1 || evs[0]["event"] != "pusher:error" {
		t.Fatalf("rejected socket got %v, want one pusher:error", evs)
	}
	if got := th.h.Connections(th.app); got != 3 {
		t.Fatalf("Connections = %d after a rejection, want 3", got)
	}

	// A remote node losing a socket frees the slot here.
	th.h.SetRemoteConnections(th.app.ID, 1)
	th.connect(t, 1)
	if got := th.h.Connections(th.app); got != 3 {
		t.Fatalf("Connections = %d, want 3", got)
	}
}
