//go:build linux

package loop

import (
	"os"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// unlisten releases the engine's listening socket before Shutdown sends
// its 4200s. gnet closes its listeners only once its loops have exited, and
// until then a client that reconnects at once is accepted and closed
// without a byte, where with SO_REUSEPORT it could have gone to a process
// of the group that stays. gnet offers no way to close a listener alone,
// so every descriptor of the socket gnet's Dup names is pointed (dup3) at a
// stand-in: a non-blocking AF_UNIX socket listening on an autobound
// abstract name nobody knows. The real socket is released at once (new
// connections are refused, or go to the rest of the SO_REUSEPORT group),
// its epoll registration goes with it, an accept already under way finds
// the stand-in's empty queue (EAGAIN), and gnet closes the stand-in when it
// closes its listeners. Dup names the engine's first listener: all of it
// without SO_REUSEPORT, loop 0's with it; the listeners gnet opens for
// further loops under SO_REUSEPORT close with the engine as before.
// Where a step fails the listener stays as it was, closed by gnet later.
// Shutdown's goroutine; gnet closes its listeners only after Stop.
func unlisten(eng gnet.Engine) {
	dup, err := eng.Dup()
	if err != nil {
		return
	}
	defer unix.Close(dup)
	var ln unix.Stat_t
	if unix.Fstat(dup, &ln) != nil {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == dup {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Dev == ln.Dev && st.Ino == ln.Ino {
			fds = append(fds, fd)
		}
	}
	if len(fds) == 0 {
		return
	}
	stand, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(stand)
	// An empty name autobinds to a fresh abstract address.
	if unix.Bind(stand, &unix.SockaddrUnix{}) != nil || unix.Listen(stand, 1) != nil {
		return
	}
	for _, fd := range fds {
		_ = unix.Dup3(stand, fd, unix.O_CLOEXEC)
	}
}
