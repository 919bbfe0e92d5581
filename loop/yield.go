package loop

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// A long fan-out is served in slices: drainBudget sockets are queued and
// written at a time, and once a slice has run for drainSlice the loop looks
// at its other events again. Each yield costs a write and a read on the
// loopback pair, a few percent of a 32-socket batch, so slices are timed
// rather than counted.
const (
	drainBudget = 32
	drainSlice  = time.Millisecond
)

// gnet runs every task queued from inside a task in the same round, before
// it polls again, so a drain cannot yield by re-queueing itself. Instead each
// loop owns a loopback TCP pair whose reading end is enrolled in that loop:
// a long drain writes one byte and returns, and gnet continues it from
// OnTraffic like any other I/O event, after the HTTP requests and client
// frames that arrived meanwhile. Until the pair is ready, drains run to the
// end in one go.
type yieldConn struct{ lc *loopCtx }

// startYield creates the pair in the background; OnOpen of the enrolled
// end marks the loop ready. Called on the loop.
func (lc *loopCtx) startYield() {
	lc.yieldFD = -1
	go func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return
		}
		defer ln.Close()
		w, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer w.Close()
		r, err := ln.Accept()
		if err != nil {
			return
		}
		defer r.Close() // gnet enrolls a duplicate of the descriptor
		f, err := w.(*net.TCPConn).File()
		if err != nil {
			return
		}
		if err := unix.SetNonblock(int(f.Fd()), true); err != nil {
			f.Close()
			return
		}
		ctx := gnet.NewContext(context.Background(), &yieldConn{lc: lc})
		res, err := lc.el.Enroll(ctx, r)
		if err != nil {
			f.Close()
			return
		}
		if rr := <-res; rr.Err != nil {
			f.Close()
			return
		}
		lc.yieldFile.Store(f)
		// The loop picks the writer up at its next drain.
		_ = lc.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			lc.yieldFD = int(f.Fd())
			return nil
		}))
	}()
}

// drain runs one slice of the inbox and, if work is left, asks to be
// continued after the loop's pending I/O. Loop only.
func (lc *loopCtx) drain() {
	if lc.yieldFD < 0 || !lc.yieldOpen {
		lc.local.Drain(0)
		lc.flush(nil)
		return
	}
	start := time.Now()
	for {
		more := lc.local.Drain(drainBudget)
		lc.flush(nil)
		if !more {
			return
		}
		if time.Since(start) >= drainSlice {
			break
		}
	}
	if _, err := unix.Write(lc.yieldFD, []byte{1}); err != nil && err != unix.EAGAIN {
		// The pair is broken: finish without yielding.
		lc.yieldFD = -1
		lc.local.Drain(0)
		lc.flush(nil)
	}
}

// closeYield releases the writing end at shutdown.
func (lc *loopCtx) closeYield() {
	if f, _ := lc.yieldFile.Load().(*os.File); f != nil {
		_ = f.Close()
	}
}
