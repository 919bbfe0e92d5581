package wsproto

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
)

// Sentinel errors of the HTTP parser. Any goroutine may compare against them.
var (
	// ErrNeedMore means the input does not hold a complete unit yet: keep the
	// bytes, append more and call again. Nothing was consumed.
	ErrNeedMore = errors.New("wsproto: need more data")
	// ErrTooLarge means the request exceeds max_request_size; answer 413.
	ErrTooLarge = errors.New("wsproto: request too large")
	// ErrBadRequest means the request head is malformed; answer 400.
	ErrBadRequest = errors.New("wsproto: bad request")
)

// VersionHeader is the extra header line a 426 answer to CheckUpgrade must
// carry (RFC 6455 §4.2.2), ready for AppendResponse's extra argument.
const VersionHeader = "Sec-WebSocket-Version: 13"

// Request is a parsed HTTP/1.x request head.
//
// All []byte fields alias the buffer given to ParseRequest and stay valid
// until the caller discards or overwrites those bytes. Header fields hold the
// trimmed value of the last occurrence of that header; nil means absent.
type Request struct {
	Method []byte
	// Path is the raw request target before '?', not percent-decoded. An
	// absolute-form target (http://host/p) is reduced to its path.
	Path []byte
	// Query is the raw text after '?' (without it); nil when there is no '?'.
	Query []byte

	Host        []byte
	Upgrade     []byte
	Connection  []byte
	Origin      []byte
	Key         []byte // Sec-WebSocket-Key
	Version     []byte // Sec-WebSocket-Version
	ContentType []byte

	// ContentLength is the body length in bytes; -1 when the header is absent.
	ContentLength int
	// Chunked is set for "Transfer-Encoding: chunked" (then ContentLength is -1).
	Chunked bool
	// KeepAlive reports whether the connection may serve another request:
	// HTTP/1.1 without "Connection: close", or HTTP/1.0 with "keep-alive".
	KeepAlive bool
	// HTTP11 is set for HTTP/1.1 and later 1.x minors; false for HTTP/1.0.
	HTTP11 bool
	// HeadLen is the byte count of the request line, the headers and the
	// empty line that ends them; the body (if any) starts at buf[HeadLen].
	HeadLen int

	// flags collects list-valued tokens over every occurrence of a header,
	// since the fields above only keep the last one.
	flags uint8
}

const (
	flagConnClose uint8 = 1 << iota
	flagConnKeepAlive
	flagConnUpgrade
	flagUpgradeWS
	flagDupKey
	flagHost
	flagCLOverflow
)

// rootPath is the Path of an absolute-form target without a path. Capacity 1
// so that an append by the caller cannot write into the shared array.
var rootPath = []byte("/")[:1:1]

// ParseRequest parses the request head at the start of buf into r, which it
// overwrites. max is max_request_size in bytes (§8.2): request line, headers
// and body together must fit; max <= 0 means no limit.
//
// Results: nil with r filled; ErrNeedMore when the head is incomplete (keep
// buf and call again with more bytes); ErrTooLarge when the head, or the head
// plus Content-Length, exceeds max (also before the head is complete);
// ErrBadRequest for a malformed request line or header, a bad or conflicting
// Content-Length, an unsupported Transfer-Encoding, or a missing or repeated
// Host in HTTP/1.1. Header names are matched case-insensitively; lines may
// end in CRLF or a bare LF, and empty lines before the request line are
// skipped (and counted in HeadLen).
//
// ParseRequest does not allocate. Any goroutine may call it. r's slices alias
// buf (see Request).
func ParseRequest(buf []byte, max int, r *Request) error {
	*r = Request{ContentLength: -1}
	pos := 0
	seenLine := false
	for {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			if max > 0 && len(buf) > max {
				return ErrTooLarge
			}
			return ErrNeedMore
		}
		end := pos + i + 1
		if max > 0 && end > max {
			return ErrTooLarge
		}
		line := buf[pos : pos+i]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		pos = end
		if !seenLine {
			if len(line) == 0 {
				continue // RFC 9112 §2.2: ignore CRLFs before the request line
			}
			if !r.parseRequestLine(line) {
				return ErrBadRequest
			}
			seenLine = true
			continue
		}
		if len(line) == 0 {
			break
		}
		if !r.parseHeader(line) {
			return ErrBadRequest
		}
	}
	r.HeadLen = pos
	return r.finish(max)
}

// finish applies the checks that need the whole head.
func (r *Request) finish(max int) error {
	if r.HTTP11 && r.flags&flagHost == 0 {
		return ErrBadRequest // RFC 9112 §3.2
	}
	if r.Chunked && r.ContentLength >= 0 {
		return ErrBadRequest // both framings at once: request smuggling shape
	}
	if r.flags&flagCLOverflow != 0 {
		if max > 0 {
			return ErrTooLarge
		}
		return ErrBadRequest
	}
	// HeadLen <= max holds here: every line end was checked against max.
	if max > 0 && r.ContentLength > max-r.HeadLen {
		return ErrTooLarge
	}
	if r.flags&flagConnClose != 0 {
		r.KeepAlive = false
	} else if r.HTTP11 {
		r.KeepAlive = true
	} else {
		r.KeepAlive = r.flags&flagConnKeepAlive != 0
	}
	return nil
}

func (r *Request) parseRequestLine(line []byte) bool {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return false
	}
	r.Method = line[:sp]
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return false
	}
	target, proto := rest[:sp], rest[sp+1:]
	// "HTTP/1.x": later 1.x minors are served as 1.1 (RFC 9110 §2.5).
	if len(proto) != 8 || string(proto[:7]) != "HTTP/1." || proto[7] < '0' || proto[7] > '9' {
		return false
	}
	r.HTTP11 = proto[7] != '0'
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	if target[0] != '/' && target[0] != '*' {
		target = stripAuthority(target)
		if target == nil {
			return false
		}
	}
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		r.Path, r.Query = target[:q], target[q+1:]
	} else {
		r.Path = target
	}
	if len(r.Path) == 0 {
		r.Path = rootPath
	}
	return true
}

// stripAuthority reduces an absolute-form target to its path and query,
// which servers must accept (RFC 9112 §3.2.2). nil means malformed.
func stripAuthority(t []byte) []byte {
	var n int
	switch {
	case hasPrefixFold(t, "http://"):
		n = 7
	case hasPrefixFold(t, "https://"):
		n = 8
	default:
		return nil
	}
	t = t[n:]
	for i, c := range t {
		if c == '/' || c == '?' {
			return t[i:]
		}
	}
	return t[len(t):]
}

func (r *Request) parseHeader(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	// No space before the colon and no obs-fold (RFC 9112 §5.1, §5.2).
	if colon <= 0 || !isToken(line[:colon]) {
		return false
	}
	name := line[:colon]
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			if r.flags&flagHost != 0 {
				return false // RFC 9112 §3.2: exactly one Host
			}
			r.flags |= flagHost
			r.Host = value
		}
	case 6:
		if equalFold(name, "origin") {
			r.Origin = value
		}
	case 7:
		if equalFold(name, "upgrade") {
			r.Upgrade = value
			if hasToken(value, "websocket") {
				r.flags |= flagUpgradeWS
			}
		}
	case 10:
		if equalFold(name, "connection") {
			r.Connection = value
			r.flags |= connectionFlags(value)
		}
	case 12:
		if equalFold(name, "content-type") {
			r.ContentType = value
		}
	case 14:
		if equalFold(name, "content-length") {
			return r.setContentLength(value)
		}
	case 17:
		if equalFold(name, "sec-websocket-key") {
			if r.Key != nil {
				r.flags |= flagDupKey
			}
			r.Key = value
		} else if equalFold(name, "transfer-encoding") {
			// Only plain chunked is supported; anything else cannot be framed.
			if r.Chunked || !equalFold(value, "chunked") {
				return false
			}
			r.Chunked = true
		}
	case 21:
		if equalFold(name, "sec-websocket-version") {
			r.Version = value
		}
	}
	return true
}

func (r *Request) setContentLength(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	n := 0
	overflow := false
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
		if n > (1<<31-1-9)/10 {
			overflow = true // far beyond any request size limit; keep validating digits
			continue
		}
		n = n*10 + int(c-'0')
	}
	if overflow {
		r.flags |= flagCLOverflow
		return true
	}
	// Repeats are allowed only with the same value (RFC 9112 §6.3).
	if r.ContentLength >= 0 && r.ContentLength != n {
		return false
	}
	r.ContentLength = n
	return true
}

func connectionFlags(v []byte) uint8 {
	var f uint8
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		switch {
		case equalFold(tok, "close"):
			f |= flagConnClose
		case equalFold(tok, "keep-alive"):
			f |= flagConnKeepAlive
		case equalFold(tok, "upgrade"):
			f |= flagConnUpgrade
		}
	}
	return f
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v = nextToken(v)
		if equalFold(t, tok) {
			return true
		}
	}
	return false
}

func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return trimOWS(v[:i]), v[i+1:]
	}
	return trimOWS(v), nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}

// tokenChars marks RFC 9110 tchar bytes.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// IsUpgrade reports whether the request asks for a WebSocket: an Upgrade
// header holding the token "websocket" and a Connection header holding
// "upgrade", both case-insensitive and looked up over every occurrence of
// those headers. Only meaningful on a Request filled by ParseRequest. Any
// goroutine may call it.
func (r *Request) IsUpgrade() bool {
	const want = flagUpgradeWS | flagConnUpgrade
	return r.flags&want == want
}

// CheckUpgrade validates a WebSocket opening handshake (RFC 6455 §4.2.1):
// GET, HTTP/1.1, IsUpgrade, no body, Sec-WebSocket-Version 13 and exactly
// one Sec-WebSocket-Key that is base64 of 16 bytes. It returns 0 when the
// handshake is acceptable, otherwise the HTTP status to answer: 426 for a
// version other than 13 (send VersionHeader with it), 400 for the rest.
// Any goroutine may call it.
func CheckUpgrade(r *Request) int {
	if string(r.Method) != "GET" || !r.HTTP11 || !r.IsUpgrade() {
		return 400
	}
	if r.ContentLength > 0 || r.Chunked {
		return 400 // body bytes would be taken for frames
	}
	if r.Version == nil {
		return 400
	}
	if string(r.Version) != "13" {
		return 426
	}
	if r.flags&flagDupKey != 0 || len(r.Key) != 24 {
		return 400
	}
	var raw [18]byte
	n, err := base64.StdEncoding.Decode(raw[:], r.Key)
	if err != nil || n != 16 {
		return 400
	}
	return 0
}

// acceptGUID is the fixed string of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AppendUpgradeResponse appends the complete "101 Switching Protocols"
// response for the client's Sec-WebSocket-Key, with the X-Powered-By header
// Reverb sends (§2.2). It negotiates no extension and no subprotocol, which
// is how permessage-deflate offers are declined. key is only read. Any
// goroutine may call it; it does not allocate for keys up to 64 bytes.
func AppendUpgradeResponse(dst, key []byte) []byte {
	var in [64 + len(acceptGUID)]byte
	var sum [sha1.Size]byte
	if len(key) <= 64 {
		n := copy(in[:], key)
		n += copy(in[n:], acceptGUID)
		sum = sha1.Sum(in[:n])
	} else {
		sum = sha1.Sum(append(append([]byte(nil), key...), acceptGUID...))
	}
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\n"+
		"Connection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "...)
	dst = base64.StdEncoding.AppendEncode(dst, sum[:])
	return append(dst, "\r\nX-Powered-By: Laravel Reverb\r\n\r\n"...)
}

// AppendResponse appends a complete HTTP/1.1 response to dst: the status
// line with ReasonPhrase(status), Content-Type when contentType is not empty,
// Content-Length, "Connection: close" when !keepAlive, each extra header line
// ("Name: value", without CRLF), the empty line, then body. Any goroutine may
// call it; body is only read.
func AppendResponse(dst []byte, status int, contentType string, body []byte, keepAlive bool, extra ...string) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, ReasonPhrase(status)...)
	dst = append(dst, "\r\n"...)
	if contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, contentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	if !keepAlive {
		dst = append(dst, "Connection: close\r\n"...)
	}
	for _, h := range extra {
		dst = append(dst, h...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// ReasonPhrase returns the standard reason phrase of the statuses this
// server sends, and "" for others (an empty phrase is valid HTTP/1.1). Any
// goroutine may call it.
func ReasonPhrase(status int) string {
	switch status {
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 204:
		return "No Content"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 411:
		return "Length Required"
	case 413:
		return "Content Too Large"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	}
	return ""
}
