//go:build linux

package loop

import (
	"os"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// unlisten releases the engine's listening sockets before Shutdown sends
// its 4200s. gnet closes its listeners only once its loops have exited, and
// until then a client that reconnects at once is accepted and closed
// without a byte, where with SO_REUSEPORT it could have gone to a process
// of the group that stays. gnet offers no way to close a listener alone,
// so every descriptor of those sockets is pointed (dup3) at a stand-in: a
// non-blocking AF_UNIX socket listening on an autobound abstract name
// nobody knows. The real sockets are released at once (new connections are
// refused, or go to the rest of the SO_REUSEPORT group), their epoll
// registrations go with them, an accept already under way finds the
// stand-in's empty queue (EAGAIN), and gnet closes the stand-in when it
// closes its listeners.
//
// Which sockets: the one gnet's Dup names (all of it without SO_REUSEPORT,
// loop 0's with it) and those of more, the inodes of the listeners gnet
// opened for its other loops under SO_REUSEPORT (see listenerInodes; gnet
// does not hand them out). Where a step fails the listener stays as it
// was, closed by gnet later. Shutdown's goroutine; gnet closes its
// listeners only after Stop.
func unlisten(eng gnet.Engine, more map[uint64]bool) {
	dup, err := eng.Dup()
	if err != nil {
		return
	}
	defer unix.Close(dup)
	var ln unix.Stat_t
	if unix.Fstat(dup, &ln) != nil {
		return
	}
	var fds []int
	eachFD(dup, func(fd int, st *unix.Stat_t) {
		if st.Dev == ln.Dev && (st.Ino == ln.Ino || more[st.Ino]) {
			fds = append(fds, fd)
		}
	})
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

// listenerInodes returns the inodes of the listening sockets this process
// holds on the address of the engine's (first) listener. gnet opens the
// listeners of loops 1..n under SO_REUSEPORT after OnBoot and before its
// first OnTick, so the server takes this set at both moments: what appears
// in between is the engine's own (another server of the same process on
// the same port, as in tests, was there before or comes after). It reads
// the descriptors of a process that is starting, so a few.
func listenerInodes(eng gnet.Engine) map[uint64]bool {
	dup, err := eng.Dup()
	if err != nil {
		return nil
	}
	defer unix.Close(dup)
	name, err := unix.Getsockname(dup)
	if err != nil {
		return nil
	}
	found := map[uint64]bool{}
	eachFD(dup, func(fd int, st *unix.Stat_t) {
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			return
		}
		if got, err := unix.Getsockname(fd); err == nil && sameAddr(got, name) {
			found[st.Ino] = true
		}
	})
	return found
}

// eachFD calls fn with every open descriptor of the process but skip, and
// what fstat says of it.
func eachFD(skip int, fn func(fd int, st *unix.Stat_t)) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == skip {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			fn(fd, &st)
		}
	}
}

func sameAddr(a, b unix.Sockaddr) bool {
	switch a := a.(type) {
	case *unix.SockaddrInet4:
		b, ok := b.(*unix.SockaddrInet4)
		return ok && a.Port == b.Port && a.Addr == b.Addr
	case *unix.SockaddrInet6:
		b, ok := b.(*unix.SockaddrInet6)
		return ok && a.Port == b.Port && a.Addr == b.Addr && a.ZoneId == b.ZoneId
	}
	return false
}
