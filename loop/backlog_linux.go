//go:build linux && !reverb_timerpoll

package loop

import "golang.org/x/sys/unix"

// pollerOS is the loop's own epoll instance: a socket with a backlog waits
// in it for EPOLLOUT, one-shot, keyed by its backlog id (a socket's fd may
// be reused once it is closed; its id is not).
type pollerOS struct {
	epfd int // 0: not started
}

const pollOut = unix.EPOLLOUT | unix.EPOLLONESHOT

func (p *outPoller) start(lc *loopCtx) bool {
	if p.epfd > 0 {
		return true
	}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	p.epfd = fd
	p.task.lc = lc
	go p.run(lc)
	return true
}

// add registers cn, whose backlog was just created. Loop only.
func (p *outPoller) add(lc *loopCtx, cn *conn) {
	if !p.start(lc) {
		return
	}
	ev := unix.EpollEvent{Events: pollOut, Fd: int32(lc.backlogOf(cn).id)}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(cn.fd), &ev)
}

// arm waits for cn to be writable again after EAGAIN. Loop only.
func (p *outPoller) arm(lc *loopCtx, cn *conn) {
	if p.epfd <= 0 {
		return
	}
	ev := unix.EpollEvent{Events: pollOut, Fd: int32(lc.backlogOf(cn).id)}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(cn.fd), &ev)
}

// del forgets cn once its backlog is written or dropped. A closed socket
// left the epoll set with its descriptor, whose number may already be
// another socket's. Loop only.
func (p *outPoller) del(cn *conn) {
	if p.epfd <= 0 || cn.gone {
		return
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(cn.fd), nil)
}

// run waits for writable sockets until the server stops. It wakes every
// half second to notice the stop, which costs nothing measurable.
func (p *outPoller) run(lc *loopCtx) {
	defer unix.Close(p.epfd)
	events := make([]unix.EpollEvent, 256)
	ids := make([]uint32, 0, len(events))
	for !p.stopped.Load() {
		n, err := unix.EpollWait(p.epfd, events, 500)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if n <= 0 {
			continue
		}
		ids = ids[:0]
		for _, ev := range events[:n] {
			ids = append(ids, uint32(ev.Fd))
		}
		p.post(lc, ids)
	}
}
