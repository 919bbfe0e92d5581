package pusher

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeObj parses one encoder output as a JSON object, keeping numbers as
// json.Number so integer types and texts can be compared exactly.
func decodeObj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// dataString returns m["data"], which must be a string (a data-string).
func dataString(t *testing.T, m map[string]any) string {
	t.Helper()
	s, ok := m["data"].(string)
	if !ok {
		t.Fatalf("data is %T, want a string: %v", m["data"], m)
	}
	return s
}

// wantKeys fails unless m has exactly these keys.
func wantKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	if len(m) != len(keys) {
		t.Errorf("keys %v, want %v", reflect.ValueOf(m).MapKeys(), keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %v", k, m)
		}
	}
}

// tricky are strings that exercise every escaping branch.
var tricky = []string{
	"",
	"plain",
	`quote " backslash \ slash / `,
	"nl \n cr \r tab \t bs \b ff \f nul \x00 esc \x1b del \x7f",
	"ünïcödé 日本語 🎉 \u2028 \u2029",
	`{"json":"inside","n":[1,2.50,{}]}`,
	"</script><!--",
	"bad utf8 \xff \xc3 \xed\xa0\x80 end",
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`a"b\c/d`, `"a\"b\\c/d"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é日🎉", `"é日🎉"`}, // plain UTF-8 out
		{"a\xffb", "\"a\uFFFDb\""},
		{"\xe6\x97", "\"\uFFFD\uFFFD\""},                     // truncated sequence
		{"\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""},           // encoded surrogate
		{"\xc0\xaf", "\"\uFFFD\uFFFD\""},                     // overlong '/'
		{"\xf4\x90\x80\x80", "\"\uFFFD\uFFFD\uFFFD\uFFFD\""}, // above U+10FFFF
	}
	for _, tt := range tests {
		if got := string(AppendJSONString([]byte("x"), []byte(tt.in))); got != "x"+tt.want {
			t.Errorf("AppendJSONString(%q) = %s, want x%s", tt.in, got, tt.want)
		}
	}
}

// wantDecoded is what a JSON decoder must read back from AppendJSONString:
// the input with every byte of invalid UTF-8 replaced by U+FFFD.
func wantDecoded(s []byte) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.Write(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// TestAppendJSONStringRoundTrip: random bytes always give valid JSON that
// decodes to the input (invalid bytes replaced), at one and two levels.
func TestAppendJSONStringRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("a\"\\/\n\x00\x1f\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89\xff\xed\xa0")
	for range 5000 {
		s := make([]byte, rng.IntN(24))
		for i := range s {
			if rng.IntN(4) == 0 {
				s[i] = byte(rng.Uint32())
			} else {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		out := AppendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		if want := wantDecoded(s); got != want {
			t.Fatalf("%q -> %s decodes to %q, want %q", s, out, got, want)
		}
		// Level 2 must decode to the level-1 contents.
		lvl2 := append(append([]byte{'"'}, appendEscaped(nil, s, 2)...), '"')
		if err := json.Unmarshal(lvl2, &got); err != nil {
			t.Fatalf("level 2 %q -> %s: %v", s, lvl2, err)
		}
		if want := string(out[1 : len(out)-1]); got != want {
			t.Fatalf("level 2 %q decodes to %q, want %q", s, got, want)
		}
	}
}

func TestAppendError(t *testing.T) {
	// Reverb's bytes for 4200 (§3.2).
	if got, want := string(AppendError(nil, ErrInvalidMessage)), `{"event":"pusher:error","data":"{\"code\":4200,\"message\":\"Invalid message format\"}"}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	all := []*Error{ErrAppNotFound, ErrOverQuota, ErrOriginNotAllowed, ErrUnauthorized, ErrNotMember,
		ErrInvalidMessage, ErrPongTimeout, ErrRateLimited, ErrClientEventsOff, {4999, `odd "text" \ é`}}
	for _, e := range all {
		m := decodeObj(t, AppendError(nil, e))
		wantKeys(t, m, "event", "data") // no channel: Echo's error callbacks must not fire
		if m["event"] != "pusher:error" {
			t.Errorf("event %v", m["event"])
		}
		inner := decodeObj(t, []byte(dataString(t, m)))
		wantKeys(t, inner, "code", "message")
		if inner["code"] != json.Number(strconv.Itoa(e.Code)) || inner["message"] != e.Message {
			t.Errorf("%v: data %v", e, inner)
		}
	}
}

func TestErrorCatalogue(t *testing.T) {
	tests := []struct {
		e    *Error
		code int
		msg  string
	}{
		{ErrAppNotFound, 4001, "Application does not exist"},
		{ErrOverQuota, 4004, "Application is over connection quota"},
		{ErrOriginNotAllowed, 4009, "Origin not allowed"},
		{ErrUnauthorized, 4009, "Connection is unauthorized"},
		{ErrNotMember, 4009, "The client is not a member of the specified channel."},
		{ErrInvalidMessage, 4200, "Invalid message format"},
		{ErrPongTimeout, 4201, "Pong reply not received in time"},
		{ErrRateLimited, 4301, "Rate limit exceeded"},
		{ErrClientEventsOff, 4301, "The app does not have client messaging enabled."},
	}
	for _, tt := range tests {
		if tt.e.Code != tt.code || tt.e.Message != tt.msg {
			t.Errorf("%+v, want %d %q", *tt.e, tt.code, tt.msg)
		}
		if got := tt.e.Error(); !strings.Contains(got, tt.msg) || !strings.HasPrefix(got, "pusher: ") {
			t.Errorf("Error() = %q", got)
		}
	}
}

func TestAppendConnectionEstablished(t *testing.T) {
	m := decodeObj(t, AppendConnectionEstablished(nil, "1828473925.620591217", 30))
	wantKeys(t, m, "event", "data")
	if m["event"] != "pusher:connection_established" {
		t.Errorf("event %v", m["event"])
	}
	inner := decodeObj(t, []byte(dataString(t, m)))
	wantKeys(t, inner, "socket_id", "activity_timeout")
	if inner["socket_id"] != "1828473925.620591217" || inner["activity_timeout"] != json.Number("30") {
		t.Errorf("data %v", inner)
	}
}

func TestAppendPingPongCacheMiss(t *testing.T) {
	// Reverb sends these without a data key (§3.1), byte for byte.
	if got := string(AppendPing(nil)); got != `{"event":"pusher:ping"}` {
		t.Errorf("ping %s", got)
	}
	if got := string(AppendPong(nil)); got != `{"event":"pusher:pong"}` {
		t.Errorf("pong %s", got)
	}
	if got := string(AppendCacheMiss(nil, "cache-test-channel")); got != `{"event":"pusher:cache_miss","channel":"cache-test-channel"}` {
		t.Errorf("cache_miss %s", got)
	}
	for _, ch := range tricky {
		m := decodeObj(t, AppendCacheMiss(nil, ch))
		wantKeys(t, m, "event", "channel")
		if m["channel"] != wantDecoded([]byte(ch)) {
			t.Errorf("channel %q, want %q", m["channel"], ch)
		}
	}
}

func TestAppendSubscriptionSucceeded(t *testing.T) {
	if got, want := string(AppendSubscriptionSucceeded(nil, "orders")), `{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"orders"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, ch := range tricky {
		m := decodeObj(t, AppendSubscriptionSucceeded(nil, ch))
		wantKeys(t, m, "event", "data", "channel")
		if dataString(t, m) != "{}" || m["channel"] != wantDecoded([]byte(ch)) {
			t.Errorf("%q: %v", ch, m)
		}
	}
}

func TestAppendPresenceSucceeded(t *testing.T) {
	members := []Member{
		{IDJSON: []byte(`"1"`), InfoJSON: []byte(`{"name":"Ann"}`)},
		{IDJSON: []byte(`7`), InfoJSON: nil},
		{IDJSON: nil, InfoJSON: []byte(`{"ghost":true}`)}, // id-less: omitted
		{IDJSON: []byte(`"q\"\\ü"`), InfoJSON: []byte(`{"s":"a\"b\\c\n","n":[1,2.50,12345678901234567890],"e":{}}`)},
		{IDJSON: []byte(`12345678901234567890`), InfoJSON: []byte(`[]`)},
	}
	m := decodeObj(t, AppendPresenceSucceeded(nil, "presence-chat.1", members))
	wantKeys(t, m, "event", "channel", "data")
	if m["event"] != "pusher_internal:subscription_succeeded" || m["channel"] != "presence-chat.1" {
		t.Errorf("%v", m)
	}
	inner := decodeObj(t, []byte(dataString(t, m)))
	wantKeys(t, inner, "presence")
	p, ok := inner["presence"].(map[string]any)
	if !ok {
		t.Fatalf("presence %T", inner["presence"])
	}
	wantKeys(t, p, "count", "ids", "hash")
	if p["count"] != json.Number("4") {
		t.Errorf("count %v", p["count"])
	}
	// ids keep their JSON type and order.
	wantIDs := []any{"1", json.Number("7"), `q"\ü`, json.Number("12345678901234567890")}
	if !reflect.DeepEqual(p["ids"], wantIDs) {
		t.Errorf("ids %#v, want %#v", p["ids"], wantIDs)
	}
	hash, ok := p["hash"].(map[string]any)
	if !ok {
		t.Fatalf("hash %T, must be an object", p["hash"])
	}
	wantHash := map[string]any{
		"1":                    map[string]any{"name": "Ann"},
		"7":                    nil,
		`q"\ü`:                 map[string]any{"s": "a\"b\\c\n", "n": []any{json.Number("1"), json.Number("2.50"), json.Number("12345678901234567890")}, "e": map[string]any{}},
		"12345678901234567890": []any{},
	}
	if !reflect.DeepEqual(hash, wantHash) {
		t.Errorf("hash %#v\nwant %#v", hash, wantHash)
	}

	// Empty channel: hash is {} (Reverb's [] is a bug we do not copy).
	m = decodeObj(t, AppendPresenceSucceeded(nil, "presence-x", nil))
	if got, want := dataString(t, m), `{"presence":{"count":0,"ids":[],"hash":{}}}`; got != want {
		t.Errorf("empty presence data %s, want %s", got, want)
	}
}

func TestAppendMemberAddedRemoved(t *testing.T) {
	for _, cd := range []string{
		`{"user_id":"1","user_info":{"name":"Ann"}}`,
		`{"user_id":7,"extra":[1,{}],"user_info":{"q":"\"\\\u00e9 ü"}}`,
		"{ \"user_id\" : \"sp aced\" }",
	} {
		m := decodeObj(t, AppendMemberAdded(nil, "presence-x", []byte(cd)))
		wantKeys(t, m, "event", "channel", "data")
		if m["event"] != "pusher_internal:member_added" || m["channel"] != "presence-x" {
			t.Errorf("%v", m)
		}
		if got := dataString(t, m); got != cd {
			t.Errorf("member_added data %q, want the channel_data %q", got, cd)
		}
	}
	for _, tt := range []struct {
		id   string
		want any
	}{
		{`"1"`, "1"},
		{`7`, json.Number("7")},
		{`"a\"b"`, `a"b`},
		{`12345678901234567890`, json.Number("12345678901234567890")},
	} {
		m := decodeObj(t, AppendMemberRemoved(nil, "presence-x", []byte(tt.id)))
		wantKeys(t, m, "event", "channel", "data")
		if m["event"] != "pusher_internal:member_removed" || m["channel"] != "presence-x" {
			t.Errorf("%v", m)
		}
		inner := decodeObj(t, []byte(dataString(t, m)))
		wantKeys(t, inner, "user_id")
		if inner["user_id"] != tt.want {
			t.Errorf("user_id %#v, want %#v", inner["user_id"], tt.want)
		}
	}
}

func TestAppendChannelEvent(t *testing.T) {
	// The cached payload example of §4.6, byte for byte.
	if got, want := string(AppendChannelEvent(nil, `App\Events\TestEvent`, "cache-test-channel", []byte(`{"foo":"bar"}`))),
		`{"event":"App\\Events\\TestEvent","data":"{\"foo\":\"bar\"}","channel":"cache-test-channel"}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, s := range tricky {
		m := decodeObj(t, AppendChannelEvent(nil, "ev "+s, "ch "+s, []byte(s)))
		wantKeys(t, m, "event", "data", "channel")
		w := wantDecoded([]byte(s))
		if m["event"] != "ev "+w || m["channel"] != "ch "+w || dataString(t, m) != w {
			t.Errorf("%q: %v", s, m)
		}
	}
}

func TestAppendClientEvent(t *testing.T) {
	tests := []struct {
		data, uid []byte
		wantData  any
		wantUID   any
	}{
		{[]byte(`{"name":"Ann"}`), nil, map[string]any{"name": "Ann"}, nil},
		{[]byte(`{}`), []byte(`"1"`), map[string]any{}, "1"},
		{nil, nil, nil, nil},
		{[]byte(`"hello"`), []byte(`7`), "hello", json.Number("7")},
		{[]byte(`12345678901234567890`), nil, json.Number("12345678901234567890"), nil},
	}
	for _, tt := range tests {
		out := AppendClientEvent(nil, "client-typing", "private-chat.1", tt.data, tt.uid)
		m := decodeObj(t, out)
		if tt.uid != nil {
			wantKeys(t, m, "event", "channel", "data", "user_id")
		} else {
			wantKeys(t, m, "event", "channel", "data")
		}
		if m["event"] != "client-typing" || m["channel"] != "private-chat.1" {
			t.Errorf("%s", out)
		}
		if !reflect.DeepEqual(m["data"], tt.wantData) || !reflect.DeepEqual(m["user_id"], tt.wantUID) {
			t.Errorf("%s: data %#v user_id %#v", out, m["data"], m["user_id"])
		}
		// data is forwarded as a value, not re-stringified, and {} stays {}.
		if tt.data != nil && !bytes.Contains(out, append([]byte(`"data":`), tt.data...)) {
			t.Errorf("%s does not carry %s verbatim", out, tt.data)
		}
	}
}

func TestAppendSigninSuccess(t *testing.T) {
	ud := `{"id":"12345","user_info":{"name":"Ann \"A\" \\ ü"},"watchlist":["2"]}`
	out := AppendSigninSuccess(nil, []byte(ud))
	m := decodeObj(t, out)
	wantKeys(t, m, "event", "data")
	if m["event"] != "pusher:signin_success" {
		t.Errorf("event %v", m["event"])
	}
	inner := decodeObj(t, []byte(dataString(t, m)))
	wantKeys(t, inner, "user_data")
	if got, ok := inner["user_data"].(string); !ok || got != ud {
		t.Errorf("user_data %#v, want the string %q", inner["user_data"], ud)
	}
	// The §4.9 example, byte for byte.
	if got, want := string(AppendSigninSuccess(nil, []byte(`{"id":"12345"}`))), `{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"12345\\\"}\"}"}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestEncodersNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 4096)
	data := []byte(`{"foo":"bar","quote":"\"x\"","u":"ü"}`)
	members := []Member{{[]byte(`"1"`), []byte(`{"n":"a"}`)}, {[]byte(`2`), nil}}
	cases := map[string]func(){
		"ChannelEvent":      func() { buf = AppendChannelEvent(buf[:0], "App\\Ev", "private-x", data) },
		"ClientEvent":       func() { buf = AppendClientEvent(buf[:0], "client-x", "private-x", data, []byte(`"1"`)) },
		"Error":             func() { buf = AppendError(buf[:0], ErrInvalidMessage) },
		"Established":       func() { buf = AppendConnectionEstablished(buf[:0], "1.2", 30) },
		"PresenceSucceeded": func() { buf = AppendPresenceSucceeded(buf[:0], "presence-x", members) },
		"MemberAdded":       func() { buf = AppendMemberAdded(buf[:0], "presence-x", data) },
		"MemberRemoved":     func() { buf = AppendMemberRemoved(buf[:0], "presence-x", []byte(`"1"`)) },
		"SigninSuccess":     func() { buf = AppendSigninSuccess(buf[:0], data) },
		"JSONStringBad":     func() { buf = AppendJSONString(buf[:0], []byte("a\x01\xff\"")) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkAppendChannelEvent(b *testing.B) {
	buf := make([]byte, 0, 512)
	data := []byte(`{"order":{"id":1234,"status":"shipped","items":[{"sku":"A-1","qty":2}],"note":"leave at door"}}`)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendChannelEvent(buf[:0], `App\Events\OrderShipped`, "private-orders.1", data)
	}
}
