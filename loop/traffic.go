package loop

import (
	"bytes"
	"errors"
	"math"

	"github.com/gobwas/ws"

	"github.com/goreverb/reverb/hub"
	"github.com/goreverb/reverb/pusher"
	"github.com/goreverb/reverb/wsproto"
)

var (
	bodyNotFound    = []byte(`{"error":"Not found."}`)
	bodyBadRequest  = []byte(`{"error":"Bad request."}`)
	bodyTooLarge    = []byte(`{"error":"Payload too large."}`)
	bodyUnavailable = []byte(`{"error":"Server is restarting."}`)
	bodyChunked     = []byte(`{"error":"Chunked request bodies are not supported."}`)
	bodyTimeout     = []byte(`{"error":"Request timeout."}`)

	bodyTooManyPending = []byte(`{"error":"Too many pending connections."}`)
)

const jsonType = "application/json"

// serveHTTP answers every complete request at the start of buf and returns
// the bytes consumed. It stops at an incomplete request, after switching to
// WebSocket, after handing an API request off the loop (Config.AsyncAPI), or
// when the connection is to be closed.
func (lc *loopCtx) serveHTTP(cn *conn, buf []byte) int {
	s := lc.srv
	off := 0
	for off < len(buf) && cn.state == stateHTTP && !cn.closing {
		var req wsproto.Request
		switch err := wsproto.ParseRequest(buf[off:], s.cfg.MaxRequestSize, &req); err {
		case nil:
		case wsproto.ErrNeedMore:
			return off
		case wsproto.ErrTooLarge:
			lc.respondClose(cn, 413, bodyTooLarge)
			return len(buf)
		default:
			lc.respondClose(cn, 400, bodyBadRequest)
			return len(buf)
		}
		if s.draining.Load() {
			lc.respondClose(cn, 503, bodyUnavailable)
			return len(buf)
		}
		path, ok := bytes.CutPrefix(req.Path, []byte(s.prefix))
		if !ok || (len(path) > 0 && path[0] != '/') {
			path = nil
		}
		if req.IsUpgrade() && path != nil {
			if key, ok := appKey(path); ok {
				lc.upgrade(cn, &req, key)
				return off + req.HeadLen
			}
		}
		if req.Chunked {
			lc.respondClose(cn, 411, bodyChunked)
			return len(buf)
		}
		total := req.HeadLen + max(req.ContentLength, 0)
		if len(buf)-off < total {
			return off
		}
		switch {
		case path == nil:
			lc.respond(cn, 404, bodyNotFound, req.KeepAlive, "")
		case s.cfg.AsyncAPI:
			lc.startAPI(cn, &req, path, buf[off+req.HeadLen:off+total])
			return off + total
		default:
			lc.req.Method = req.Method
			lc.req.Path = path
			lc.req.RawQuery = req.Query
			lc.req.Body = buf[off+req.HeadLen : off+total]
			t0 := hub.Monotime()
			status, body, allow := s.api.Serve(&lc.req, lc.apiBuf[:0])
			s.countAPI(path, status, t0)
			lc.apiBuf = body[:0]
			if allow != "" {
				allow = "Allow: " + allow
			}
			lc.respond(cn, status, body, req.KeepAlive, allow)
			lc.req = pusher.APIRequest{} // do not keep gnet's buffer alive
		}
		off += total
		if !req.KeepAlive {
			cn.closeHTTP()
		}
	}
	return off
}

// headClock runs the request deadline of an HTTP connection after
// serveHTTP consumed off of n buffered bytes at coarse second now: bytes of
// an unfinished request start the clock (or restart it when a request
// before them completed), nothing left stops it. A connection whose clock
// starts is re-filed in the wheel at its deadline.
func (lc *loopCtx) headClock(cn *conn, now int64, off, n int) {
	if off >= n || cn.state != stateHTTP || cn.closing {
		cn.headAt = 0
		return
	}
	if cn.headAt != 0 && off == 0 {
		return // the same request, still unfinished: the clock runs on
	}
	cn.headAt = uint32(now)
	lc.wheel.remove(cn)
	lc.wheel.add(cn, now+lc.srv.headSec)
}

// leavePending takes cn out of the node's count of connections not yet
// upgraded (at the upgrade or at close).
func (lc *loopCtx) leavePending(cn *conn) {
	if cn.pre {
		cn.pre = false
		lc.srv.preUpgrade.Add(-1)
	}
}

// appKey extracts {key} from "/app/{key}".
func appKey(path []byte) (string, bool) {
	key, ok := bytes.CutPrefix(path, []byte("/app/"))
	if !ok || len(key) == 0 || bytes.IndexByte(key, '/') >= 0 {
		return "", false
	}
	return string(key), true
}

func (lc *loopCtx) respond(cn *conn, status int, body []byte, keepAlive bool, extra string) {
	start := len(lc.buf)
	if extra != "" {
		lc.buf = wsproto.AppendResponse(lc.buf, status, jsonType, body, keepAlive, extra)
	} else {
		lc.buf = wsproto.AppendResponse(lc.buf, status, jsonType, body, keepAlive)
	}
	cn.queue(lc.buf[start:len(lc.buf):len(lc.buf)])
}

func (lc *loopCtx) respondClose(cn *conn, status int, body []byte) {
	lc.respond(cn, status, body, false, "")
	cn.closeHTTP()
}

// upgrade completes the WebSocket handshake and runs the app checks of §2.3
// over the new socket.
func (lc *loopCtx) upgrade(cn *conn, req *wsproto.Request, key string) {
	if status := wsproto.CheckUpgrade(req); status != 0 {
		extra := ""
		if status == 426 {
			extra = wsproto.VersionHeader
		}
		lc.respond(cn, status, bodyBadRequest, false, extra)
		cn.closeHTTP()
		return
	}
	start := len(lc.buf)
	lc.buf = wsproto.AppendUpgradeResponse(lc.buf, req.Key)
	cn.queue(lc.buf[start:len(lc.buf):len(lc.buf)])
	cn.state = stateWS
	cn.headAt = 0
	lc.leavePending(cn)
	lc.wheel.remove(cn)
	if !lc.local.Open(&cn.Session, cn, key, req.Origin) {
		lc.wheel.add(cn, lc.wheel.cur+2)
		return
	}
	cn.rd.MaxMessage = int32(min(cn.App.MaxMessageSize, math.MaxInt32))
	if lc.log != nil {
		lc.log.Debug("connection established", "socket_id", cn.ID(), "app", cn.App.ID, "remote", cn.c.RemoteAddr().String())
	}
	lc.wheel.add(cn, cn.idleAt())
}

// readFrames handles every complete frame at the start of buf and returns
// the bytes consumed.
func (lc *loopCtx) readFrames(cn *conn, buf []byte) int {
	off := 0
	for !cn.closing {
		f, n, ok, err := cn.rd.Next(buf[off:])
		if err == wsproto.ErrNeedMore {
			break
		}
		if err != nil {
			var ce *wsproto.CloseError
			if errors.As(err, &ce) {
				cn.closeWith(ce.Code, ce.Reason)
			} else {
				cn.closeWith(ws.StatusProtocolError, "")
			}
			return len(buf)
		}
		off += n
		if !ok {
			continue
		}
		if !cn.Open() {
			continue // rejected at connect; its close is on the way
		}
		now := lc.srv.hub.Now()
		switch f.Kind {
		case wsproto.KindMessage:
			if lc.log != nil {
				lc.log.Debug("frame in", "socket_id", cn.ID(), "payload", string(f.Payload))
			}
			lc.countReceived(cn)
			lc.local.Message(&cn.Session, f.Payload)
		case wsproto.KindPing:
			cn.Touch(now, true)
			start := len(lc.buf)
			lc.buf = wsproto.AppendFrame(lc.buf, ws.OpPong, f.Payload)
			cn.Send(lc.buf[start:len(lc.buf):len(lc.buf)])
		case wsproto.KindPong:
			cn.Touch(now, true)
		case wsproto.KindClose:
			cn.Touch(now, true)
			cn.closeWith(f.CloseCode, string(f.CloseReason))
		}
	}
	return off
}
