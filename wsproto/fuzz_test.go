package wsproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"
)

// FuzzReader feeds arbitrary bytes, split at a fuzzed point, to a Reader
// with a fuzzed MaxMessage, and judges every answer against a model built on
// gobwas: ws.ReadHeader parses the same bytes, ws.CheckHeader decides header
// validity, and the model reassembles messages itself.
func FuzzReader(f *testing.F) {
	for _, tc := range readerCases {
		if len(tc.input) < 4096 {
			f.Add(tc.input, uint16(len(tc.input)/2), uint16(tc.max))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, cut, limit uint16) {
		data = bytes.Clone(data) // Next unmasks in place
		c := int(cut) % (len(data) + 1)
		r := Reader{MaxMessage: int32(limit)}
		m := model{limit: int64(limit)}
		var pending []byte
		for _, chunk := range [][]byte{data[:c], data[c:]} {
			pending = append(pending, chunk...)
			for {
				snap := bytes.Clone(pending)
				fr, n, ok, err := r.Next(pending)
				if m.judge(t, snap, fr, n, ok, err) {
					return
				}
				if err == ErrNeedMore {
					break
				}
				pending = pending[n:]
			}
		}
	})
}

// model is the expected Reader state, kept independently of the Reader.
type model struct {
	limit int64
	frag  bool
	bin   bool
	msg   []byte
}

func (m *model) overLimit(h ws.Header) bool {
	if !h.OpCode.IsData() || m.limit == 0 {
		return false
	}
	have := int64(0)
	if m.frag {
		have = int64(len(m.msg))
	}
	return have+h.Length > m.limit
}

// judge checks one Next result against gobwas's reading of snap, a copy of
// the bytes Next was given. It reports whether the stream ended.
func (m *model) judge(t *testing.T, snap []byte, fr Frame, n int, ok bool, err error) bool {
	t.Helper()
	hr := bytes.NewReader(snap)
	h, herr := ws.ReadHeader(hr)
	partialHeader := herr == io.EOF || herr == io.ErrUnexpectedEOF
	state := ws.StateServerSide
	if m.frag {
		state = state.Set(ws.StateFragmented)
	}
	var cerr error
	hs := 0
	if herr == nil {
		cerr = ws.CheckHeader(h, state)
		hs = len(snap) - hr.Len() // not HeaderSize: lengths may be non-minimally encoded
	}
	whole := herr == nil && int64(len(snap)-hs) >= h.Length

	if err == ErrNeedMore {
		switch {
		case n != 0:
			t.Fatalf("ErrNeedMore with consumed %d", n)
		case partialHeader:
		case herr != nil:
			t.Fatalf("Reader waits on a header gobwas rejects: %v", herr)
		case cerr != nil:
			t.Fatalf("Reader waits on a header that breaks %v", cerr)
		case m.overLimit(h):
			t.Fatalf("Reader waits for a frame over the limit: %+v", h)
		case whole:
			t.Fatalf("Reader waits though the whole frame is there: %+v", h)
		}
		return false
	}

	if err != nil {
		var ce *CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *CloseError", err)
		}
		want := m.expectedClose(t, h, herr, cerr, whole, snap[min(hs, len(snap)):])
		if ce.Code != want {
			t.Fatalf("close %d (%s), want %d; header %+v", ce.Code, ce.Reason, want, h)
		}
		return true
	}

	if herr != nil || cerr != nil || m.overLimit(h) {
		t.Fatalf("Reader accepted a header gobwas rejects (%v, %v) or over the limit: %+v", herr, cerr, h)
	}
	if n != hs+int(h.Length) {
		t.Fatalf("consumed %d, gobwas frame size %d", n, hs+int(h.Length))
	}
	p := snap[hs:n]
	ws.Cipher(p, h.Mask, 0)
	switch op := h.OpCode; op {
	case ws.OpPing, ws.OpPong:
		kind := KindPing
		if op == ws.OpPong {
			kind = KindPong
		}
		if !ok || fr.Kind != kind || !bytes.Equal(fr.Payload, p) {
			t.Fatalf("control frame: ok %v %+v, want kind %d payload %q", ok, fr, kind, p)
		}
	case ws.OpClose:
		code, reason := ws.StatusNoStatusRcvd, []byte(nil)
		if len(p) > 0 {
			code, reason = ws.StatusCode(binary.BigEndian.Uint16(p)), p[2:]
			if cerr := ws.CheckCloseFrameData(code, string(reason)); cerr != nil {
				t.Fatalf("accepted close %d %q that gobwas rejects: %v", code, reason, cerr)
			}
		}
		if !ok || fr.Kind != KindClose || fr.CloseCode != code || !bytes.Equal(fr.CloseReason, reason) {
			t.Fatalf("close: ok %v %+v, want %d %q", ok, fr, code, reason)
		}
	default:
		if op != ws.OpContinuation {
			m.bin = op == ws.OpBinary
			m.msg = m.msg[:0]
		}
		m.msg = append(m.msg, p...)
		m.frag = !h.Fin
		if m.frag {
			if ok || fr.Kind != 0 {
				t.Fatalf("non-final fragment returned %+v", fr)
			}
			return false
		}
		if !ok || fr.Kind != KindMessage || fr.Binary != m.bin || !bytes.Equal(fr.Payload, m.msg) {
			t.Fatalf("message: ok %v %+v, want binary %v %q", ok, fr, m.bin, m.msg)
		}
		if !m.bin && !utf8.Valid(m.msg) {
			t.Fatal("accepted invalid UTF-8 text")
		}
	}
	return false
}

// expectedClose derives the close code the Reader must fail with, or fails
// the test when nothing justifies a failure.
func (m *model) expectedClose(t *testing.T, h ws.Header, herr, cerr error, whole bool, rest []byte) ws.StatusCode {
	t.Helper()
	switch {
	case herr == ws.ErrHeaderLengthMSB:
		return ws.StatusProtocolError
	case herr != nil:
		t.Fatalf("Reader failed before the header was complete (gobwas: %v)", herr)
	case cerr != nil:
		return ws.StatusProtocolError
	case m.overLimit(h):
		return ws.StatusMessageTooBig
	case !whole:
		t.Fatalf("Reader failed a valid header before the payload arrived: %+v", h)
	}
	p := bytes.Clone(rest[:h.Length])
	ws.Cipher(p, h.Mask, 0)
	switch {
	case h.OpCode == ws.OpClose:
		if len(p) == 1 {
			return ws.StatusProtocolError
		}
		code, reason := ws.ParseCloseFrameData(p)
		cerr := ws.CheckCloseFrameData(code, reason)
		switch {
		case cerr != nil && cerr != ws.ErrProtocolInvalidUTF8:
			return ws.StatusProtocolError
		case code >= 5000:
			return ws.StatusProtocolError // gobwas lets these pass; Reverb does not
		case cerr == ws.ErrProtocolInvalidUTF8:
			return ws.StatusInvalidFramePayloadData
		}
		t.Fatalf("Reader rejected a valid close %d %q", code, reason)
	case h.OpCode.IsData() && h.Fin:
		msg, bin := p, h.OpCode == ws.OpBinary
		if h.OpCode == ws.OpContinuation {
			msg, bin = append(bytes.Clone(m.msg), p...), m.bin
		}
		if !bin && !utf8.Valid(msg) {
			return ws.StatusInvalidFramePayloadData
		}
	}
	t.Fatalf("Reader rejected a valid frame %+v", h)
	return 0
}

// FuzzParseRequest checks ParseRequest's invariants on arbitrary input: it
// never panics, returns only its documented errors, keeps every field inside
// the head, respects max, and gives the same verdict for every prefix
// ("need more" until the head is complete).
func FuzzParseRequest(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.head+tc.body), uint16(tc.max))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		var r Request
		err := ParseRequest(data, int(max), &r)
		switch err {
		case nil, ErrNeedMore, ErrTooLarge, ErrBadRequest:
		default:
			t.Fatalf("undocumented error %v", err)
		}
		if err == nil {
			checkParsed(t, data, int(max), &r)
		}
		for i := range len(data) {
			var p Request
			perr := ParseRequest(data[:i], int(max), &p)
			switch {
			case err == nil && i >= r.HeadLen:
				if perr != nil || view(&p) != view(&r) {
					t.Fatalf("prefix %d: %v, whole input parsed", i, perr)
				}
			case perr != ErrNeedMore && perr != err:
				t.Fatalf("prefix %d: %v, whole input: %v", i, perr, err)
			}
		}
	})
}

func checkParsed(t *testing.T, data []byte, max int, r *Request) {
	t.Helper()
	head := data[:r.HeadLen]
	if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
		t.Fatalf("head does not end with an empty line: %q", head)
	}
	if max > 0 && r.HeadLen+r.ContentLength > max {
		t.Fatalf("head %d + body %d over max %d", r.HeadLen, r.ContentLength, max)
	}
	if len(r.Method) == 0 || len(r.Path) == 0 || r.ContentLength < -1 || (r.Chunked && r.ContentLength != -1) {
		t.Fatalf("inconsistent request %+v", view(r))
	}
	fields := [][]byte{r.Method, r.Query, r.Host, r.Upgrade, r.Connection, r.Origin, r.Key, r.Version, r.ContentType}
	if &r.Path[0] != &rootPath[0] {
		fields = append(fields, r.Path)
	}
	for _, b := range fields {
		if len(b) > 0 && !within(b, head) {
			t.Fatalf("field %q does not alias the head", b)
		}
	}
	var again Request
	if err := ParseRequest(head, max, &again); err != nil || view(&again) != view(r) {
		t.Fatalf("the head alone parses differently: %v", err)
	}
}

// within reports whether b lies inside base's memory.
func within(b, base []byte) bool {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(base)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(base))
}
