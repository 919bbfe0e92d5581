package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// gnet's Write goes through syscall.Syscall, whose entersyscall/exitsyscall
// bookkeeping (and the P hand-offs sysmon starts when a loop spends most of
// its time in write(2)) costs as much as a small loopback write itself. A
// write to a non-blocking socket never blocks, so when gnet has nothing
// queued for the socket the loop writes with a raw system call and hands
// gnet only what the kernel did not take (order is kept: gnet's queue was
// empty). Errors are left to gnet, which closes the connection.

// rawWritev writes bufs to fd with one write or writev. It returns the
// bytes written and whether the socket failed with an error other than
// EAGAIN.
func (lc *loopCtx) rawWritev(fd int, bufs [][]byte) (int, bool) {
	var n uintptr
	var e unix.Errno
	if len(bufs) == 1 {
		b := bufs[0]
		if len(b) == 0 {
			return 0, false
		}
		n, _, e = unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	} else {
		iov := lc.iov[:0]
		for _, b := range bufs {
			if len(b) > 0 {
				iov = append(iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			}
		}
		if len(iov) > 1024 {
			iov = iov[:1024] // IOV_MAX; the rest goes through gnet
		}
		lc.iov = iov
		if len(iov) == 0 {
			return 0, false
		}
		n, _, e = unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		clear(iov) // no pointers into frames kept past the call
	}
	switch e {
	case 0:
		return int(n), false
	case unix.EAGAIN, unix.EINTR:
		return 0, false
	}
	return 0, true
}
