package pusher

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message // nil slice fields must be nil, set ones must be equal
	}{
		// §4.1 ping/pong; [S] ignores ping data whatever it is.
		{"ping", `{"event":"pusher:ping","data":{}}`, Message{Kind: KindPing, Event: msgB("pusher:ping")}},
		{"ping no data", `{"event":"pusher:ping"}`, Message{Kind: KindPing, Event: msgB("pusher:ping")}},
		{"ping empty string", `{"event":"pusher:ping","data":""}`, Message{Kind: KindPing, Event: msgB("pusher:ping")}},
		{"ping non-JSON string", `{"event":"pusher:ping","data":"hello"}`, Message{Kind: KindPing, Event: msgB("pusher:ping")}},
		{"ping number", `{"event":"pusher:ping","data":5}`, Message{Kind: KindPing, Event: msgB("pusher:ping")}},
		{"pong", `{"event":"pusher:pong","data":{}}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong absent", `{"event":"pusher:pong"}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong null", `{"event":"pusher:pong","data":null}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong empty string", `{"event":"pusher:pong","data":""}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong false", `{"event":"pusher:pong","data":false}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong zero", `{"event":"pusher:pong","data":0.0}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong string zero", `{"event":"pusher:pong","data":"0"}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong list", `{"event":"pusher:pong","data":[1,2]}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},
		{"pong data-string", `{"event":"pusher:pong","data":"{}"}`, Message{Kind: KindPong, Event: msgB("pusher:pong")}},

		// §4.2 subscribe, as pusher-js sends it.
		{"subscribe public", `{"event":"pusher:subscribe","data":{"auth":"","channel":"orders"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("orders"), Auth: msgB("")}},
		{"subscribe private", `{"event":"pusher:subscribe","data":{"auth":"reverb-key:6f1c","channel":"private-orders.1"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("private-orders.1"), Auth: msgB("reverb-key:6f1c")}},
		{"subscribe presence", `{"event":"pusher:subscribe","data":{"auth":"k:90ab","channel_data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"Ann\"}}","channel":"presence-chat.1"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("presence-chat.1"), Auth: msgB("k:90ab"), ChannelData: msgB(`{"user_id":"1","user_info":{"name":"Ann"}}`)}},
		// channel_data is what was signed: unescaped once, inner escapes and
		// white space untouched.
		{"subscribe channel_data exact", `{"event":"pusher:subscribe","data":{"channel":"presence-x","channel_data":"{ \"user_id\" : \"\\u00e9\\/\" }"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("presence-x"), ChannelData: msgB(`{ "user_id" : "\u00e9\/" }`)}},
		{"subscribe auth null", `{"event":"pusher:subscribe","data":{"auth":null,"channel":"c"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c")}},
		{"subscribe channel_data null", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":null}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c")}},
		{"subscribe channel_data empty", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":""}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c")}},
		{"subscribe channel_data PHP-falsy 0", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":"0"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c")}},
		{"subscribe channel_data scalar JSON", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":"5"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c"), ChannelData: msgB("5")}},
		{"subscribe data-string", `{"event":"pusher:subscribe","data":"{\"channel\":\"orders\",\"auth\":\"\"}"}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("orders"), Auth: msgB("")}},
		{"subscribe '#' name passes decoding", `{"event":"pusher:subscribe","data":{"channel":"#server-to-user-5"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("#server-to-user-5")}},
		{"subscribe escaped key and channel", `{"\u0065vent":"pusher:subscribe","data":{"ch\u0061nnel":"caf\u00e9"}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("café")}},
		{"subscribe extra fields", `{"event":"pusher:subscribe","channel":"ignored","data":{"channel":"c","x":[1]},"y":{}}`,
			Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("c")}},

		// §4.3
		{"unsubscribe", `{"event":"pusher:unsubscribe","data":{"channel":"orders"}}`,
			Message{Kind: KindUnsubscribe, Event: msgB("pusher:unsubscribe"), Channel: msgB("orders")}},

		// §4.9
		{"signin", `{"event":"pusher:signin","data":{"auth":"k:4708","user_data":"{\"id\":\"12345\"}"}}`,
			Message{Kind: KindSignin, Event: msgB("pusher:signin"), Auth: msgB("k:4708"), UserData: msgB(`{"id":"12345"}`)}},
		{"signin empty", `{"event":"pusher:signin","data":{}}`, Message{Kind: KindSignin, Event: msgB("pusher:signin")}},

		// §4.8 client events: data relayed as JSON text.
		{"client object", `{"event":"client-typing","channel":"private-chat.1","data":{"name":"Ann"}}`,
			Message{Kind: KindClientEvent, Event: msgB("client-typing"), Channel: msgB("private-chat.1"), Data: msgB(`{"name":"Ann"}`)}},
		{"client {} stays {}", `{"event":"client-x","channel":"c","data":{}}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{}`)}},
		{"client [] stays []", `{"event":"client-x","channel":"c","data":[]}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`[]`)}},
		{"client data absent", `{"event":"client-x","channel":"c"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c")}},
		{"client data null", `{"event":"client-x","channel":"c","data":null}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`null`)}},
		{"client numbers keep text", `{"event":"client-x","channel":"c","data":{"big":123456789012345678901234567890,"f":1.0,"e":-2.5E+10,"z":0}}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{"big":123456789012345678901234567890,"f":1.0,"e":-2.5E+10,"z":0}`)}},
		{"client white space dropped, order kept", "{\"event\":\"client-x\",\"channel\":\"c\",\"data\": { \"b\" : [ 1 , true , null ] ,\n\t\"a\" : { } } }",
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{"b":[1,true,null],"a":{}}`)}},
		{"client strings re-escaped minimally", `{"event":"client-x","channel":"c","data":{"s":"\u00e9\/\n\"\\\u0000\ud83c\udf89"}}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{"s":"é/\n\"\\\u0000🎉"}`)}},
		{"client data-string object", `{"event":"client-x","channel":"c","data":"{\"a\":1}"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{"a":1}`)}},
		{"client data-string padded", `{"event":"client-x","channel":"c","data":" [1, {\"b\" : 2}] "}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`[1,{"b":2}]`)}},
		{"client data-string number", `{"event":"client-x","channel":"c","data":"123"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`123`)}},
		{"client data-string string", `{"event":"client-x","channel":"c","data":"\"x\""}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`"x"`)}},
		{"client data-string null", `{"event":"client-x","channel":"c","data":"null"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`null`)}},
		// [S] deviation: scalars are relayed instead of answering 4200.
		{"client plain string", `{"event":"client-x","channel":"c","data":"hello"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`"hello"`)}},
		{"client data-string with raw control char stays a string", `{"event":"client-x","channel":"c","data":"[\"\u0001\\n\"]"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`"[\"\u0001\\n\"]"`)}},
		{"client broken JSON string stays a string", `{"event":"client-x","channel":"c","data":"{\"a\":"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`"{\"a\":"`)}},
		{"client number", `{"event":"client-x","channel":"c","data":-0.5e3}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`-0.5e3`)}},
		{"client bool", `{"event":"client-x","channel":"c","data":false}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`false`)}},
		{"client binary-safe", `{"event":"client-x","channel":"c","data":{"b":"\u0000\u0001\u001f\u007f"}}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: []byte("{\"b\":\"\\u0000\\u0001\\u001f\x7f\"}")}},
		{"client user_id kept apart", `{"event":"client-x","channel":"c","data":{},"user_id":"forged"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-x"), Channel: msgB("c"), Data: msgB(`{}`), UserID: msgB(`"forged"`)}},
		{"client escaped event", `{"event":"client-\u00e9","channel":"c"}`,
			Message{Kind: KindClientEvent, Event: msgB("client-é"), Channel: msgB("c")}},

		// §3.2 step 7: valid non-client events are ignored.
		{"pusher_internal ignored", `{"event":"pusher_internal:member_added","channel":"presence-x","data":{}}`,
			Message{Kind: KindIgnore, Event: msgB("pusher_internal:member_added"), Channel: msgB("presence-x")}},
		{"app event ignored", `{"event":"App\\Events\\X","channel":"c","data":"anything"}`,
			Message{Kind: KindIgnore, Event: msgB(`App\Events\X`), Channel: msgB("c")}},
		{"prefix is case-sensitive", `{"event":"Client-x","channel":"c"}`,
			Message{Kind: KindIgnore, Event: msgB("Client-x"), Channel: msgB("c")}},
	}
	var d Decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			checkMessage(t, got, tt.want)
		})
	}
}

func msgB(s string) []byte { return []byte(s) }

func checkMessage(t *testing.T, got, want Message) {
	t.Helper()
	if got.Kind != want.Kind {
		t.Errorf("Kind %v, want %v", got.Kind, want.Kind)
	}
	fields := []struct {
		name      string
		got, want []byte
	}{
		{"Event", got.Event, want.Event},
		{"Channel", got.Channel, want.Channel},
		{"Auth", got.Auth, want.Auth},
		{"ChannelData", got.ChannelData, want.ChannelData},
		{"UserData", got.UserData, want.UserData},
		{"Data", got.Data, want.Data},
		{"UserID", got.UserID, want.UserID},
	}
	for _, f := range fields {
		if f.want == nil && len(f.got) != 0 {
			t.Errorf("%s = %q, want none", f.name, f.got)
		}
		if f.want != nil && !bytes.Equal(f.got, f.want) {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	// ChannelData may be nil but never an empty non-nil value.
	if got.ChannelData != nil && len(got.ChannelData) == 0 {
		t.Error("ChannelData is empty but not nil")
	}
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct{ name, in string }{
		// §3.2 step 3: JSON and UTF-8.
		{"empty", ``},
		{"not JSON", `hello`},
		{"truncated", `{"event":"pusher:ping"`},
		{"trailing garbage", `{"event":"pusher:ping"} x`},
		{"two values", `{"event":"pusher:ping"}{}`},
		{"array", `[{"event":"pusher:ping"}]`},
		{"string", `"pusher:ping"`},
		{"number", `5`},
		{"null", `null`},
		{"invalid UTF-8", "{\"event\":\"client-x\",\"channel\":\"c\",\"data\":\"\xff\"}"},
		{"raw control char", "{\"event\":\"client-x\",\"channel\":\"c\",\"data\":\"a\x01b\"}"},
		{"raw control char before an escape", "{\"event\":\"\x01\\b\",\"channel\":\"0\"}"},
		{"raw control char in a key", "{\"event\":\"client-x\",\"channel\":\"c\",\"data\":{\"a\x1f\\n\":1}}"},
		{"raw newline in a string", "{\"event\":\"client-x\",\"channel\":\"c\",\"data\":\"a\nb\"}"},
		{"bad escape", `{"event":"client-x","channel":"c","data":"\q"}`},
		{"short unicode escape", `{"event":"client-x","channel":"c","data":"\u12"}`},
		{"NaN", `{"event":"client-x","channel":"c","data":NaN}`},
		{"Infinity", `{"event":"client-x","channel":"c","data":-Inf}`},
		{"leading zero", `{"event":"client-x","channel":"c","data":01}`},
		{"plus sign", `{"event":"client-x","channel":"c","data":+1}`},
		{"bare dot", `{"event":"client-x","channel":"c","data":1.}`},
		{"single quotes", `{'event':'pusher:ping'}`},
		{"trailing comma", `{"event":"pusher:ping",}`},
		{"too deep", `{"event":"client-x","channel":"c","data":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`},

		// step 5: event.
		{"no event", `{"channel":"c","data":{}}`},
		{"event null", `{"event":null,"channel":"c"}`},
		{"event number", `{"event":5,"channel":"c"}`},
		{"event object", `{"event":{},"channel":"c"}`},
		{"event empty", `{"event":"","channel":"c"}`},

		// step 6: pusher:* dispatch and payload types.
		{"unknown pusher event", `{"event":"pusher:foo","data":{}}`},
		{"bare prefix", `{"event":"pusher:","data":{}}`},
		{"client connection_established", `{"event":"pusher:connection_established","data":{}}`},
		{"pong string data", `{"event":"pusher:pong","data":"abc"}`},
		{"pong number data", `{"event":"pusher:pong","data":5}`},
		{"pong true", `{"event":"pusher:pong","data":true}`},

		// §4.2 subscribe field rules.
		{"subscribe no data", `{"event":"pusher:subscribe"}`},
		{"subscribe empty data", `{"event":"pusher:subscribe","data":{}}`},
		{"subscribe list data", `{"event":"pusher:subscribe","data":["c"]}`},
		{"subscribe string data", `{"event":"pusher:subscribe","data":"orders"}`},
		{"subscribe channel missing", `{"event":"pusher:subscribe","data":{"auth":""}}`},
		{"subscribe channel null", `{"event":"pusher:subscribe","data":{"channel":null}}`},
		{"subscribe channel number", `{"event":"pusher:subscribe","data":{"channel":5}}`},
		{"subscribe channel array", `{"event":"pusher:subscribe","data":{"channel":["c"]}}`},
		{"subscribe channel empty", `{"event":"pusher:subscribe","data":{"channel":""}}`},
		{"subscribe auth array", `{"event":"pusher:subscribe","data":{"channel":"c","auth":[]}}`},
		{"subscribe auth number", `{"event":"pusher:subscribe","data":{"channel":"c","auth":5}}`},
		{"subscribe channel_data array", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":[]}}`},
		{"subscribe channel_data object", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":{"user_id":"1"}}}`},
		{"subscribe channel_data not JSON", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":"Hello"}}`},
		{"subscribe channel_data with raw control char", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":"{\"user_id\":\"\u0001\\n\"}"}}`},
		{"subscribe channel_data broken JSON", `{"event":"pusher:subscribe","data":{"channel":"c","channel_data":"{\"user_id\":"}}`},
		{"unsubscribe channel missing", `{"event":"pusher:unsubscribe","data":{}}`},
		{"unsubscribe channel empty", `{"event":"pusher:unsubscribe","data":{"channel":""}}`},
		{"signin user_data object", `{"event":"pusher:signin","data":{"auth":"a","user_data":{"id":"1"}}}`},
		{"signin auth number", `{"event":"pusher:signin","data":{"auth":1,"user_data":"{}"}}`},
		{"signin string data", `{"event":"pusher:signin","data":"x"}`},

		// step 7: client events and others need a channel.
		{"client no channel", `{"event":"client-x","data":{}}`},
		{"client channel null", `{"event":"client-x","channel":null}`},
		{"client channel number", `{"event":"client-x","channel":1}`},
		{"client channel empty", `{"event":"client-x","channel":""}`},
		{"other event no channel", `{"event":"App\\Event","data":"x"}`},
		{"pusher_internal no channel", `{"event":"pusher_internal:member_added"}`},
	}
	var d Decoder
	for _, tt := range tests {
		m, err := d.Decode([]byte(tt.in))
		if err != ErrInvalidMessage {
			t.Errorf("%s: Decode(%.80q) = %+v, %v; want ErrInvalidMessage", tt.name, tt.in, m, err)
		}
	}
}

// TestDecodeDataMatchesEncodingJSON checks that Data carries the same value
// encoding/json sees in the message.
func TestDecodeDataMatchesEncodingJSON(t *testing.T) {
	datas := []string{
		`{"a":1,"b":[true,false,null,"x"],"c":{"d":{"e":[]}}}`,
		`[1,"2",[3]]`,
		`"just a string with \"quotes\" and \\ and \u00e9"`,
		`{"unicode":"日本語 🎉","esc":"\t\r\n\b\f"}`,
		`{"n":[0,-0,1e5,1E-5,123456789012345678901234567890]}`,
	}
	var d Decoder
	for _, data := range datas {
		msg := `{"event":"client-x","channel":"c","data":` + data + `}`
		m, err := d.Decode([]byte(msg))
		if err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if !sameJSONValue(t, m.Data, []byte(data)) {
			t.Errorf("Data %s, want the value of %s", m.Data, data)
		}
	}
}

func sameJSONValue(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if err := da.Decode(&va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := db.Decode(&vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestDecodeLifetimes: ParseChannelData uses its own parser, so a Message
// from Decode stays intact while the hub parses its channel_data.
func TestDecodeLifetimes(t *testing.T) {
	var d Decoder
	m, err := d.Decode([]byte(`{"event":"pusher:subscribe","data":"{\"channel\":\"presence-x\",\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\":\\\"1\\\"}\"}"}`))
	if err != nil {
		t.Fatal(err)
	}
	idJSON, id, info, err := d.ParseChannelData(m.ChannelData)
	if err != nil || string(idJSON) != `"1"` || id != "1" || string(info) != "null" {
		t.Fatalf("ParseChannelData = %s %q %s %v", idJSON, id, info, err)
	}
	if _, _, err := d.ParseUserData([]byte(`{"id":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}`)); err != nil {
		t.Fatal(err)
	}
	checkMessage(t, m, Message{Kind: KindSubscribe, Event: msgB("pusher:subscribe"), Channel: msgB("presence-x"), Auth: msgB("k:s"), ChannelData: msgB(`{"user_id":"1"}`)})
}

func TestParseChannelData(t *testing.T) {
	tests := []struct {
		in         string
		idJSON, id string // idJSON "" means nil
		info       string
		wantErr    bool
	}{
		{`{"user_id":"1","user_info":{"name":"Ann"}}`, `"1"`, "1", `{"name":"Ann"}`, false},
		{`{"user_id":"ann@example.com"}`, `"ann@example.com"`, "ann@example.com", `null`, false},
		{`{"user_id":"a\"b\u00e9"}`, `"a\"bé"`, `a"bé`, `null`, false},
		{`{"user_info":{"x":[1,{}]},"user_id":7}`, `7`, "7", `{"x":[1,{}]}`, false},
		{`{"user_id":7.0}`, `7.0`, "7", `null`, false},
		{`{"user_id":1e2}`, `1e2`, "100", `null`, false},
		{`{"user_id":1.5}`, `1.5`, "1.5", `null`, false},
		{`{"user_id":12345678901234567890}`, `12345678901234567890`, "12345678901234567890", `null`, false},
		{`{"user_id":true}`, `true`, "1", `null`, false},
		{`{"user_id":"1","user_info":null}`, `"1"`, "1", `null`, false},
		{`{"user_id":"1","user_info":"str"}`, `"1"`, "1", `"str"`, false},
		{` { "user_id" : "1" , "extra" : 1 } `, `"1"`, "1", `null`, false},
		// 0 and "0" are users (Reverb lists them in the presence payload).
		{`{"user_id":0}`, `0`, "0", `null`, false},
		{`{"user_id":0.0}`, `0.0`, "0", `null`, false},
		{`{"user_id":"0"}`, `"0"`, "0", `null`, false},
		// Ids that name nobody.
		{`{"user_id":null}`, "", "", `null`, false},
		{`{"user_id":""}`, "", "", `null`, false},
		{`{"user_id":false}`, "", "", `null`, false},
		{`{"user_id":[]}`, "", "", `null`, false},
		{`{"user_id":{}}`, "", "", `null`, false},
		{`{"user_info":{}}`, "", "", `{}`, false},
		{`{}`, "", "", `null`, false},
		// Valid JSON that is not an object: no user.
		{`"str"`, "", "", `null`, false},
		{`[1]`, "", "", `null`, false},
		{`5`, "", "", `null`, false},
		// Errors.
		{`{"user_id":[1]}`, "", "", "", true},
		{`{"user_id":{"a":1}}`, "", "", "", true},
		{`{"user_id":`, "", "", "", true},
		{``, "", "", "", true},
		{"{\"user_id\":\"\xff\"}", "", "", "", true},
	}
	var d Decoder
	for _, tt := range tests {
		idJSON, id, info, err := d.ParseChannelData([]byte(tt.in))
		if tt.wantErr {
			if err != ErrInvalidMessage {
				t.Errorf("%s: err %v, want ErrInvalidMessage", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if (tt.idJSON == "") != (idJSON == nil) || string(idJSON) != tt.idJSON || id != tt.id || string(info) != tt.info {
			t.Errorf("%s: got (%s, %q, %s), want (%s, %q, %s)", tt.in, idJSON, id, info, tt.idJSON, tt.id, tt.info)
		}
	}
}

func TestParseUserData(t *testing.T) {
	tests := []struct {
		in, id, info string
		ok           bool
	}{
		{`{"id":"12345"}`, "12345", "null", true},
		{`{"id":"1","user_info":{"name":"Ann","tags":[1,{}]},"watchlist":["2"]}`, "1", `{"name":"Ann","tags":[1,{}]}`, true},
		{`{"id":"\u00e9"}`, "é", "null", true},
		{`{"id":""}`, "", "", false},
		{`{"id":5}`, "", "", false},
		{`{"id":null}`, "", "", false},
		{`{}`, "", "", false},
		{`[]`, "", "", false},
		{`"x"`, "", "", false},
		{`{"id":"1"`, "", "", false},
		{``, "", "", false},
	}
	var d Decoder
	for _, tt := range tests {
		id, info, err := d.ParseUserData([]byte(tt.in))
		if !tt.ok {
			if err != ErrUnauthorized {
				t.Errorf("%s: err %v, want ErrUnauthorized", tt.in, err)
			}
			continue
		}
		if err != nil || id != tt.id || string(info) != tt.info {
			t.Errorf("%s: got (%q, %s, %v), want (%q, %s)", tt.in, id, info, err, tt.id, tt.info)
		}
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindIgnore; k <= KindClientEvent; k++ {
		s := k.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "kind(") {
			t.Errorf("Kind %d: bad or duplicate name %q", k, s)
		}
		seen[s] = true
	}
	if Kind(200).String() != "kind(200)" {
		t.Error(Kind(200).String())
	}
}

var (
	benchClientEvent = []byte(`{"event":"client-typing","channel":"presence-chat.1","data":{"name":"Ann","typing":true,"at":1712345678901}}`)
	benchSubscribe   = []byte(`{"event":"pusher:subscribe","data":{"auth":"reverb-key:4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800","channel_data":"{\"user_id\":\"10\",\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}`)
)

func TestDecodeNoAlloc(t *testing.T) {
	var d Decoder
	msgs := map[string][]byte{
		"client event":         benchClientEvent,
		"subscribe":            benchSubscribe,
		"client data-string":   []byte(`{"event":"client-x","channel":"c","data":"{\"a\":[1,2,{\"b\":\"\\u00e9\"}]}"}`),
		"ping":                 []byte(`{"event":"pusher:ping","data":{}}`),
		"ping non-JSON string": []byte(`{"event":"pusher:ping","data":"hi"}`),
	}
	for name, msg := range msgs {
		if _, err := d.Decode(msg); err != nil { // warm the buffers
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(100, func() { d.Decode(msg) }); n != 0 {
			t.Errorf("Decode %s allocates %v times per call", name, n)
		}
	}
	cd := []byte(`{"user_id":"10","user_info":{"name":"Mr. Channels"}}`)
	d.ParseChannelData(cd)
	// One allocation: the id string the hub keeps.
	if n := testing.AllocsPerRun(100, func() { d.ParseChannelData(cd) }); n > 1 {
		t.Errorf("ParseChannelData allocates %v times per call", n)
	}
}

func BenchmarkDecodeClientEvent(b *testing.B) {
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(benchClientEvent)))
	for b.Loop() {
		if _, err := d.Decode(benchClientEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSubscribe(b *testing.B) {
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSubscribe)))
	for b.Loop() {
		if _, err := d.Decode(benchSubscribe); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode: Decode never panics, accepts only valid JSON, and whatever it
// accepts re-encodes to valid JSON through the encoders the hub uses.
func FuzzDecode(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzDecode holds the seeds.
	var d Decoder
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := d.Decode(msg)
		if err != nil {
			if err != ErrInvalidMessage {
				t.Fatalf("error %v, want ErrInvalidMessage", err)
			}
			return
		}
		if !utf8.Valid(msg) || !json.Valid(msg) {
			t.Fatalf("accepted invalid input %q", msg)
		}
		if len(m.Event) == 0 {
			t.Fatal("accepted an empty event")
		}
		mustJSON := func(what string, b []byte) {
			if !json.Valid(b) {
				t.Fatalf("%s is not valid JSON: %q (input %q)", what, b, msg)
			}
		}
		switch m.Kind {
		case KindSubscribe, KindUnsubscribe:
			if len(m.Channel) == 0 {
				t.Fatal("accepted an empty channel")
			}
			mustJSON("subscription_succeeded", AppendSubscriptionSucceeded(nil, string(m.Channel)))
			if m.ChannelData != nil {
				mustJSON("channel_data", m.ChannelData)
				mustJSON("member_added", AppendMemberAdded(nil, string(m.Channel), m.ChannelData))
				idJSON, _, info, err := d.ParseChannelData(m.ChannelData)
				if err == nil {
					mustJSON("user_info", info)
					if idJSON != nil {
						mustJSON("user_id", idJSON)
						mustJSON("member_removed", AppendMemberRemoved(nil, string(m.Channel), idJSON))
					}
					mustJSON("presence", AppendPresenceSucceeded(nil, string(m.Channel), []Member{{idJSON, info}}))
				}
			}
		case KindSignin:
			mustJSON("signin_success", AppendSigninSuccess(nil, m.UserData))
			if _, info, err := d.ParseUserData(m.UserData); err == nil {
				mustJSON("signin user_info", info)
			}
		case KindClientEvent:
			if m.Data != nil {
				mustJSON("data", m.Data)
			}
			mustJSON("client event as-is", AppendClientEventAsIs(nil, string(m.Event), string(m.Channel), m.Data, m.UserID))
			if m.UserID != nil {
				mustJSON("user_id", m.UserID)
			}
			mustJSON("client event", AppendClientEvent(nil, string(m.Event), string(m.Channel), m.Data, m.UserID))
			mustJSON("channel event", AppendChannelEvent(nil, string(m.Event), string(m.Channel), m.Data))
		case KindIgnore:
			if len(m.Channel) == 0 {
				t.Fatal("ignored event without channel")
			}
		}
	})
}
