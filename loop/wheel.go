package loop

// wheelSize is the span of the timing wheel in seconds (a power of two).
// Deadlines further away are parked at the far end and re-evaluated there.
const wheelSize = 1024

// wheel is a per-loop timing wheel with one-second slots. Every connection
// of the loop sits in exactly one slot (intrusive doubly-linked lists, so
// adding and removing are O(1) and allocation-free). Activity does not touch
// the wheel: when a slot expires each connection re-checks its own clock
// and is re-filed if it is not due yet.
type wheel struct {
	slots [wheelSize]*conn
	cur   int64 // last second processed
}

func (w *wheel) add(cn *conn, due int64) {
	if due <= w.cur {
		due = w.cur + 1
	}
	if due-w.cur >= wheelSize {
		due = w.cur + wheelSize - 1
	}
	i := int32(due & (wheelSize - 1))
	cn.slot = i
	cn.tprev = nil
	cn.tnext = w.slots[i]
	if cn.tnext != nil {
		cn.tnext.tprev = cn
	}
	w.slots[i] = cn
}

func (w *wheel) remove(cn *conn) {
	if cn.slot < 0 {
		return
	}
	if cn.tprev != nil {
		cn.tprev.tnext = cn.tnext
	} else {
		w.slots[cn.slot] = cn.tnext
	}
	if cn.tnext != nil {
		cn.tnext.tprev = cn.tprev
	}
	cn.tnext, cn.tprev, cn.slot = nil, nil, -1
}

// advance expires every slot up to now, calling fn for each connection
// after unlinking it; fn re-adds the connections that stay.
func (w *wheel) advance(now int64, fn func(*conn)) {
	if now-w.cur > wheelSize {
		w.cur = now - wheelSize
	}
	for w.cur < now {
		w.cur++
		i := w.cur & (wheelSize - 1)
		cn := w.slots[i]
		w.slots[i] = nil
		for cn != nil {
			next := cn.tnext
			cn.tnext, cn.tprev, cn.slot = nil, nil, -1
			fn(cn)
			cn = next
		}
	}
}

// each calls fn for every connection in the wheel. fn must not modify the wheel.
func (w *wheel) each(fn func(*conn)) {
	for _, cn := range w.slots {
		for ; cn != nil; cn = cn.tnext {
			fn(cn)
		}
	}
}
