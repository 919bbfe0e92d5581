package wsproto

import (
	"testing"

	"github.com/gobwas/ws"
)

func BenchmarkParseRequest(b *testing.B) {
	buf := []byte(chromeUpgrade)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := ParseRequest(buf, 10000, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderNext(b *testing.B) {
	frame := text(`{"event":"client-typing","channel":"private-chat.1","data":{"user":42}}`)
	buf := make([]byte, len(frame))
	var r Reader
	r.MaxMessage = 10000
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		copy(buf, frame) // Next unmasks in place
		if _, _, ok, err := r.Next(buf); !ok || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderNextFragmented(b *testing.B) {
	stream := cat(cframe(ws.OpText, false, `{"event":"client-typing",`), cframe(ws.OpContinuation, true, `"data":{}}`))
	buf := make([]byte, len(stream))
	var r Reader
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, stream)
		_, n, _, err := r.Next(buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, ok, err := r.Next(buf[n:]); !ok || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendText(b *testing.B) {
	payload := []byte(`{"event":"orders.shipped","channel":"orders","data":"{\"id\":1}"}`)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		dst = AppendText(dst[:0], payload)
	}
}

func BenchmarkAppendUpgradeResponse(b *testing.B) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendUpgradeResponse(dst[:0], key)
	}
}
