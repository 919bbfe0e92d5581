package loop

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Backlogs: what a socket could not take.
//
// A socket whose kernel send buffer is full keeps the rest of its output as
// references to the frames themselves. Broadcast frames are built once by
// the hub and never modified, so a thousand stalled sockets on one channel
// hold a thousand short lists of pointers to the same frames, not a
// thousand copies; the unsent tail of a partly written frame is a sub-slice
// of it. Only frames in the loop's scratch buffers (HTTP responses, direct
// replies, close frames), which the next flush reuses, are copied. gnet's
// outbound buffer, which copies and has no bound, holds nothing for an open
// WebSocket: the loop writes with write(2)/writev(2) itself.
//
// gnet tells nobody when a socket drains (it arms EPOLLOUT only for its own
// buffer), so each loop has an epoll instance of its own (outPoller) in
// which a socket with a backlog waits for EPOLLOUT, one-shot. A goroutine
// per loop, started with the loop's first backlog, blocks on it and hands
// the writable sockets to the loop with one EventLoop.Execute per batch; the
// loop writes their backlogs with writev until EAGAIN and re-arms them. A
// socket that keeps up never enters it, so the happy path is unchanged.
//
// Bounds: a socket's own bound (Config.MaxOutboundBuffer, close 4100)
// counts the bytes its backlog references. A frame held by any socket of a
// loop is counted once in the loop's held bytes and in the node's
// Counters.BytesHeld (a per-loop reference count: plain integers, loop
// only). When the node's held bytes pass Config.MaxNodeBuffer, the loop
// that grew them closes its sockets with the largest backlogs, largest
// first, until the node is under its budget again; a socket without a
// backlog is never among them.

// heldFrame counts the backlog entries of one loop that refer to a frame.
type heldFrame struct {
	key  *byte // first byte of the frame: the loop's index key
	refs int32
	size int32
}

// blEntry is one frame in a backlog: the bytes still to send and the frame
// they belong to (nil h: a private copy of own bytes).
type blEntry struct {
	b   []byte
	h   *heldFrame
	own int32
}

// backlog is the unsent output of one socket, oldest first.
type backlog struct {
	cn    *conn
	q     []blEntry
	head  int
	bytes int    // unsent bytes the entries refer to
	id    uint32 // key in loopCtx.slowID and in the poller
}

// backlogOf returns cn's backlog, nil if it has none.
func (lc *loopCtx) backlogOf(cn *conn) *backlog {
	if cn.blIdx == 0 {
		return nil
	}
	return lc.slow[cn.blIdx-1]
}

// scratch reports whether b lies in a buffer the loop reuses after the
// flush (HTTP responses and control frames, the hub's direct replies).
func (lc *loopCtx) scratch(b []byte) bool {
	return within(b, lc.buf) || within(b, lc.local.Scratch())
}

// within reports whether b starts inside buf's backing array.
func within(b, buf []byte) bool {
	if len(b) == 0 || cap(buf) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= lo && p < lo+uintptr(cap(buf))
}

// startBacklog gives cn a backlog and arms the poller for it.
func (lc *loopCtx) startBacklog(cn *conn) *backlog {
	lc.blSeq++
	for lc.blSeq == 0 || lc.slowID[lc.blSeq] != nil {
		lc.blSeq++
	}
	bl := &backlog{cn: cn, id: lc.blSeq}
	lc.slow = append(lc.slow, bl)
	cn.blIdx = int32(len(lc.slow))
	if lc.slowID == nil {
		lc.slowID = make(map[uint32]*backlog)
		lc.held = make(map[*byte]*heldFrame)
	}
	lc.slowID[bl.id] = bl
	lc.poller.add(lc, cn)
	return bl
}

// hold appends frame[off:] to the backlog. frame is the whole frame, so
// every socket holding it counts it under the same key.
func (lc *loopCtx) hold(bl *backlog, frame []byte, off int) {
	if off >= len(frame) {
		return
	}
	var e blEntry
	if lc.scratch(frame) {
		c := make([]byte, len(frame)-off)
		copy(c, frame[off:])
		e = blEntry{b: c, own: int32(len(c))}
		lc.addHeld(len(c))
	} else {
		key := unsafe.SliceData(frame)
		h := lc.held[key]
		if h == nil {
			h = &heldFrame{key: key, size: int32(len(frame))}
			lc.held[key] = h
			lc.addHeld(len(frame))
		}
		h.refs++
		e = blEntry{b: frame[off:], h: h}
	}
	before := cap(bl.q)
	bl.q = append(bl.q, e)
	if c := cap(bl.q); c != before {
		lc.srv.footprint.Add(int64(c-before) * blEntrySize)
	}
	bl.bytes += len(e.b)
}

// blEntrySize is what one backlog entry costs in its slice.
const blEntrySize = int64(unsafe.Sizeof(blEntry{}))

// unhold releases one entry's claim on its frame.
func (lc *loopCtx) unhold(e *blEntry) {
	if h := e.h; h != nil {
		if h.refs--; h.refs == 0 {
			delete(lc.held, h.key)
			lc.addHeld(-int(h.size))
		}
	} else {
		lc.addHeld(-int(e.own))
	}
	*e = blEntry{}
}

func (lc *loopCtx) addHeld(n int) {
	lc.heldBytes += n
	lc.srv.hub.Counters().BytesHeld.Add(int64(n))
	lc.srv.footprint.Add(int64(n))
}

// advance drops n written bytes from the front of bl.
func (lc *loopCtx) advance(bl *backlog, n int) {
	for n > 0 && bl.head < len(bl.q) {
		e := &bl.q[bl.head]
		if n < len(e.b) {
			e.b = e.b[n:]
			bl.bytes -= n
			return
		}
		n -= len(e.b)
		bl.bytes -= len(e.b)
		lc.unhold(e)
		bl.head++
	}
	// Reuse the front of the slice once most of it is spent.
	if bl.head > 32 && bl.head*2 >= len(bl.q) {
		k := copy(bl.q, bl.q[bl.head:])
		clear(bl.q[k:])
		bl.q = bl.q[:k]
		bl.head = 0
	}
}

// dropBacklog releases everything cn holds and forgets its backlog.
func (lc *loopCtx) dropBacklog(cn *conn) {
	bl := lc.backlogOf(cn)
	if bl == nil {
		return
	}
	for i := bl.head; i < len(bl.q); i++ {
		lc.unhold(&bl.q[i])
	}
	lc.srv.footprint.Add(-int64(cap(bl.q)) * blEntrySize)
	last := len(lc.slow) - 1
	moved := lc.slow[last]
	lc.slow[cn.blIdx-1] = moved
	moved.cn.blIdx = cn.blIdx
	lc.slow[last] = nil
	lc.slow = lc.slow[:last]
	delete(lc.slowID, bl.id)
	lc.poller.del(cn)
	cn.blIdx = 0
}

// writeBacklog writes as much of cn's backlog as the kernel takes; an empty
// backlog is dropped, the rest waits for the poller again.
func (lc *loopCtx) writeBacklog(cn *conn) {
	bl := lc.backlogOf(cn)
	for bl.head < len(bl.q) {
		bufs := lc.wbuf[:0]
		for i := bl.head; i < len(bl.q) && len(bufs) < iovMax; i++ {
			bufs = append(bufs, bl.q[i].b)
		}
		n, failed := lc.rawWritev(int(cn.fd), bufs)
		clear(bufs)
		lc.wbuf = bufs[:0]
		if failed {
			lc.dropBacklog(cn)
			if !cn.closing {
				cn.closing = true
				lc.markDirty(cn)
			}
			return
		}
		if n == 0 {
			break
		}
		lc.advance(bl, n)
	}
	if bl.head == len(bl.q) {
		lc.dropBacklog(cn)
		return
	}
	lc.poller.arm(lc, cn)
}

// checkBacklog applies the socket's bound and the node budget after cn's
// backlog grew.
func (lc *loopCtx) checkBacklog(cn *conn) {
	if bl := lc.backlogOf(cn); bl != nil && bl.bytes > lc.srv.maxOut {
		lc.closeSlow(cn, false)
	}
	s := lc.srv
	for s.hub.Counters().BytesHeld.Load() > s.maxNode && len(lc.slow) > 0 {
		victim := lc.slow[0]
		for _, bl := range lc.slow[1:] {
			if bl.bytes > victim.bytes {
				victim = bl
			}
		}
		lc.closeSlow(victim.cn, true)
	}
}

// closeSlow drops cn's backlog and closes it with 4100: pusher-js backs off
// before it reconnects (§2.6).
func (lc *loopCtx) closeSlow(cn *conn, budget bool) {
	held := 0
	if bl := lc.backlogOf(cn); bl != nil {
		held = bl.bytes
	}
	c := lc.srv.hub.Counters()
	if budget {
		c.NodeBudgetCloses.Add(1)
	} else {
		c.SlowConsumerCloses.Add(1)
	}
	if lc.log != nil {
		lc.log.Debug("slow consumer disconnected", "socket_id", cn.ID(), "backlog", held, "node_budget", budget)
	}
	lc.dropBacklog(cn)
	cn.closeWith(closeSlowConsumer, reasonSlow)
}

// iovMax is the most buffers one writev takes (IOV_MAX on Linux).
const iovMax = 1024

// outPoller tells a loop when sockets with a backlog can take more
// (backlog_linux.go: an epoll instance of the loop's own; elsewhere a
// timer). Its goroutine queues the ids of writable backlogs in ready and
// wakes the loop once per batch.
type outPoller struct {
	pollerOS
	stopped atomic.Bool

	mu        sync.Mutex // guards ready and scheduled
	ready     []uint32
	scheduled bool

	spare []uint32 // loop only: the batch being written
	task  resumeTask
}

// post queues ready backlog ids for the loop (allBacklogs: every one).
// Poller goroutine.
func (p *outPoller) post(lc *loopCtx, ids []uint32) {
	p.mu.Lock()
	p.ready = append(p.ready, ids...)
	wake := !p.scheduled
	p.scheduled = true
	p.mu.Unlock()
	if wake {
		_ = lc.el.Execute(context.Background(), &p.task)
	}
}

// allBacklogs, posted, asks the loop to try every backlog it has.
const allBacklogs = 0

type resumeTask struct{ lc *loopCtx }

// Run writes the backlogs of the sockets the poller found writable.
func (t *resumeTask) Run(context.Context) error {
	lc := t.lc
	p := &lc.poller
	p.mu.Lock()
	ids := p.ready
	p.ready = p.spare[:0]
	p.scheduled = false
	p.mu.Unlock()
	for _, id := range ids {
		if id == allBacklogs {
			for i := len(lc.slow) - 1; i >= 0; i-- { // writing may drop entries
				if i < len(lc.slow) {
					lc.writeBacklog(lc.slow[i].cn)
				}
			}
			continue
		}
		if bl := lc.slowID[id]; bl != nil && !bl.cn.gone {
			lc.writeBacklog(bl.cn)
		}
	}
	p.spare = ids[:0]
	lc.flush(nil)
	return nil
}

// reclaim hands memory back to the OS once slow consumers have let go of a
// lot of it (Server.footprint: held frames and backlog slices): nothing
// else may allocate on an idle node, so no GC would run, and the runtime's
// scavenger returns freed pages over minutes; an edge node that just shed
// 2,000 stalled sockets should not sit at its peak meanwhile. Checked once
// a second off the loops.
func (s *Server) reclaim(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var peak int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cur := s.footprint.Load()
		peak = max(peak, cur)
		if peak-cur >= reclaimAfter {
			debug.FreeOSMemory()
			peak = cur
		}
	}
}

// reclaimAfter is how far the footprint must fall from its peak before
// reclaim returns memory to the OS.
const reclaimAfter = 16 << 20
