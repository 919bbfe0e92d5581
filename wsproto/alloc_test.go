//go:build !race

package wsproto

import (
	"testing"

	"github.com/gobwas/ws"
)

// TestZeroAllocs guards the hot paths: parsing, reading a frame (also a
// rejected one) and encoding must not allocate in steady state.
func TestZeroAllocs(t *testing.T) {
	head := []byte(chromeUpgrade)
	frame := text(`{"event":"pusher:ping","data":{}}`)
	buf := make([]byte, len(frame))
	frags := cat(cframe(ws.OpText, false, "ab"), cframe(ws.OpContinuation, true, "cd"))
	fbuf := make([]byte, len(frags))
	bad := []byte{0x81, 0x02, 'h', 'i'}
	dst := make([]byte, 0, 512)
	var req Request
	var r Reader
	r.MaxMessage = 10000

	cases := map[string]func(){
		"ParseRequest": func() { _ = ParseRequest(head, 10000, &req) },
		"CheckUpgrade": func() { _ = CheckUpgrade(&req) },
		"Reader.Next": func() {
			copy(buf, frame)
			_, _, _, _ = r.Next(buf)
		},
		"Reader.Next fragmented": func() {
			copy(fbuf, frags)
			_, n, _, _ := r.Next(fbuf)
			_, _, _, _ = r.Next(fbuf[n:])
		},
		"Reader.Next rejecting": func() {
			var fresh Reader
			_, _, _, _ = fresh.Next(bad)
		},
		"AppendText":            func() { dst = AppendText(dst[:0], frame) },
		"AppendClose":           func() { dst = AppendClose(dst[:0], 4200, "Server is restarting") },
		"AppendUpgradeResponse": func() { dst = AppendUpgradeResponse(dst[:0], req.Key) },
		"AppendResponse": func() {
			dst = AppendResponse(dst[:0], 405, "application/json", frame, true, "Allow: POST")
		},
	}
	for name, fn := range cases {
		fn() // warm up: grow the Reader's buffer once
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
