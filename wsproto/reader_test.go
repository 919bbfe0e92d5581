package wsproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// cframe encodes a masked client frame with gobwas's encoder, so fixtures do
// not depend on the code under test.
func cframe(op ws.OpCode, fin bool, payload string) []byte {
	return ws.MustCompileFrame(ws.MaskFrameWith(ws.NewFrame(op, fin, []byte(payload)), testMask))
}

func text(s string) []byte { return cframe(ws.OpText, true, s) }

func closeFrame(code ws.StatusCode, reason string) []byte {
	p := append([]byte{byte(code >> 8), byte(code)}, reason...)
	return cframe(ws.OpClose, true, string(p))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// event is a copied-out Frame, so it survives the Reader's next call.
type event struct {
	kind    Kind
	payload string
	binary  bool
	code    ws.StatusCode
	reason  string
}

func record(f Frame) event {
	return event{kind: f.Kind, payload: string(f.Payload), binary: f.Binary, code: f.CloseCode, reason: string(f.CloseReason)}
}

func msg(s string) event { return event{kind: KindMessage, payload: s} }

type readerCase struct {
	name   string
	max    int
	input  []byte
	events []event
	code   ws.StatusCode // close code of the expected *CloseError; 0 for none
	rest   int           // bytes of an incomplete frame left at the end
}

var (
	big200   = strings.Repeat("x", 200)
	big70000 = strings.Repeat("€", 70000/3) + "ab"
)

var readerCases = []readerCase{
	{
		name:   "RFC 6455 §5.7 masked Hello",
		input:  []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
		events: []event{msg("Hello")},
	},
	{
		name:   "RFC 6455 §5.7 masked pong",
		input:  []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
		events: []event{{kind: KindPong, payload: "Hello"}},
	},
	{
		name:   "several messages in one read",
		input:  cat(text(`{"event":"pusher:ping","data":{}}`), text(""), cframe(ws.OpBinary, true, "\xff\x00")),
		events: []event{msg(`{"event":"pusher:ping","data":{}}`), msg(""), {kind: KindMessage, payload: "\xff\x00", binary: true}},
	},
	{
		name: "fragmented message with interleaved ping",
		input: cat(cframe(ws.OpText, false, "Hel"), cframe(ws.OpPing, true, "p"),
			cframe(ws.OpContinuation, false, ""), cframe(ws.OpContinuation, true, "lo"), text("next")),
		events: []event{{kind: KindPing, payload: "p"}, msg("Hello"), msg("next")},
	},
	{
		name:   "rune split across fragments",
		input:  cat(cframe(ws.OpText, false, "\xe2\x82"), cframe(ws.OpContinuation, true, "\xac")),
		events: []event{msg("€")},
	},
	{
		name:   "16-bit length",
		input:  text(big200),
		events: []event{msg(big200)},
	},
	{
		name:   "64-bit length",
		input:  text(big70000),
		events: []event{msg(big70000)},
	},
	{
		name:   "exactly at the limit",
		max:    10,
		input:  cat(text("0123456789"), cframe(ws.OpText, false, "0123"), cframe(ws.OpContinuation, true, "456789")),
		events: []event{msg("0123456789"), msg("0123456789")},
	},
	{
		name:   "over the limit by header, payload not sent",
		max:    10,
		input:  cat(text("ok"), []byte{0x81, 0x8b, 1, 2, 3, 4}),
		events: []event{msg("ok")},
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "over the limit across fragments",
		max:    10,
		input:  cat(cframe(ws.OpBinary, false, "012345"), cframe(ws.OpPing, true, ""), cframe(ws.OpContinuation, true, "6789a")),
		events: []event{{kind: KindPing}},
		code:   ws.StatusMessageTooBig,
	},
	{
		name:   "control frames are not limited",
		max:    1,
		input:  cframe(ws.OpPing, true, "0123456789"),
		events: []event{{kind: KindPing, payload: "0123456789"}},
	},
	{
		name:   "close without payload",
		input:  cframe(ws.OpClose, true, ""),
		events: []event{{kind: KindClose, code: ws.StatusNoStatusRcvd}},
	},
	{
		name:   "close with code and reason",
		input:  closeFrame(1000, "bye ✓"),
		events: []event{{kind: KindClose, code: 1000, reason: "bye ✓"}},
	},
	{
		name:   "close with private code",
		input:  cat(closeFrame(4999, "")),
		events: []event{{kind: KindClose, code: 4999}},
	},
	{name: "close of one byte", input: cframe(ws.OpClose, true, "\x03"), code: ws.StatusProtocolError},
	{name: "close code 999", input: closeFrame(999, ""), code: ws.StatusProtocolError},
	{name: "close code 1004", input: closeFrame(1004, ""), code: ws.StatusProtocolError},
	{name: "close code 1005", input: closeFrame(1005, ""), code: ws.StatusProtocolError},
	{name: "close code 1006", input: closeFrame(1006, ""), code: ws.StatusProtocolError},
	{name: "close code 1012", input: closeFrame(1012, ""), code: ws.StatusProtocolError},
	{name: "close code 2999", input: closeFrame(2999, ""), code: ws.StatusProtocolError},
	{name: "close code 5000", input: closeFrame(5000, ""), code: ws.StatusProtocolError},
	{name: "close reason not UTF-8", input: closeFrame(1000, "\xce\xba\xed\xa0\x80"), code: ws.StatusInvalidFramePayloadData},
	{name: "reserved data opcode", input: cframe(3, true, ""), code: ws.StatusProtocolError},
	{name: "reserved control opcode", input: cframe(0xb, true, ""), code: ws.StatusProtocolError},
	{name: "unmasked client frame", input: []byte{0x81, 0x02, 'h', 'i'}, code: ws.StatusProtocolError},
	{name: "RSV1 set (deflate not negotiated)", input: []byte{0xc1, 0x80, 0, 0, 0, 0}, code: ws.StatusProtocolError},
	{name: "RSV3 set", input: []byte{0x91, 0x80, 0, 0, 0, 0}, code: ws.StatusProtocolError},
	{name: "fragmented ping", input: cframe(ws.OpPing, false, "x"), code: ws.StatusProtocolError},
	{name: "ping over 125 bytes", input: cframe(ws.OpPing, true, strings.Repeat("p", 126)), code: ws.StatusProtocolError},
	{name: "continuation without start", input: cframe(ws.OpContinuation, true, "x"), code: ws.StatusProtocolError},
	{name: "new message inside fragmented one", input: cat(cframe(ws.OpText, false, "a"), text("b")), code: ws.StatusProtocolError},
	{name: "64-bit length with top bit", input: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, code: ws.StatusProtocolError},
	{name: "invalid UTF-8 text", input: cat(text("ok"), text("\xce\xba\xed\xa0\x80")), events: []event{msg("ok")}, code: ws.StatusInvalidFramePayloadData},
	{name: "invalid UTF-8 across fragments", input: cat(cframe(ws.OpText, false, "\xe2\x82"), cframe(ws.OpContinuation, true, "x")), code: ws.StatusInvalidFramePayloadData},
	{name: "invalid UTF-8 binary is fine", input: cframe(ws.OpBinary, true, "\xed\xa0\x80"), events: []event{{kind: KindMessage, payload: "\xed\xa0\x80", binary: true}}},
	{name: "incomplete header", input: []byte{0x81}, rest: 1},
	{name: "incomplete payload", input: cat(text("a"), text("hello")[:8]), events: []event{msg("a")}, rest: 8},
}

// feed runs a fresh Reader over chunks the way the loop does: keep unconsumed
// bytes, append the next chunk, call Next until it needs more.
func feed(t *testing.T, max int, chunks ...[]byte) (events []event, err error, rest int) {
	t.Helper()
	r := Reader{MaxMessage: int32(max)}
	var pending []byte
	for _, c := range chunks {
		pending = append(pending, c...)
		for {
			f, n, ok, err := r.Next(pending)
			if err == ErrNeedMore {
				if n != 0 {
					t.Fatalf("ErrNeedMore with consumed %d", n)
				}
				break
			}
			if err != nil {
				return events, err, 0
			}
			if n <= 0 || n > len(pending) {
				t.Fatalf("consumed %d of %d bytes", n, len(pending))
			}
			if ok {
				events = append(events, record(f))
			} else if f.Kind != 0 {
				t.Fatalf("ok = false with Kind %d", f.Kind)
			}
			pending = pending[n:]
		}
	}
	return events, nil, len(pending)
}

func checkOutcome(t *testing.T, tc readerCase, events []event, err error, rest int) {
	t.Helper()
	if len(events) != len(tc.events) {
		t.Fatalf("got %d events %+v, want %+v", len(events), events, tc.events)
	}
	for i := range events {
		if events[i] != tc.events[i] {
			t.Fatalf("event %d = %+v, want %+v", i, events[i], tc.events[i])
		}
	}
	var ce *CloseError
	switch {
	case tc.code == 0 && err != nil:
		t.Fatalf("unexpected error %v", err)
	case tc.code != 0 && !errors.As(err, &ce):
		t.Fatalf("error %v, want close %d", err, tc.code)
	case tc.code != 0 && ce.Code != tc.code:
		t.Fatalf("close code %d (%s), want %d", ce.Code, ce.Reason, tc.code)
	case tc.code == 0 && rest != tc.rest:
		t.Fatalf("left %d bytes, want %d", rest, tc.rest)
	}
}

func TestReader(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			events, err, rest := feed(t, tc.max, bytes.Clone(tc.input))
			checkOutcome(t, tc, events, err, rest)
		})
	}
}

// TestReaderSplit delivers every fixture cut at every offset, and one byte
// at a time; the outcome must not depend on how TCP chops the stream.
func TestReaderSplit(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			step := 1
			if len(tc.input) > 1000 {
				step = 997 // the 70 KB fixture: a spread of cuts is enough
			}
			for i := 0; i <= len(tc.input); i += step {
				in := bytes.Clone(tc.input)
				events, err, rest := feed(t, tc.max, in[:i], in[i:])
				checkOutcome(t, tc, events, err, rest)
			}
			if len(tc.input) > 1000 {
				return
			}
			in := bytes.Clone(tc.input)
			chunks := make([][]byte, len(in))
			for i := range in {
				chunks[i] = in[i : i+1]
			}
			events, err, rest := feed(t, tc.max, chunks...)
			checkOutcome(t, tc, events, err, rest)
		})
	}
}

func TestReaderRejectsOversizeBeforePayload(t *testing.T) {
	r := Reader{MaxMessage: 10000}
	// A 1 GB text frame announced by its header alone.
	hdr := []byte{0x81, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4}
	_, _, _, err := r.Next(hdr)
	if err != ErrMessageTooBig || ErrMessageTooBig.Code != 1009 || ErrMessageTooBig.Reason != "Maximum message size exceeded" {
		t.Fatalf("Next() error = %v, want %v", err, ErrMessageTooBig)
	}
}

func TestReaderPayloadAliasesInput(t *testing.T) {
	buf := text("hello")
	var r Reader
	f, n, ok, err := r.Next(buf)
	if err != nil || !ok || n != len(buf) {
		t.Fatalf("Next() = %v %d %v", err, n, ok)
	}
	if &f.Payload[0] != &buf[len(buf)-5] {
		t.Fatal("payload of an unfragmented frame was copied")
	}
	if string(buf[len(buf)-5:]) != "hello" {
		t.Fatalf("input not unmasked in place: %q", buf)
	}
}

func TestReaderReleasesLargeBuffer(t *testing.T) {
	var r Reader
	half := strings.Repeat("a", releaseAbove)
	first := cframe(ws.OpText, false, half)
	in := cat(first, cframe(ws.OpContinuation, true, half))
	if _, _, ok, err := r.Next(in); ok || err != nil {
		t.Fatalf("first fragment: ok %v, %v", ok, err)
	}
	f, _, ok, err := r.Next(in[len(first):])
	if err != nil || !ok || len(f.Payload) != 2*releaseAbove || cap(r.buf) <= releaseAbove {
		t.Fatalf("last fragment: %v %v, %d bytes, cap %d", err, ok, len(f.Payload), cap(r.buf))
	}
	if _, _, _, err := r.Next(nil); err != ErrNeedMore || r.buf != nil {
		t.Fatalf("buffer of %d bytes kept after the message was handed out", cap(r.buf))
	}
}

func TestReaderReset(t *testing.T) {
	var r Reader
	start := cframe(ws.OpText, false, "ab")
	if _, _, _, err := r.Next(start); err != nil {
		t.Fatal(err)
	}
	r.Reset()
	_, _, _, err := r.Next(cframe(ws.OpContinuation, true, "c"))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != ws.StatusProtocolError {
		t.Fatalf("continuation after Reset: %v, want close 1002", err)
	}
}

// TestReaderGobwasWriter reads what gobwas's client-side writers produce,
// including wsutil.Writer's automatic fragmentation.
func TestReaderGobwasWriter(t *testing.T) {
	var stream bytes.Buffer
	payloads := []string{"", "a", big200, big70000, `{"event":"client-typing","channel":"private-chat","data":{"x":"ü"}}`}
	for _, p := range payloads {
		if err := ws.WriteFrame(&stream, ws.MaskFrame(ws.NewTextFrame([]byte(p)))); err != nil {
			t.Fatal(err)
		}
	}
	w := wsutil.NewWriterSize(&stream, ws.StateClientSide, ws.OpText, 64)
	for _, p := range payloads {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := wsutil.WriteClientMessage(&stream, ws.OpPing, []byte("hb")); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteFrame(&stream, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "tab closed")))); err != nil {
		t.Fatal(err)
	}

	var want []event
	for range 2 {
		for _, p := range payloads {
			want = append(want, msg(p))
		}
	}
	want = append(want, event{kind: KindPing, payload: "hb"}, event{kind: KindClose, code: 1001, reason: "tab closed"})
	tc := readerCase{events: want}
	events, err, rest := feed(t, 0, stream.Bytes())
	checkOutcome(t, tc, events, err, rest)
}

// TestAppendFrameGobwasReader reads our server frames back with gobwas.
func TestAppendFrameGobwasReader(t *testing.T) {
	var out []byte
	cases := []struct {
		op ws.OpCode
		p  string
	}{
		{ws.OpText, ""},
		{ws.OpText, "hi"},
		{ws.OpText, strings.Repeat("a", 125)},
		{ws.OpText, strings.Repeat("b", 126)},
		{ws.OpBinary, strings.Repeat("c", 0xffff)},
		{ws.OpText, strings.Repeat("d", 0x10000)},
		{ws.OpPong, "pp"},
	}
	for _, c := range cases {
		if c.op == ws.OpText {
			out = AppendText(out, []byte(c.p))
		} else {
			out = AppendFrame(out, c.op, []byte(c.p))
		}
		if n := len(AppendHeader(nil, c.op, len(c.p))); n != HeaderLen(len(c.p)) {
			t.Fatalf("HeaderLen(%d) = %d, AppendHeader wrote %d", len(c.p), HeaderLen(len(c.p)), n)
		}
	}
	out = append(out, PingFrame...)
	rd := bytes.NewReader(out)
	for _, c := range cases {
		f, err := ws.ReadFrame(rd)
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.CheckHeader(f.Header, ws.StateClientSide); err != nil {
			t.Fatalf("gobwas rejects our header: %v", err)
		}
		if !f.Header.Fin || f.Header.OpCode != c.op || string(f.Payload) != c.p {
			t.Fatalf("read back %+v (%d bytes), want op %d with %d bytes", f.Header, len(f.Payload), c.op, len(c.p))
		}
	}
	f, err := ws.ReadFrame(rd)
	if err != nil || f.Header.OpCode != ws.OpPing || !f.Header.Fin || len(f.Payload) != 0 {
		t.Fatalf("PingFrame read back as %+v, %v", f.Header, err)
	}
	if rd.Len() != 0 {
		t.Fatalf("%d trailing bytes", rd.Len())
	}
}

func TestAppendClose(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes, 2 per rune
	cases := []struct {
		code       ws.StatusCode
		reason     string
		wantCode   ws.StatusCode
		wantReason string
	}{
		{1009, "Maximum message size exceeded", 1009, "Maximum message size exceeded"},
		{4200, "Server is restarting", 4200, "Server is restarting"},
		{4001, strings.Repeat("x", 123), 4001, strings.Repeat("x", 123)},
		{4001, strings.Repeat("x", 124), 4001, strings.Repeat("x", 123)},
		{4009, long, 4009, long[:122]},
		{1005, "ignored", 0, ""},
		{0, "", 0, ""},
	}
	for _, c := range cases {
		out := AppendClose(nil, c.code, c.reason)
		f, err := ws.ReadFrame(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.OpCode != ws.OpClose || !f.Header.Fin || f.Header.Length > ws.MaxControlFramePayloadSize {
			t.Fatalf("header %+v", f.Header)
		}
		code, reason := ws.ParseCloseFrameData(f.Payload)
		if code != c.wantCode || reason != c.wantReason {
			t.Fatalf("AppendClose(%d) read back %d %q, want %d %q", c.code, code, reason, c.wantCode, c.wantReason)
		}
		if !code.Empty() {
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				t.Fatalf("gobwas rejects our close: %v", err)
			}
		}
	}
}

func TestAppendClientFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		p := bytes.Repeat([]byte{'z'}, n)
		want := ws.MustCompileFrame(ws.MaskFrameWith(ws.NewFrame(ws.OpText, n%2 == 0, p), testMask))
		if got := AppendClientFrame(nil, ws.OpText, n%2 == 0, testMask, p); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: differs from gobwas's encoding", n)
		}
	}
}

func TestCloseErrorText(t *testing.T) {
	if got := ErrMessageTooBig.Error(); got != "wsproto: close 1009: Maximum message size exceeded" {
		t.Fatalf("Error() = %q", got)
	}
}
