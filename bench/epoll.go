//go:build linux

package bench

import (
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is a level-triggered epoll set plus an eventfd other goroutines
// write to wake the loop. Only its loop calls wait/add/mod/del; wake may be
// called from any goroutine.
type poller struct {
	epfd   int
	evfd   int
	events []unix.EpollEvent
}

func newPoller(batch int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, batch)}
	if err := p.add(evfd, unix.EPOLLIN); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *poller) add(fd int, ev uint32) error {
	e := unix.EpollEvent{Events: ev, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &e)
}

// wait returns the number of ready events in p.events; EINTR counts as a
// timeout so callers simply loop.
//
// epoll_pwait is issued as a raw syscall: the loop keeps its P while it
// sleeps in the kernel, so the scheduler neither hands the P off nor keeps
// sysmon polling at 20 µs, which at one wake-up per event burst cost more
// CPU than the I/O itself. The process must therefore run with GOMAXPROCS
// above the number of loops (see reserveProcs); a signal (async
// preemption, GC) interrupts the wait with EINTR.
func (p *poller) wait(msec int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd),
		uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), uintptr(msec), 0, 0)
	switch e {
	case 0:
		return int(n), nil
	case unix.EINTR:
		return 0, nil
	}
	return 0, e
}

// block is wait through the runtime's syscall path, which releases the P
// while the loop sleeps. A loop whose last wait found nothing uses it: a
// P parked in a raw wait looks busy to the runtime, so sysmon never sleeps
// and preempts the "running" loop every 10 ms (a signal, an EINTR and a
// wake-up each time), which in 56 idle worker processes holding a million
// sockets added up to most of a core. The first event after a quiet spell
// pays the runtime's exitsyscall once; the rest of the burst uses wait.
func (p *poller) block(msec int) (int, error) {
	n, err := unix.EpollWait(p.epfd, p.events, msec)
	switch err {
	case nil:
		return n, nil
	case unix.EINTR:
		return 0, nil
	}
	return 0, err
}

// rawLoops counts the loop goroutines of this process that may sit in a
// raw epoll wait; guarded by rawLoopsMu.
var (
	rawLoopsMu sync.Mutex
	rawLoops   int
)

// reserveProcs registers n more loop goroutines and raises GOMAXPROCS so
// that, even with all of them parked in raw epoll waits, two Ps are left
// for everything else (control lines, the publisher, tests). It never
// lowers GOMAXPROCS; releaseProcs undoes the count when the loops end.
func reserveProcs(n int) {
	rawLoopsMu.Lock()
	defer rawLoopsMu.Unlock()
	rawLoops += n
	if want := rawLoops + 2; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}

func releaseProcs(n int) {
	rawLoopsMu.Lock()
	rawLoops -= n
	rawLoopsMu.Unlock()
}

// wake makes the loop's current or next wait return. Any goroutine.
func (p *poller) wake() {
	unix.Write(p.evfd, wakeOne)
}

// wakeOne is the eventfd increment; shared so that wake does not allocate.
var wakeOne = []byte{1, 0, 0, 0, 0, 0, 0, 0}

// drainWake consumes pending wake-ups; loop only.
func (p *poller) drainWake() {
	var b [8]byte
	unix.Read(p.evfd, b[:])
}

func (p *poller) close() {
	unix.Close(p.evfd)
	unix.Close(p.epfd)
}

// pause sleeps d without giving up the loop's P (see wait).
func pause(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// rawRead and rawWrite are read(2) and write(2) on non-blocking sockets
// without the runtime's syscall bookkeeping: they never block, and at one
// call per delivery the entersyscall/exitsyscall pair and the P hand-offs
// it provokes are measurable. errno 0 means success.
func rawRead(fd int, b []byte) (int, unix.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

func rawWrite(fd int, b []byte) (int, unix.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}
