package pusher

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
	"time"
)

// apiQuery holds the decoded query parameters of one API request, merged the
// way PHP's parse_str merges them for Reverb: a repeated plain key keeps its
// last value, and key[]=a&key[]=b becomes one list that signs as "a,b".
// Keys and values live in buf; params index into it.
type apiQuery struct {
	buf    []byte
	params []apiParam
	order  []int
}

type apiParam struct {
	k0, k1 int
	v0, v1 int
	list   bool
}

// apiSkipSigned are query keys left out of the string to sign [R]:
// body_md5 is recomputed from the body instead of trusted, the others are
// legacy route parameters Reverb drops.
var apiSkipSigned = [...]string{"auth_signature", "body_md5", "appId", "appKey", "channelName"}

func (q *apiQuery) reset() {
	q.buf = q.buf[:0]
	q.params = q.params[:0]
	q.order = q.order[:0]
}

func (q *apiQuery) key(i int) []byte { return q.buf[q.params[i].k0:q.params[i].k1] }
func (q *apiQuery) val(i int) []byte { return q.buf[q.params[i].v0:q.params[i].v1] }

// parse decodes raw (the text after '?') as application/x-www-form-urlencoded.
func (q *apiQuery) parse(raw []byte) {
	for len(raw) > 0 {
		pair := raw
		raw = nil
		if i := bytes.IndexByte(pair, '&'); i >= 0 {
			pair, raw = pair[:i], pair[i+1:]
		}
		k, v := pair, pair[len(pair):]
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			k, v = pair[:i], pair[i+1:]
		}
		k0 := len(q.buf)
		q.buf = apiUnescape(q.buf, k, true)
		k1 := len(q.buf)
		list := false
		if i := bytes.IndexByte(q.buf[k0:k1], '['); i > 0 && q.buf[k1-1] == ']' {
			k1, list = k0+i, true
		}
		if k1 == k0 {
			q.buf = q.buf[:k0] // PHP drops parameters without a name
			continue
		}
		v0 := len(q.buf)
		q.buf = apiUnescape(q.buf, v, true)
		p := apiParam{k0: k0, k1: k1, v0: v0, v1: len(q.buf), list: list}
		q.merge(p)
	}
}

func (q *apiQuery) merge(p apiParam) {
	k := q.buf[p.k0:p.k1]
	for i := range q.params {
		if !bytes.Equal(q.key(i), k) {
			continue
		}
		e := &q.params[i]
		if p.list && e.list {
			// Joining by copy keeps every value one contiguous span.
			v0 := len(q.buf)
			q.buf = append(q.buf, q.buf[e.v0:e.v1]...)
			q.buf = append(q.buf, ',')
			q.buf = append(q.buf, q.buf[p.v0:p.v1]...)
			e.v0, e.v1 = v0, len(q.buf)
			return
		}
		e.v0, e.v1, e.list = p.v0, p.v1, p.list
		return
	}
	q.params = append(q.params, p)
}

// get returns the decoded value of name (lists joined with ',').
func (q *apiQuery) get(name string) ([]byte, bool) {
	for i := range q.params {
		if string(q.key(i)) == name {
			return q.val(i), true
		}
	}
	return nil, false
}

// appendSigned appends the third line of the string to sign: the parameters
// minus apiSkipSigned, plus body_md5 when bodyMD5 is non-nil, sorted by key
// in byte order and joined as k=v&k=v with values not re-escaped.
func (q *apiQuery) appendSigned(dst, bodyMD5 []byte) []byte {
	q.order = q.order[:0]
	for i := range q.params {
		if !apiSkipped(q.key(i)) {
			q.order = append(q.order, i)
		}
	}
	if bodyMD5 != nil {
		q.order = append(q.order, -1)
	}
	keyOf := func(i int) []byte {
		if i < 0 {
			return apiBodyMD5Key
		}
		return q.key(i)
	}
	// Insertion sort: a request carries a handful of parameters and
	// sort.Slice would allocate.
	for i := 1; i < len(q.order); i++ {
		for j := i; j > 0 && bytes.Compare(keyOf(q.order[j-1]), keyOf(q.order[j])) > 0; j-- {
			q.order[j-1], q.order[j] = q.order[j], q.order[j-1]
		}
	}
	for n, i := range q.order {
		if n > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, keyOf(i)...)
		dst = append(dst, '=')
		if i < 0 {
			dst = append(dst, bodyMD5...)
		} else {
			dst = append(dst, q.val(i)...)
		}
	}
	return dst
}

var apiBodyMD5Key = []byte("body_md5")

func apiSkipped(k []byte) bool {
	for _, s := range apiSkipSigned {
		if string(k) == s {
			return true
		}
	}
	return false
}

// apiUnescape appends the percent-decoded s to dst. With plus, '+' means a
// space (query strings); without, it stays (paths, like PHP rawurldecode).
// Malformed escapes are kept literally, as PHP does.
func apiUnescape(dst, s []byte, plus bool) []byte {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '%' && (s[i] != '+' || !plus) {
			i++
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			break
		}
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case i+2 < len(s) && apiUnhex(s[i+1]) >= 0 && apiUnhex(s[i+2]) >= 0:
			c = byte(apiUnhex(s[i+1])<<4 | apiUnhex(s[i+2]))
			i += 2
		}
		dst = append(dst, c)
		s = s[i+1:]
	}
	return dst
}

func apiUnhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// apiMD5Hex appends the lowercase hex MD5 of body to dst.
func apiMD5Hex(dst, body []byte) []byte {
	sum := md5.Sum(body)
	return hex.AppendEncode(dst, sum[:])
}

var apiNewline = []byte{'\n'}

// SignAPIRequest appends to dst the lowercase hex auth_signature of an HTTP
// API request (PROTOCOL.md §6.3): method, path without the server prefix,
// the raw query (its auth_signature and body_md5 are ignored) and the body,
// whose MD5 is signed as body_md5 when it is non-empty. Callers are clients
// and tests; it may be called from any goroutine and keeps no argument.
func SignAPIRequest(dst []byte, secret string, method, path, rawQuery, body []byte) []byte {
	var q apiQuery
	q.parse(rawQuery)
	var md []byte
	if len(body) > 0 {
		md = apiMD5Hex(nil, body)
	}
	params := q.appendSigned(nil, md)
	return AppendHMAC(dst, secret, method, apiNewline, path, apiNewline, params)
}

// apiMACs hands out keyed HMAC-SHA256 states per app so that verifying a
// request does not rebuild the keyed state; hmac.New allocates several times.
type apiMACs struct {
	m sync.Map // *App -> *sync.Pool of hash.Hash
}

func (c *apiMACs) get(app *App) (hash.Hash, *sync.Pool) {
	p, ok := c.m.Load(app)
	if !ok {
		secret := []byte(app.Secret)
		p, _ = c.m.LoadOrStore(app, &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }})
	}
	pool := p.(*sync.Pool)
	h := pool.Get().(hash.Hash)
	h.Reset()
	return h, pool
}

// apiVerifier is the per-request scratch of the signature check.
type apiVerifier struct {
	params []byte
	md5    []byte
	sum    []byte
	hex    []byte
}

// verify checks the §6.3 signature of a request for app: auth_key must be the
// app's key, auth_timestamp within a.TimestampWindow of now (0 = unchecked, [R]),
// and auth_signature the HMAC over the raw path or, failing that, the
// percent-decoded path (decoded may equal raw).
func (a *API) verify(v *apiVerifier, q *apiQuery, app *App, method, raw, decoded, body []byte) bool {
	if key, _ := q.get("auth_key"); string(key) != app.Key {
		return false
	}
	if window := a.TimestampWindow; window > 0 {
		ts, ok := apiParseUnix(q.getOrNil("auth_timestamp"))
		if !ok {
			return false
		}
		d := a.now().Unix() - ts
		if d < 0 {
			d = -d
		}
		if d > int64(window/time.Second) {
			return false
		}
	}
	sig, ok := q.get("auth_signature")
	if !ok {
		return false
	}
	var md []byte
	if len(body) > 0 {
		v.md5 = apiMD5Hex(v.md5[:0], body)
		md = v.md5
	}
	v.params = q.appendSigned(v.params[:0], md)
	h, pool := a.macs.get(app)
	defer pool.Put(h)
	if EqualHex(sig, v.mac(h, method, raw)) {
		return true
	}
	return !bytes.Equal(raw, decoded) && EqualHex(sig, v.mac(h, method, decoded))
}

func (v *apiVerifier) mac(h hash.Hash, method, path []byte) []byte {
	h.Reset()
	h.Write(method)
	h.Write(apiNewline)
	h.Write(path)
	h.Write(apiNewline)
	h.Write(v.params)
	v.sum = h.Sum(v.sum[:0])
	v.hex = hex.AppendEncode(v.hex[:0], v.sum)
	return v.hex
}

func (q *apiQuery) getOrNil(name string) []byte {
	b, _ := q.get(name)
	return b
}

// apiParseUnix parses a non-negative decimal of at most 18 digits, enough for
// any unix time and small enough never to overflow.
func apiParseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
