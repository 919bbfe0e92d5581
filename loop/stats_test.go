package loop

import (
	"testing"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

// countingConn stands in for the loop's conn on the hub side: each frame
// the hub hands it is counted the way conn.Send counts it.
type countingConn struct {
	lc *loopCtx
	cn *conn
}

func (c *countingConn) Send([]byte)       { c.lc.countSent(c.cn) }
func (c *countingConn) Close(int, string) {}

type nopPoster struct{}

func (nopPoster) Wake() {}

// TestStatsCountingDoesNotAllocatePerReceiver: a publish drained to n
// sockets, each frame counted per app, the deliveries observed in the
// latency histogram and everything folded into the server's atomics costs
// the same allocations for 10 receivers as for 2,000, and the folded
// totals are exact.
func TestStatsCountingDoesNotAllocatePerReceiver(t *testing.T) {
	rig := func(n int) (*hub.Hub, *loopCtx, *pusher.App) {
		apps, err := pusher.NewAppSet([]pusher.App{
			pusher.App{ID: "1", Key: "k1", Secret: "s"}.WithDefaults(),
			pusher.App{ID: "2", Key: "k2", Secret: "s"}.WithDefaults(),
		})
		if err != nil {
			t.Fatal(err)
		}
		h := hub.New(hub.Options{Apps: apps, Loops: 1, Frame: wsproto.AppendText})
		l := h.Local(0)
		l.Bind(nopPoster{})
		srv := &Server{cfg: Config{Apps: apps}, totals: make([]appTotals, 2)}
		lc := &loopCtx{srv: srv, local: l}
		lc.stats.apps = make([]loopApp, 2)
		for i := 0; i < n; i++ {
			cn := &conn{lc: lc}
			hc := &countingConn{lc: lc, cn: cn}
			if !l.Open(&cn.Session, hc, "k2", nil) {
				t.Fatal("open refused")
			}
			lc.countReceived(cn) // as readFrames does before Message
			l.Message(&cn.Session, []byte(`{"event":"pusher:subscribe","data":{"channel":"room"}}`))
		}
		l.Drain(0)
		lc.foldStats()
		l.ResetScratch()
		return h, lc, apps.ByID("2")
	}
	allocs := func(n int) float64 {
		h, lc, app := rig(n)
		chans := []string{"room"}
		data := []byte(`{"x":1}`)
		return testing.AllocsPerRun(50, func() {
			h.Publish(app, chans, "e", data, "")
			lc.local.Drain(0)
			lc.foldStats()
			lc.local.ResetScratch()
		})
	}
	small, large := allocs(10), allocs(2000)
	if large > small+1 {
		t.Fatalf("allocations grow with receivers: %v for 10, %v for 2000", small, large)
	}

	// The totals: 7 sockets each sent a subscribe and got
	// connection_established and subscription_succeeded, then 3 events.
	h, lc, app := rig(7)
	for i := 0; i < 3; i++ {
		h.Publish(app, []string{"room"}, "e", []byte(`{}`), "")
		lc.local.Drain(0)
		lc.foldStats()
		lc.local.ResetScratch()
	}
	var got []AppMetrics
	lc.srv.AppMetrics(func(a AppMetrics) { got = append(got, a) })
	if got[0].Sent != 0 || got[1].Sent != 7*2+7*3 || got[1].Received != 7 {
		t.Fatalf("sent/received %+v", got)
	}
	if lat := got[1].Latency; lat.Count != 21 || lat.Sum < 0 || got[0].Latency.Count != 0 {
		t.Fatalf("latency %+v / %+v, want 21 deliveries of app 2 only", lat, got[0].Latency)
	}
}
