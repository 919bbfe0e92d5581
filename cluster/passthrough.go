package cluster

import (
	"strings"
	"unsafe"
)

// Message envelopes are the one kind every cross-node event takes, so they
// get a reader of their own. appendMessage always writes the same layout,
// payload last:
//
//	{"v":1,"type":"message","node":"…","app":"…","channel":"…"[,"except":"…"][,"t":…],"payload":{…}}
//
// readMessage scans that head's few strings and hands the payload on as
// the bytes that arrived: not parsed, not re-encoded, not copied (the hub
// copies it once, into the frame). The payload was built by another
// node's hub and Redis is trusted as much as the nodes publishing on it,
// so it is not validated again: what follows `"payload":` up to the
// envelope's closing brace is taken as the payload, as appendMessage wrote
// it. A head in any other shape (escaped strings, other field orders,
// other writers) goes to the general decoder, which parses everything.
const messageHead = `{"v":1,"type":"message","node":`

// readMessage decodes msg into e when it is a message envelope in
// appendMessage's layout and reports whether it did; on false e is left
// for the general path. e's slices alias msg, which is immutable.
func readMessage(msg string, e *envelope) bool {
	// The payload is an object and the envelope closes after it.
	if !strings.HasPrefix(msg, messageHead) || !strings.HasSuffix(msg, "}}") {
		return false
	}
	at := len(messageHead)
	node, at, ok := plainString(msg, at)
	if !ok || node == "" {
		return false
	}
	app, at, ok := keyString(msg, at, `,"app":`)
	if !ok || app == "" {
		return false
	}
	channel, at, ok := keyString(msg, at, `,"channel":`)
	if !ok || channel == "" {
		return false
	}
	except, next, ok := keyString(msg, at, `,"except":`)
	if ok {
		at = next
	}
	var sent int64
	if rest := msg[at:]; strings.HasPrefix(rest, `,"t":`) {
		at += len(`,"t":`)
		start := at
		for at < len(msg) && at-start < 19 && msg[at] >= '0' && msg[at] <= '9' {
			sent = sent*10 + int64(msg[at]-'0')
			at++
		}
		if at == start {
			return false
		}
	}
	const payloadKey = `,"payload":`
	if !strings.HasPrefix(msg[at:], payloadKey) || at+len(payloadKey) >= len(msg)-1 || msg[at+len(payloadKey)] != '{' {
		return false
	}
	at += len(payloadKey)
	*e = envelope{counts: e.counts[:0], members: e.members[:0], sure: e.sure[:0], chans: e.chans[:0]}
	e.kind = kindMessage
	e.node, e.app, e.channel, e.except = bytesOf(node), bytesOf(app), bytesOf(channel), bytesOf(except)
	e.sent = sent
	e.payload = bytesOf(msg[at : len(msg)-1])
	return true
}

// keyString reads key followed by a plain string at msg[at:].
func keyString(msg string, at int, key string) (string, int, bool) {
	if !strings.HasPrefix(msg[at:], key) {
		return "", at, false
	}
	return plainString(msg, at+len(key))
}

// plainString reads a JSON string without escapes or control bytes at
// msg[at:] and returns its contents and the offset after its closing
// quote; anything else is not ours to read here.
func plainString(msg string, at int) (string, int, bool) {
	if at >= len(msg) || msg[at] != '"' {
		return "", at, false
	}
	for i := at + 1; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == '"':
			return msg[at+1 : i], i + 1, true
		case c == '\\' || c < 0x20:
			return "", at, false
		}
	}
	return "", at, false
}

// bytesOf views s as a byte slice without copying. The slice must never
// be written: every reader of an envelope only reads or copies it.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
