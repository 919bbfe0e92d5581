package wsproto

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// PingFrame is a complete server ping with an empty payload. Shared by every
// goroutine: write it, never modify it.
var PingFrame = []byte{0x80 | byte(ws.OpPing), 0}

// maxCloseReason is what fits in a control frame after the 2-byte code.
const maxCloseReason = ws.MaxControlFramePayloadSize - 2

// HeaderLen returns the size of the header AppendHeader writes for an
// n-byte payload (2, 4 or 10). Any goroutine may call it.
func HeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// AppendHeader appends the header of an unmasked, final server frame with
// opcode op and an n-byte payload; the caller appends the payload. This lets
// encoders write a message straight after its header. Any goroutine may call
// it.
func AppendHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
}

// AppendFrame appends one unmasked FIN frame (header and payload) as the
// server sends it. payload is only read. Any goroutine may call it.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(AppendHeader(dst, op, len(payload)), payload...)
}

// AppendText appends one unmasked FIN text frame carrying payload.
// Any goroutine may call it.
func AppendText(dst, payload []byte) []byte {
	return AppendFrame(dst, ws.OpText, payload)
}

// AppendClose appends a close frame with code and reason. The reason is cut
// to the 123 bytes a control frame leaves, at a UTF-8 boundary so the peer
// does not fail on it. Code 0 and the codes that must never be sent (1005,
// 1006, 1015) give an empty payload, which is how to echo a client close
// that carried no code. Any goroutine may call it.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code.Empty() || code.IsProtocolReserved() {
		return append(dst, 0x80|byte(ws.OpClose), 0)
	}
	if len(reason) > maxCloseReason {
		n := maxCloseReason
		for n > 0 && reason[n]&0xc0 == 0x80 {
			n-- // reason[n] continues a rune: cut before that rune starts
		}
		reason = reason[:n]
	}
	dst = append(dst, 0x80|byte(ws.OpClose), byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// AppendClientFrame appends a frame as a client sends it: masked with mask,
// with the given FIN flag (false for a non-final fragment). For test and
// benchmark clients; the server never masks. payload is only read. Any
// goroutine may call it.
func AppendClientFrame(dst []byte, op ws.OpCode, fin bool, mask [4]byte, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, 0x80|127), uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// ParseHeader decodes the frame header at the start of buf without judging
// it (see Reader for the checks). It returns the header and its size in
// bytes, ErrNeedMore (n = 0) when buf holds less than the whole header, or a
// *CloseError 1002 for a 64-bit length with the top bit set (RFC 6455 §5.2).
// Any goroutine may call it; it does not allocate.
func ParseHeader(buf []byte) (h ws.Header, n int, err error) {
	if len(buf) < 2 {
		return h, 0, ErrNeedMore
	}
	b0, b1 := buf[0], buf[1]
	// The whole header must be present before any of it is judged, so the
	// verdict does not depend on how the bytes were split.
	n = 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	if len(buf) < n {
		return h, 0, ErrNeedMore
	}
	h.Fin = b0&0x80 != 0
	h.Rsv = b0 >> 4 & 0x7
	h.OpCode = ws.OpCode(b0 & 0x0f)
	h.Masked = b1&0x80 != 0
	switch l := b1 & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(buf[2:]))
	case 127:
		v := binary.BigEndian.Uint64(buf[2:])
		if v>>63 != 0 {
			return h, 0, errBadLength
		}
		h.Length = int64(v)
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], buf[n-4:n])
	}
	return h, n, nil
}
