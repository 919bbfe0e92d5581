package loop

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

// With Config.AsyncAPI an HTTP API request leaves the loop: the loop copies
// it out of gnet's buffer into an apiCall, puts the connection in stateAPI
// and starts a goroutine, which waits for a slot of apiSem, runs
// pusher.API.Serve and hands the call back with EventLoop.Execute (the call
// is the Runnable: two allocations, no closure). On its loop the call writes
// the response and goes on with whatever the client pipelined meanwhile,
// which gnet kept in the connection's inbound buffer. One request per
// connection is in flight, so gnet's task queues, which do not keep FIFO
// order under load (GNET.md §1), cannot reorder responses. A goroutine per
// request rather than a fixed pool: API requests are rare next to socket
// traffic, a query may block for seconds, and apiSem bounds the work while
// an idle server keeps no spare stacks.

const (
	// maxAsyncAPI bounds the API requests served at once across a server.
	maxAsyncAPI = 1024
	// pipelineDepth × MaxRequestSize is what a connection may buffer while
	// its request is in flight.
	pipelineDepth = 16
	// maxKeptCall is the largest buffer an apiCall keeps when pooled.
	maxKeptCall = 64 << 10
)

// apiCall is one API request served off the loop. The loop fills it and
// the serving goroutine owns it until Execute queues it back; from then on
// only the loop touches it. Holding cn is safe: conns are never reused
// (OnOpen allocates each) and gone is final, so the answer to a connection
// that closed meanwhile is dropped instead of reaching a newer connection
// on the same descriptor.
type apiCall struct {
	lc        *loopCtx
	cn        *conn
	req       pusher.APIRequest // slices of raw
	raw       []byte            // method, path, query and body
	resp      []byte
	status    int
	allow     string
	keepAlive bool
	start     int64 // hub.Monotime when the loop read the request
}

var apiCalls = sync.Pool{New: func() any { return new(apiCall) }}

// startAPI hands the request off the loop. body is the request body in
// gnet's buffer, which is only valid during this callback, so everything
// Serve reads is copied. Loop only.
func (lc *loopCtx) startAPI(cn *conn, req *wsproto.Request, path, body []byte) {
	call := apiCalls.Get().(*apiCall)
	call.lc, call.cn, call.keepAlive = lc, cn, req.KeepAlive
	call.start = hub.Monotime()
	raw := append(call.raw[:0], req.Method...)
	raw = append(raw, path...)
	raw = append(raw, req.Query...)
	raw = append(raw, body...)
	call.raw = raw
	call.req.Method, raw = cut(raw, len(req.Method))
	call.req.Path, raw = cut(raw, len(path))
	call.req.RawQuery, raw = cut(raw, len(req.Query))
	call.req.Body = raw
	cn.state = stateAPI
	lc.srv.apiInFlight.Add(1)
	go call.serve()
}

// cut splits b after n bytes; the head cannot grow into the tail.
func cut(b []byte, n int) ([]byte, []byte) { return b[:n:n], b[n:] }

// serve runs on the call's own goroutine.
func (call *apiCall) serve() {
	s := call.lc.srv
	s.apiSem <- struct{}{}
	call.status, call.resp, call.allow = s.api.Serve(&call.req, call.resp[:0])
	<-s.apiSem
	if err := call.lc.el.Execute(context.Background(), call); err != nil {
		// The engine is stopping and closes the connection itself.
		s.apiInFlight.Add(-1)
		call.release()
	}
}

// Run implements gnet.Runnable: write the response, then serve what was
// pipelined behind the request. On the call's loop.
func (call *apiCall) Run(context.Context) error {
	lc, cn := call.lc, call.cn
	s := lc.srv
	if !cn.gone && !cn.closing && cn.state == stateAPI {
		cn.state = stateHTTP
		cn.mark = s.hub.Now()
		// During a shutdown the connection gets this answer and no other.
		keepAlive := call.keepAlive && !s.draining.Load()
		allow := ""
		if call.allow != "" {
			allow = "Allow: " + call.allow
		}
		lc.respond(cn, call.status, call.resp, keepAlive, allow) // copies resp
		s.countAPI(call.req.Path, call.status, call.start)
		if !keepAlive {
			cn.closeHTTP()
		}
		call.release()
		lc.traffic(cn, nil) // its flush closes cn if it is closing
	} else {
		call.release()
	}
	s.apiInFlight.Add(-1)
	return nil
}

func (call *apiCall) release() {
	call.lc, call.cn = nil, nil
	call.req = pusher.APIRequest{}
	call.allow = ""
	if cap(call.raw) > maxKeptCall {
		call.raw = nil
	}
	if cap(call.resp) > maxKeptCall {
		call.resp = nil
	}
	apiCalls.Put(call)
}

// holdPipelined runs for a connection in stateAPI that receives more bytes:
// they stay in gnet's inbound buffer for apiCall.Run, up to a bound.
// Loop only.
func (lc *loopCtx) holdPipelined(cn *conn) gnet.Action {
	if cn.c.InboundBuffered() > pipelineDepth*lc.srv.cfg.MaxRequestSize {
		return gnet.Close
	}
	return gnet.None
}

// waitAPI waits until every request handed off the loop has been answered
// or dropped, or ctx ends.
func (s *Server) waitAPI(ctx context.Context) {
	if s.apiInFlight.Load() == 0 {
		return
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.apiInFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
