package pusher

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Kind says what a decoded client message asks for.
type Kind uint8

const (
	// KindIgnore: a valid message that needs no action: a non-client- event
	// with a channel (pusher_internal:* included), silently dropped [R].
	KindIgnore Kind = iota
	// KindSubscribe: pusher:subscribe; Channel, Auth, ChannelData are set.
	KindSubscribe
	// KindUnsubscribe: pusher:unsubscribe; Channel is set.
	KindUnsubscribe
	// KindPing: pusher:ping; answer with AppendPong. Its data is ignored.
	KindPing
	// KindPong: pusher:pong; only marks the socket active.
	KindPong
	// KindSignin: pusher:signin; Auth and UserData are set. The caller
	// decides whether signin is enabled (unknown event, 4200, if not).
	KindSignin
	// KindClientEvent: a client-* event; Event, Channel, Data (and UserID
	// when the client sent one) are set.
	KindClientEvent
)

var kindNames = [...]string{"ignore", "subscribe", "unsubscribe", "ping", "pong", "signin", "client-event"}

// String returns a short lower-case name for logs and metrics.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Message is one decoded client message. Every slice points into the
// Decoder that produced it and is valid only until that Decoder's next
// Decode call; copy what you keep and treat them as read-only.
type Message struct {
	Kind Kind
	// Event is the event name, unescaped.
	Event []byte
	// Channel is data.channel for (un)subscribe and the top-level channel
	// for client events and KindIgnore; never empty.
	Channel []byte
	// Auth is data.auth of subscribe/signin; nil or empty if absent or null.
	Auth []byte
	// ChannelData is data.channel_data of subscribe exactly as received after
	// JSON unescaping (the text that is signed), always valid JSON; nil if
	// absent, null, "" or "0" (PHP-falsy: Reverb neither signs nor decodes it).
	ChannelData []byte
	// UserData is data.user_data of signin as received after unescaping;
	// nil if absent or null.
	UserData []byte
	// Data is a client event's data as JSON text, nil if absent; a
	// data-string holding JSON is replaced by that JSON (§3.2 step 4).
	// Original key order and number text are kept ({} stays {}, big integers
	// keep their digits); white space is dropped and strings re-escaped
	// minimally. Scalars are allowed ([S] deviation, §4.8).
	Data []byte
	// UserID is the raw JSON of a client event's top-level user_id, nil if
	// the client sent none. Only relayed as-is in "all" mode (§4.8).
	UserID []byte
}

// Decoder decodes client messages with fastjson. Keep one per event loop:
// it is not safe for concurrent use. It reuses its buffers, so Decode does
// not allocate in steady state for valid messages.
type Decoder struct {
	msg  fastjson.Parser // the message itself
	data fastjson.Parser // the JSON inside a data-string
	aux  fastjson.Parser // channel_data and user_data, so Decode results survive
	buf  []byte          // Message.Data and Message.UserID
	aux2 []byte          // ParseChannelData / ParseUserData results
}

// Decode decodes one complete client message (PROTOCOL.md §3.2 steps 3–7,
// §4.1–§4.3, §4.8, §4.9). Every invalid input — bad JSON or UTF-8, a
// missing or mistyped field, an empty event or channel name, an unknown
// pusher:* event — returns ErrInvalidMessage (4200). Loop only; msg is only
// read, and the Message is valid until the next Decode.
func (d *Decoder) Decode(msg []byte) (Message, error) {
	if !strictJSON(msg) {
		return Message{}, ErrInvalidMessage
	}
	v, err := d.msg.ParseBytes(msg)
	if err != nil || v.Type() != fastjson.TypeObject {
		return Message{}, ErrInvalidMessage
	}
	o, _ := v.Object()
	ev := o.Get("event")
	if ev == nil || ev.Type() != fastjson.TypeString {
		return Message{}, ErrInvalidMessage
	}
	name, _ := ev.StringBytes()
	if len(name) == 0 {
		return Message{}, ErrInvalidMessage
	}
	data := d.decodeDataString(o.Get("data"))
	m := Message{Event: name}

	if sub, ok := bytes.CutPrefix(name, []byte("pusher:")); ok {
		return d.decodeProtocol(m, sub, data)
	}

	m.Channel = stringField(o, "channel")
	if len(m.Channel) == 0 {
		return Message{}, ErrInvalidMessage
	}
	if !bytes.HasPrefix(name, []byte("client-")) {
		m.Kind = KindIgnore
		return m, nil
	}
	m.Kind = KindClientEvent
	d.buf = d.buf[:0]
	if data != nil {
		d.buf = appendValue(d.buf, data)
	}
	dataEnd := len(d.buf)
	if uid := o.Get("user_id"); uid != nil {
		d.buf = appendValue(d.buf, uid)
		m.UserID = d.buf[dataEnd:len(d.buf):len(d.buf)]
	}
	if data != nil {
		m.Data = d.buf[:dataEnd:dataEnd]
	}
	return m, nil
}

// decodeDataString implements §3.2 step 4: a data string that holds valid
// JSON is replaced by the decoded value; any other value is returned as is.
func (d *Decoder) decodeDataString(v *fastjson.Value) *fastjson.Value {
	if v == nil || v.Type() != fastjson.TypeString {
		return v
	}
	s, _ := v.StringBytes()
	// Cheap pre-check: most non-JSON strings fail on the first byte, and
	// skipping Validate for them avoids its error allocation.
	t := bytes.TrimLeft(s, " \t\r\n")
	if len(t) == 0 || strings.IndexByte(`{["-0123456789tfn`, t[0]) < 0 {
		return v
	}
	if !strictJSON(s) {
		return v
	}
	dv, err := d.data.ParseBytes(s)
	if err != nil {
		return v // deeper than fastjson allows; keep the string
	}
	return dv
}

// decodeProtocol handles the pusher:* events. Reverb passes
// empty($data) ? [] : $data into a handler typed array $payload, so
// PHP-empty data counts as {}, arrays pass, and other scalars fail.
func (d *Decoder) decodeProtocol(m Message, sub []byte, data *fastjson.Value) (Message, error) {
	if string(sub) == "ping" {
		m.Kind = KindPing // [S]: data ignored, even a non-JSON string
		return m, nil
	}
	var payload *fastjson.Object
	if data != nil && !phpEmpty(data) {
		switch data.Type() {
		case fastjson.TypeObject:
			payload, _ = data.Object()
		case fastjson.TypeArray:
			// A PHP list: no named fields.
		default:
			return Message{}, ErrInvalidMessage
		}
	}
	var ok bool
	switch string(sub) {
	case "pong":
		m.Kind = KindPong
		return m, nil
	case "subscribe":
		m.Kind = KindSubscribe
		if m.Channel = stringField(payload, "channel"); len(m.Channel) == 0 {
			return Message{}, ErrInvalidMessage
		}
		if m.Auth, ok = optString(payload, "auth"); !ok {
			return Message{}, ErrInvalidMessage
		}
		if m.ChannelData, ok = optString(payload, "channel_data"); !ok {
			return Message{}, ErrInvalidMessage
		}
		if len(m.ChannelData) == 0 || string(m.ChannelData) == "0" {
			m.ChannelData = nil
		} else if !strictJSON(m.ChannelData) {
			return Message{}, ErrInvalidMessage
		}
		return m, nil
	case "unsubscribe":
		m.Kind = KindUnsubscribe
		if m.Channel = stringField(payload, "channel"); len(m.Channel) == 0 {
			return Message{}, ErrInvalidMessage
		}
		return m, nil
	case "signin":
		m.Kind = KindSignin
		if m.Auth, ok = optString(payload, "auth"); !ok {
			return Message{}, ErrInvalidMessage
		}
		if m.UserData, ok = optString(payload, "user_data"); !ok {
			return Message{}, ErrInvalidMessage
		}
		return m, nil
	}
	// connection_established from a client is treated as unknown (§14 #20).
	return Message{}, ErrInvalidMessage
}

// ParseChannelData parses a presence subscription's channel_data JSON text.
// idJSON is the raw JSON of user_id, nil when user_id is absent, null, false,
// "" or an empty array/object. 0 and "0" are users: Reverb lists them in
// subscription_succeeded (isset) though its `if ($userId)` checks then
// repeat their member_added and never send member_removed; we count them
// like any other id so both events come exactly once;
// id is the identity string used to compare members (1, 1.0 and "1" are the
// same user, as in PHP's (string) cast); infoJSON is the JSON of user_info,
// "null" if absent. channel_data that is not an object has no user. Invalid
// JSON or a non-scalar user_id returns ErrInvalidMessage. Loop only; idJSON
// and infoJSON are valid until the next ParseChannelData or ParseUserData
// call (Decode results stay valid); id is a fresh string.
func (d *Decoder) ParseChannelData(cd []byte) (idJSON []byte, id string, infoJSON []byte, err error) {
	o, err := d.parseAux(cd)
	if err != nil {
		return nil, "", nil, ErrInvalidMessage
	}
	var uid, info *fastjson.Value
	if o != nil {
		uid, info = o.Get("user_id"), o.Get("user_info")
	}
	d.aux2 = d.aux2[:0]
	if uid != nil && !noUser(uid) {
		switch uid.Type() {
		case fastjson.TypeString:
			s, _ := uid.StringBytes()
			d.aux2 = AppendJSONString(d.aux2, s)
			id = string(s)
		case fastjson.TypeNumber:
			d.aux2 = uid.MarshalTo(d.aux2) // raw number text
			id = phpNumberString(d.aux2)
		case fastjson.TypeTrue:
			d.aux2 = append(d.aux2, "true"...)
			id = "1"
		default:
			return nil, "", nil, ErrInvalidMessage
		}
	}
	idEnd := len(d.aux2)
	if info == nil {
		d.aux2 = append(d.aux2, "null"...)
	} else {
		d.aux2 = appendValue(d.aux2, info)
	}
	if idEnd > 0 {
		idJSON = d.aux2[:idEnd:idEnd]
	}
	return idJSON, id, d.aux2[idEnd:], nil
}

// ParseUserData parses signin user_data (§4.9): it must be a JSON object
// whose "id" is a non-empty string, else ErrUnauthorized (the signin is
// refused with 4009). infoJSON is the JSON of user_info, "null" if absent.
// The watchlist is not implemented. Loop only; infoJSON is valid until the
// next ParseChannelData or ParseUserData call; id is a fresh string.
func (d *Decoder) ParseUserData(ud []byte) (id string, infoJSON []byte, err error) {
	o, err := d.parseAux(ud)
	if err != nil || o == nil {
		return "", nil, ErrUnauthorized
	}
	idb := stringField(o, "id")
	if len(idb) == 0 {
		return "", nil, ErrUnauthorized
	}
	d.aux2 = d.aux2[:0]
	if info := o.Get("user_info"); info == nil {
		d.aux2 = append(d.aux2, "null"...)
	} else {
		d.aux2 = appendValue(d.aux2, info)
	}
	return string(idb), d.aux2, nil
}

// parseAux strictly parses b with the aux parser and returns its top-level
// object, or nil if the JSON is valid but not an object.
func (d *Decoder) parseAux(b []byte) (*fastjson.Object, error) {
	if !strictJSON(b) {
		return nil, ErrInvalidMessage
	}
	v, err := d.aux.ParseBytes(b)
	if err != nil {
		return nil, err
	}
	if v.Type() != fastjson.TypeObject {
		return nil, nil
	}
	o, _ := v.Object()
	return o, nil
}

// strictJSON reports whether b is one valid JSON text in valid UTF-8, as
// PHP's json_decode requires. fastjson.Parser alone is lenient (NaN, bad
// escapes, raw control characters) and fastjson.Validate misses a raw
// control character that precedes an escape in the same string, so the
// UTF-8 and in-string control checks are done here first.
func strictJSON(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= utf8.RuneSelf:
			n := validRuneLen(b, i)
			if n == 0 {
				return false
			}
			i += n - 1
		case !inString:
			inString = c == '"'
		case c == '\\':
			i++ // the escaped byte; Validate checks the escape itself
		case c == '"':
			inString = false
		case c < 0x20:
			return false
		}
	}
	return fastjson.ValidateBytes(b) == nil
}

// stringField returns o[key] if it is a string; nil otherwise (also for a
// nil o). An empty string also comes back empty, so callers test len.
func stringField(o *fastjson.Object, key string) []byte {
	if o == nil {
		return nil
	}
	v := o.Get(key)
	if v == nil || v.Type() != fastjson.TypeString {
		return nil
	}
	s, _ := v.StringBytes()
	return s
}

// optString returns an optional string field: ok is false when the field
// is present with a type other than string or null.
func optString(o *fastjson.Object, key string) (s []byte, ok bool) {
	if o == nil {
		return nil, true
	}
	v := o.Get(key)
	if v == nil {
		return nil, true
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return nil, true
	case fastjson.TypeString:
		s, _ = v.StringBytes()
		return s, true
	}
	return nil, false
}

// noUser reports whether a user_id value names nobody: null, false, "" or
// an empty array/object.
func noUser(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNumber, fastjson.TypeTrue:
		return false
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return len(b) == 0
	}
	return phpEmpty(v)
}

// phpEmpty reports whether PHP's empty() is true for the decoded value.
func phpEmpty(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull, fastjson.TypeFalse:
		return true
	case fastjson.TypeNumber:
		var b [32]byte
		return numberIsZero(v.MarshalTo(b[:0]))
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return len(s) == 0 || string(s) == "0"
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o.Len() == 0
	case fastjson.TypeArray:
		a, _ := v.Array()
		return len(a) == 0
	}
	return false
}

// numberIsZero reports whether a JSON number text is zero: no non-zero digit
// before the exponent.
func numberIsZero(n []byte) bool {
	for _, c := range n {
		switch {
		case c == 'e' || c == 'E':
			return true
		case c >= '1' && c <= '9':
			return false
		}
	}
	return true
}

// phpNumberString returns the string PHP's (string) cast gives a decoded
// JSON number for the values that occur as ids: integers keep their text,
// floats with an integral value print without a fraction (1.0 → "1").
// Anything else keeps its JSON text.
func phpNumberString(n []byte) string {
	if bytes.IndexAny(n, ".eE") < 0 {
		return string(n)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return string(n)
}

// appendValue appends v as compact JSON: key order and number text as
// received, strings through AppendJSONString. fastjson's own MarshalTo
// is not used because it re-quotes unescaped strings with strconv.Quote,
// whose \x and \U escapes are not JSON.
func appendValue(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, vv *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = AppendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, vv)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return AppendJSONString(dst, s)
	case fastjson.TypeNumber:
		return v.MarshalTo(dst)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}
