//go:build linux

package loop_test

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/goreverb/reverb/loop"
)

// TestLongFanoutYields: a fan-out to thousands of sockets must not hold its
// event loop until the last write. One trigger goes to "fan" (yieldSubs
// sockets) and then to "end" (one socket, W), so W's frame is the last
// write of the fan-out. A ping from an unsubscribed socket Z sent while the
// fan-out runs must be answered before W's frame is written: on loopback a
// write lands in the receiver's buffer within the write(2), so when Z reads
// its pong, W's socket must still be empty. A loop that drained everything
// before polling again would answer Z only after W's frame.
func TestLongFanoutYields(t *testing.T) {
	const yieldSubs = 4000
	if testing.Short() {
		t.Skip("opens 4,000 sockets")
	}
	s := startDefault(t, func(c *loop.Config) { c.Loops = 1 })
	subs := make([]*wsClient, yieldSubs)
	for i := range subs {
		subs[i] = s.connect(t)
		subs[i].subscribe("fan")
	}
	w := s.connect(t)
	w.subscribe("end")
	z := s.connect(t)
	api := s.api(t)

	must(t, api.TriggerMulti([]string{"fan", "end"}, "tick", "x"))
	z.send(`{"event":"pusher:ping","data":{}}`)
	z.expectEvent("pusher:pong")
	if n := pendingBytes(t, w); n != 0 {
		t.Fatalf("the fan-out's last frame (%d bytes) was written before the ping was answered: the loop did not yield", n)
	}
	w.expectAppEvent("end", "tick", "x")
	for _, c := range subs {
		c.expectAppEvent("fan", "tick", "x")
	}
}

// pendingBytes is how many bytes wait unread in c's socket.
func pendingBytes(t *testing.T, c *wsClient) int {
	t.Helper()
	if c.r.Buffered() > 0 {
		return c.r.Buffered()
	}
	sc, err := c.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := sc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}
