package pusher

import (
	"strconv"
	"unicode/utf8"
)

// The encoders below build server→client Pusher messages (PROTOCOL.md §3.1,
// §3.3) into a caller-owned buffer, append-style, without WebSocket framing.
// They may be called from any goroutine, never keep dst or any argument, and
// do not allocate when dst has enough capacity. Key order is irrelevant to
// clients; where Reverb's byte layout is documented it is followed anyway.

// Member is one presence member for AppendPresenceSucceeded. Both slices are
// only read during the call.
type Member struct {
	// IDJSON is the raw JSON of the user id as the client typed it ("\"1\"" or
	// "7"). Members with a nil IDJSON are omitted (§4.4).
	IDJSON []byte
	// InfoJSON is the raw JSON of user_info; nil is written as null.
	InfoJSON []byte
}

// AppendConnectionEstablished appends
// {"event":"pusher:connection_established","data":"{\"socket_id\":\"…\",\"activity_timeout\":N}"}.
func AppendConnectionEstablished(dst []byte, socketID string, activityTimeout int) []byte {
	dst = append(dst, `{"event":"pusher:connection_established","data":"{\"socket_id\":\"`...)
	dst = appendEscaped(dst, socketID, 2)
	dst = append(dst, `\",\"activity_timeout\":`...)
	dst = strconv.AppendInt(dst, int64(activityTimeout), 10)
	return append(dst, `}"}`...)
}

// AppendPing appends {"event":"pusher:ping"} (no data key, like Reverb).
func AppendPing(dst []byte) []byte { return append(dst, `{"event":"pusher:ping"}`...) }

// AppendPong appends {"event":"pusher:pong"} (no data key, like Reverb).
func AppendPong(dst []byte) []byte { return append(dst, `{"event":"pusher:pong"}`...) }

// AppendSubscriptionSucceeded appends the non-presence acknowledgement
// {"event":"pusher_internal:subscription_succeeded","data":"{}","channel":C}.
func AppendSubscriptionSucceeded(dst []byte, channel string) []byte {
	dst = append(dst, `{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":`...)
	dst = appendQuoted(dst, channel)
	return append(dst, '}')
}

// AppendPresenceSucceeded appends the presence acknowledgement whose data is
// the data-string of {"presence":{"count":N,"ids":[…],"hash":{…}}} with the
// members in the given order (§4.4). hash is always an object; its keys are
// the ids as JSON strings (id 7 becomes "7"). The caller passes distinct ids.
func AppendPresenceSucceeded(dst []byte, channel string, members []Member) []byte {
	n := 0
	for i := range members {
		if members[i].IDJSON != nil {
			n++
		}
	}
	dst = append(dst, `{"event":"pusher_internal:subscription_succeeded","channel":`...)
	dst = appendQuoted(dst, channel)
	dst = append(dst, `,"data":"{\"presence\":{\"count\":`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, `,\"ids\":[`...)
	first := true
	for i := range members {
		if members[i].IDJSON == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendEscaped(dst, members[i].IDJSON, 1)
	}
	dst = append(dst, `],\"hash\":{`...)
	first = true
	for i := range members {
		m := &members[i]
		if m.IDJSON == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if len(m.IDJSON) > 0 && m.IDJSON[0] == '"' {
			dst = appendEscaped(dst, m.IDJSON, 1)
		} else {
			// A non-string id becomes an object key: quote its JSON text.
			dst = append(dst, `\"`...)
			dst = appendEscaped(dst, m.IDJSON, 2)
			dst = append(dst, `\"`...)
		}
		dst = append(dst, ':')
		if m.InfoJSON == nil {
			dst = append(dst, "null"...)
		} else {
			dst = appendEscaped(dst, m.InfoJSON, 1)
		}
	}
	return append(dst, `}}}"}`...)
}

// AppendMemberAdded appends
// {"event":"pusher_internal:member_added","channel":C,"data":"<channel_data>"}
// where data is the data-string of the whole channel_data JSON text.
func AppendMemberAdded(dst []byte, channel string, channelDataJSON []byte) []byte {
	dst = append(dst, `{"event":"pusher_internal:member_added","channel":`...)
	dst = appendQuoted(dst, channel)
	dst = append(dst, `,"data":"`...)
	dst = appendEscaped(dst, channelDataJSON, 1)
	return append(dst, `"}`...)
}

// AppendMemberRemoved appends
// {"event":"pusher_internal:member_removed","channel":C,"data":"{\"user_id\":<id>}"}
// with the id as originally typed (idJSON is its raw JSON).
func AppendMemberRemoved(dst []byte, channel string, idJSON []byte) []byte {
	dst = append(dst, `{"event":"pusher_internal:member_removed","channel":`...)
	dst = appendQuoted(dst, channel)
	dst = append(dst, `,"data":"{\"user_id\":`...)
	dst = appendEscaped(dst, idJSON, 1)
	return append(dst, `}"}`...)
}

// AppendCacheMiss appends {"event":"pusher:cache_miss","channel":C} (no data).
func AppendCacheMiss(dst []byte, channel string) []byte {
	dst = append(dst, `{"event":"pusher:cache_miss","channel":`...)
	dst = appendQuoted(dst, channel)
	return append(dst, '}')
}

// AppendChannelEvent appends an HTTP API event
// {"event":E,"data":"<data>","channel":C}. data is the raw (unescaped) string
// the app sent; it is JSON-escaped here and otherwise forwarded unchanged.
func AppendChannelEvent(dst []byte, event, channel string, data []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = appendQuoted(dst, event)
	dst = append(dst, `,"data":"`...)
	dst = appendEscaped(dst, data, 1)
	dst = append(dst, `","channel":`...)
	dst = appendQuoted(dst, channel)
	return append(dst, '}')
}

// AppendClientEvent appends a relayed client event
// {"event":E,"channel":C,"data":<dataJSON>} plus ,"user_id":<userIDJSON> when
// userIDJSON is not nil. dataJSON and userIDJSON are raw JSON texts written
// as they are; a nil dataJSON is written as null.
func AppendClientEvent(dst []byte, event, channel string, dataJSON, userIDJSON []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = appendQuoted(dst, event)
	dst = append(dst, `,"channel":`...)
	dst = appendQuoted(dst, channel)
	dst = append(dst, `,"data":`...)
	if dataJSON == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, dataJSON...)
	}
	if userIDJSON != nil {
		dst = append(dst, `,"user_id":`...)
		dst = append(dst, userIDJSON...)
	}
	return append(dst, '}')
}

// AppendClientEventAsIs appends the relay of a client event in "all" mode,
// where Reverb forwards the received object itself: the data key is left
// out when dataJSON is nil, and userIDJSON is the client's own user_id.
func AppendClientEventAsIs(dst []byte, event, channel string, dataJSON, userIDJSON []byte) []byte {
	if dataJSON != nil {
		return AppendClientEvent(dst, event, channel, dataJSON, userIDJSON)
	}
	dst = append(dst, `{"event":`...)
	dst = appendQuoted(dst, event)
	dst = append(dst, `,"channel":`...)
	dst = appendQuoted(dst, channel)
	if userIDJSON != nil {
		dst = append(dst, `,"user_id":`...)
		dst = append(dst, userIDJSON...)
	}
	return append(dst, '}')
}

// AppendSigninSuccess appends
// {"event":"pusher:signin_success","data":"{\"user_data\":\"<user_data>\"}"}:
// data is a data-string whose user_data member is the signed user_data JSON
// text as a string, so the user data ends up encoded twice (§4.9).
func AppendSigninSuccess(dst []byte, userData []byte) []byte {
	dst = append(dst, `{"event":"pusher:signin_success","data":"{\"user_data\":\"`...)
	dst = appendEscaped(dst, userData, 2)
	return append(dst, `\"}"}`...)
}

// AppendJSONString appends s as a JSON string literal with quotes. Only '"',
// '\\' and control characters are escaped; other text stays plain UTF-8, and
// each byte of invalid UTF-8 becomes U+FFFD so the output is always valid.
func AppendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, 1)
	return append(dst, '"')
}

// appendQuoted is AppendJSONString for strings.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, 1)
	return append(dst, '"')
}

const jsonHexDigits = "0123456789abcdef"

// jsonPlain marks the ASCII bytes that go into a JSON string unescaped.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendEscaped appends the contents (no quotes) of s as a JSON string,
// escaped level times: level 1 for a string, level 2 for a string inside a
// data-string. Runs that need no escaping are copied in one append.
func appendEscaped[T string | []byte](dst []byte, s T, level int) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if n := validRuneLen(s, i); n > 0 {
				i += n
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		i++
		start = i
		if c >= utf8.RuneSelf { // invalid UTF-8 byte
			dst = append(dst, "\uFFFD"...)
			continue
		}
		if level == 1 {
			dst = appendEscape1(dst, c)
			continue
		}
		// The escape sequences are ASCII, so each further level only has to
		// double '\\' and '"'.
		var b [6]byte
		dst = appendReescaped(dst, appendEscape1(b[:0], c), level-1)
	}
	return append(dst, s[start:]...)
}

// appendEscape1 appends the JSON escape sequence of the ASCII byte c.
func appendEscape1(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return append(dst, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xf])
}

// validRuneLen returns the length of the valid UTF-8 sequence starting at
// s[i] (a byte ≥ 0x80), or 0 if it is not one. It follows the well-formed
// byte table of Unicode §3.9, so surrogates and overlongs are invalid.
func validRuneLen[T string | []byte](s T, i int) int {
	c := s[i]
	lo, hi := byte(0x80), byte(0xBF)
	n := 0
	switch {
	case c < 0xC2:
		return 0
	case c < 0xE0:
		n = 2
	case c < 0xF0:
		n = 3
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F
		}
	case c < 0xF5:
		n = 4
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return 0
	}
	if i+n > len(s) {
		return 0
	}
	if b := s[i+1]; b < lo || b > hi {
		return 0
	}
	for k := 2; k < n; k++ {
		if b := s[i+k]; b < 0x80 || b > 0xBF {
			return 0
		}
	}
	return n
}

// appendReescaped appends the ASCII escape sequence e escaped n more
// times. Escaping only doubles backslashes and backslash-prefixes quotes, so
// after n rounds a '\\' is 2^n backslashes and a '"' gets 2^n-1 of them.
func appendReescaped(dst, e []byte, n int) []byte {
	if n == 0 {
		return append(dst, e...)
	}
	k := 1 << n
	for _, c := range e {
		switch c {
		case '\\':
			for range k {
				dst = append(dst, '\\')
			}
		case '"':
			for range k - 1 {
				dst = append(dst, '\\')
			}
			dst = append(dst, '"')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
