package wsproto

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// CloseError is a protocol violation by the client. The caller answers with
// a close frame carrying Code and Reason (AppendClose) and closes the TCP
// connection. Values returned by this package are shared: read, never modify.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

// Error implements error. It allocates; keep it off hot paths.
func (e *CloseError) Error() string {
	return "wsproto: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// ErrMessageTooBig is returned when a message exceeds Reader.MaxMessage;
// its reason is Reverb's exact text (§8.1).
var ErrMessageTooBig = &CloseError{Code: ws.StatusMessageTooBig, Reason: "Maximum message size exceeded"}

// Violations are preallocated so that rejecting a frame does not allocate.
var (
	errBadLength        = protocolError("invalid payload length")
	errRsv              = protocolError("reserved bits set")
	errOpCode           = protocolError("reserved opcode")
	errUnmasked         = protocolError("client frame not masked")
	errControlFragment  = protocolError("fragmented control frame")
	errControlTooLong   = protocolError("control frame too long")
	errNoContinuation   = protocolError("expected continuation frame")
	errStrayContinue    = protocolError("unexpected continuation frame")
	errCloseLength      = protocolError("close payload of one byte")
	errCloseCode        = protocolError("invalid close code")
	errInvalidText      = &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"}
	errInvalidCloseText = &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in close reason"}
)

func protocolError(reason string) *CloseError {
	return &CloseError{Code: ws.StatusProtocolError, Reason: reason}
}

// Kind says what a Frame returned by Reader.Next carries.
type Kind uint8

// Frame kinds. The zero Kind is never returned with ok = true.
const (
	KindMessage Kind = iota + 1 // a complete text or binary message
	KindPing
	KindPong
	KindClose
)

// Frame is one unit handed to the caller by Reader.Next.
type Frame struct {
	Kind Kind
	// Payload is the message, ping or pong payload (unmasked; nil for close).
	// It aliases the buf given to Next or the Reader's own buffer and is
	// valid until the next Next call or until those bytes of buf are
	// discarded, whichever comes first.
	Payload []byte
	// Binary is set for a message sent as binary. Reverb treats binary like
	// text (§2.2); it is here for logging.
	Binary bool
	// CloseCode is the client's close code for KindClose, or
	// ws.StatusNoStatusRcvd (1005) when the close payload was empty.
	CloseCode ws.StatusCode
	// CloseReason is the valid UTF-8 close reason; same lifetime as Payload.
	CloseReason []byte
}

// releaseAbove is the reassembly buffer capacity kept between messages; a
// larger buffer is dropped after use so that one big message does not pin
// memory for the connection's lifetime.
const releaseAbove = 64 << 10

// Reader turns client bytes into messages and control frames. It validates
// each frame (masked, RSV bits zero since no extension is negotiated, known
// opcode, control frames final and at most 125 bytes, continuation order),
// unmasks payloads in place in the caller's buffer, reassembles fragmented
// messages into its own buffer, enforces MaxMessage on the whole message from
// frame headers before the payload arrives, checks UTF-8 of complete text
// messages (1007) and close frames (length 1 or invalid code: 1002; bad
// reason: 1007).
//
// A Reader belongs to one connection and is used by one goroutine at a time
// (the connection's loop). The zero value is ready to use.
type Reader struct {
	// MaxMessage is the largest message payload accepted, in bytes, counted
	// over all fragments; exactly MaxMessage is accepted. 0 means unlimited
	// (a client may then make the caller buffer an arbitrarily large frame).
	// An int32, so that it packs with the flags below: the Reader is part of
	// every connection's record.
	MaxMessage int32

	frag   bool // inside a fragmented message
	binary bool // opcode of that message
	done   bool // buf was handed out by the last Next; recycle it on the next one
	buf    []byte
}

// Next consumes at most one frame from the start of buf.
//
// consumed is the number of bytes of buf the caller must discard. ok reports
// whether f holds a complete message or a control frame; after a non-final
// fragment ok is false, err nil and consumed > 0: discard and call again.
// ErrNeedMore (consumed 0) means buf does not hold a whole frame yet; keep
// the bytes, append more and call again. A protocol violation returns a
// *CloseError; the connection is then finished and consumed is meaningless.
//
// Next unmasks the frame's payload in place, so bytes it consumed must not be
// passed to it again. Loop only (the Reader's single goroutine). It does not
// allocate, except to grow the reassembly buffer of fragmented messages.
func (r *Reader) Next(buf []byte) (f Frame, consumed int, ok bool, err error) {
	if r.done {
		r.done = false
		r.recycle()
	}
	h, hl, err := ParseHeader(buf)
	if err != nil {
		return f, 0, false, err
	}
	if err := r.check(&h); err != nil {
		return f, 0, false, err
	}
	if h.OpCode.IsData() && r.MaxMessage > 0 {
		have := 0
		if r.frag {
			have = len(r.buf)
		}
		if h.Length > int64(r.MaxMessage)-int64(have) {
			return f, 0, false, ErrMessageTooBig
		}
	}
	if h.Length > int64(len(buf)-hl) {
		return f, 0, false, ErrNeedMore
	}
	consumed = hl + int(h.Length)
	p := buf[hl:consumed]
	ws.Cipher(p, h.Mask, 0)

	switch h.OpCode {
	case ws.OpPing:
		return Frame{Kind: KindPing, Payload: p}, consumed, true, nil
	case ws.OpPong:
		return Frame{Kind: KindPong, Payload: p}, consumed, true, nil
	case ws.OpClose:
		f, err = parseClose(p)
		return f, consumed, err == nil, err
	case ws.OpContinuation:
		r.buf = append(r.buf, p...)
		if !h.Fin {
			return f, consumed, false, nil
		}
		r.frag = false
		r.done = true
		return r.message(r.buf, r.binary, consumed)
	}
	bin := h.OpCode == ws.OpBinary
	if !h.Fin {
		r.frag = true
		r.binary = bin
		r.buf = append(r.buf[:0], p...)
		return f, consumed, false, nil
	}
	return r.message(p, bin, consumed)
}

func (r *Reader) message(p []byte, bin bool, consumed int) (Frame, int, bool, error) {
	if !bin && !utf8.Valid(p) {
		return Frame{}, 0, false, errInvalidText
	}
	return Frame{Kind: KindMessage, Payload: p, Binary: bin}, consumed, true, nil
}

// check applies the RFC 6455 §5 header rules for a server.
func (r *Reader) check(h *ws.Header) error {
	switch {
	case h.Rsv != 0:
		return errRsv
	case h.OpCode.IsReserved():
		return errOpCode
	case !h.Masked:
		return errUnmasked
	}
	if h.OpCode.IsControl() {
		if !h.Fin {
			return errControlFragment
		}
		if h.Length > ws.MaxControlFramePayloadSize {
			return errControlTooLong
		}
		return nil
	}
	if r.frag && h.OpCode != ws.OpContinuation {
		return errNoContinuation
	}
	if !r.frag && h.OpCode == ws.OpContinuation {
		return errStrayContinue
	}
	return nil
}

func parseClose(p []byte) (Frame, error) {
	f := Frame{Kind: KindClose, CloseCode: ws.StatusNoStatusRcvd}
	switch len(p) {
	case 0:
		return f, nil
	case 1:
		return Frame{}, errCloseLength
	}
	f.CloseCode = ws.StatusCode(binary.BigEndian.Uint16(p))
	if !validCloseCode(f.CloseCode) {
		return Frame{}, errCloseCode
	}
	f.CloseReason = p[2:]
	if !utf8.Valid(f.CloseReason) {
		return Frame{}, errInvalidCloseText
	}
	return f, nil
}

// validCloseCode accepts the codes a peer may send, the same set as Reverb's
// frame layer (ratchet/rfc6455): the defined 1000-1003 and 1007-1011, and the
// registered and private ranges 3000-4999.
func validCloseCode(c ws.StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// Reset drops any partial fragmented message, so the Reader can serve a new
// connection; MaxMessage is kept. Loop only.
func (r *Reader) Reset() {
	r.frag, r.binary, r.done = false, false, false
	r.recycle()
}

func (r *Reader) recycle() {
	if cap(r.buf) > releaseAbove {
		r.buf = nil
	} else {
		r.buf = r.buf[:0]
	}
}
