package pusher

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	vecKey    = "278d425bdf160c739803"
	vecSecret = "7ad3773142a6692b25b8"
	vecTS     = "1353088179"
)

// vecQuery is the auth part every §6.3 vector shares, in the order a client
// might send it (the signer must sort).
func vecQuery(extra string) string {
	q := "auth_version=1.0&auth_timestamp=" + vecTS + "&auth_key=" + vecKey
	if extra != "" {
		q = extra + "&" + q
	}
	return q
}

// TestSignAPIRequestVectors checks the signer against PROTOCOL.md §6.3.
func TestSignAPIRequestVectors(t *testing.T) {
	tests := []struct {
		name, method, path, query, body, want string
	}{
		{
			"pusher worked example", "POST", "/apps/3/events",
			vecQuery("body_md5=ec365a775a4cd0599faeb73354201b6f"),
			`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`,
			"da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		},
		{
			"channels with prefix and info", "GET", "/apps/3/channels",
			vecQuery("info=user_count&filter_by_prefix=presence-"), "",
			"16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291",
		},
		{
			"one channel with info", "GET", "/apps/3/channels/presence-foobar",
			vecQuery("info=user_count"), "",
			"4a3f2072171ff7ef80a933451b38ec483e1385faf0389630e3b994b581609157",
		},
		{
			"users", "GET", "/apps/3/channels/presence-foobar/users",
			vecQuery(""), "",
			"5567dd30e7f8575e66be615d2aac3f608a0c311c31ddab8513a278b022e9597e",
		},
		{
			"connections", "GET", "/apps/3/connections",
			vecQuery(""), "",
			"37023bce146b72320751f497a98d5d47c4b0092cd2c7f231e00be7f6bfa31a07",
		},
		{
			"terminate", "POST", "/apps/3/users/42/terminate_connections",
			vecQuery("body_md5=99914b932bd37a50b983c5e7c90ae93b"), "{}",
			"2829710742ff5f799010258297d09016e2366257e3e954039eeda349073a2bcf",
		},
		{
			// body_md5 in the query is ignored and recomputed [R].
			"forged body_md5 ignored", "POST", "/apps/3/events",
			vecQuery("body_md5=00000000000000000000000000000000"),
			`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`,
			"da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		},
		{
			// An encoded comma signs as a plain one, and an old signature is dropped.
			"escaped query and stale auth_signature", "GET", "/apps/3/channels/presence-foobar",
			"auth_signature=deadbeef&" + vecQuery("info=user%5Fcount"), "",
			"4a3f2072171ff7ef80a933451b38ec483e1385faf0389630e3b994b581609157",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SignAPIRequest(nil, vecSecret, []byte(tt.method), []byte(tt.path), []byte(tt.query), []byte(tt.body))
			if string(got) != tt.want {
				t.Fatalf("signature = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAPIStringToSign checks the third line of the string to sign directly.
func TestAPIStringToSign(t *testing.T) {
	tests := []struct {
		name, query, body, want string
	}{
		{"sorted by key", "b=2&a=1&c=3", "", "a=1&b=2&c=3"},
		{"byte order puts upper case first", "b=1&B=2&_=3", "", "B=2&_=3&b=1"},
		{"values decoded, not re-escaped", "info=user_count%2Csubscription_count&p=a+b%20c", "", "info=user_count,subscription_count&p=a b c"},
		{"array joined with commas", "channels[]=a&x=1&channels[]=b", "", "channels=a,b&x=1"},
		{"repeated plain key keeps last", "a=1&a=2", "", "a=2"},
		{"legacy keys dropped", "appId=1&appKey=k&channelName=c&auth_signature=s&z=1", "", "z=1"},
		{"body_md5 recomputed", "body_md5=bogus&a=1", "{}", "a=1&body_md5=99914b932bd37a50b983c5e7c90ae93b"},
		{"body_md5 dropped for empty body", "body_md5=bogus&a=1", "", "a=1"},
		{"nameless and empty pieces skipped", "&=x&&a=", "", "a="},
		{"malformed escape kept literally", "a=%zz%4", "", "a=%zz%4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q apiQuery
			q.parse([]byte(tt.query))
			var md []byte
			if tt.body != "" {
				md = apiMD5Hex(nil, []byte(tt.body))
			}
			if got := string(q.appendSigned(nil, md)); got != tt.want {
				t.Fatalf("params = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAPIVerify drives the signature check through Serve with a fixed clock.
func TestAPIVerify(t *testing.T) {
	now := time.Unix(1353088179, 0)
	sign := func(method, path, query, body string) string {
		sig := SignAPIRequest(nil, vecSecret, []byte(method), []byte(path), []byte(query), []byte(body))
		return query + "&auth_signature=" + string(sig)
	}
	evBody := `{"name":"foo","channel":"project-3","data":"x"}`
	tests := []struct {
		name   string
		window time.Duration
		clock  time.Time
		method string
		path   string // sent path
		query  string
		body   string
		want   int
	}{
		{"valid", 600 * time.Second, now, "POST", "/apps/3/events", sign("POST", "/apps/3/events", vecQuery(""), evBody), evBody, 200},
		{"tampered body", 600 * time.Second, now, "POST", "/apps/3/events", sign("POST", "/apps/3/events", vecQuery(""), evBody), strings.Replace(evBody, "x", "y", 1), 401},
		{"no signature", 0, now, "POST", "/apps/3/events", vecQuery(""), evBody, 401},
		{"wrong secret", 0, now, "GET", "/apps/3/connections",
			vecQuery("") + "&auth_signature=" + string(SignAPIRequest(nil, "other", []byte("GET"), []byte("/apps/3/connections"), []byte(vecQuery("")), nil)), "", 401},
		{"signed for another method", 0, now, "GET", "/apps/3/connections", sign("POST", "/apps/3/connections", vecQuery(""), ""), "", 401},
		{"signed for another path", 0, now, "GET", "/apps/3/connections", sign("GET", "/apps/3/channels", vecQuery(""), ""), "", 401},
		{"extra unsigned param", 0, now, "GET", "/apps/3/connections", sign("GET", "/apps/3/connections", vecQuery(""), "") + "&x=1", "", 401},
		{"wrong auth_key", 0, now, "GET", "/apps/3/connections",
			strings.Replace(sign("GET", "/apps/3/connections", vecQuery(""), ""), vecKey, "other-key", 1), "", 401},
		{"auth_key signed wrongly", 0, now, "GET", "/apps/3/connections",
			sign("GET", "/apps/3/connections", strings.Replace(vecQuery(""), vecKey, "other-key", 1), ""), "", 401},
		{"timestamp 600 s old accepted", 600 * time.Second, now.Add(600 * time.Second), "GET", "/apps/3/connections", sign("GET", "/apps/3/connections", vecQuery(""), ""), "", 200},
		{"timestamp 601 s old rejected", 600 * time.Second, now.Add(601 * time.Second), "GET", "/apps/3/connections", sign("GET", "/apps/3/connections", vecQuery(""), ""), "", 401},
		{"timestamp 601 s ahead rejected", 600 * time.Second, now.Add(-601 * time.Second), "GET", "/apps/3/connections", sign("GET", "/apps/3/connections", vecQuery(""), ""), "", 401},
		{"window 0 accepts a day-old timestamp", 0, now.Add(24 * time.Hour), "GET", "/apps/3/connections", sign("GET", "/apps/3/connections", vecQuery(""), ""), "", 200},
		{"garbage timestamp rejected with a window", 600 * time.Second, now, "GET", "/apps/3/connections",
			sign("GET", "/apps/3/connections", strings.Replace(vecQuery(""), vecTS, "soon", 1), ""), "", 401},
		{"raw path signature", 0, now, "GET", "/apps/3/channels/private-a%40b",
			sign("GET", "/apps/3/channels/private-a%40b", vecQuery(""), ""), "", 200},
		{"decoded path signature", 0, now, "GET", "/apps/3/channels/private-a%40b",
			sign("GET", "/apps/3/channels/private-a@b", vecQuery(""), ""), "", 200},
		{"signature with the prefix is not accepted", 0, now, "GET", "/apps/3/connections",
			sign("GET", "/ws/apps/3/connections", vecQuery(""), ""), "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, _ := newTestAPI(t)
			api.TimestampWindow = tt.window
			api.Now = func() time.Time { return tt.clock }
			status, body, _ := api.Serve(&APIRequest{Method: []byte(tt.method), Path: []byte(tt.path), RawQuery: []byte(tt.query), Body: []byte(tt.body)}, nil)
			if status != tt.want {
				t.Fatalf("status = %d (%s), want %d", status, body, tt.want)
			}
			if status == 401 && string(body) != `{"error":"Authentication signature invalid."}` {
				t.Fatalf("401 body = %s", body)
			}
		})
	}
}

// TestAPIUnescape covers path (rawurldecode) versus query (urldecode) rules.
func TestAPIUnescape(t *testing.T) {
	for _, s := range []string{"a+b", "a%2Bb", "%41%4a%4A", "%", "%4", "%zz", "x%2F%2fy", "caf%C3%A9"} {
		want, err := url.PathUnescape(s)
		if err != nil {
			want = s // PHP keeps malformed escapes
		}
		if got := string(apiUnescape(nil, []byte(s), false)); got != want {
			t.Errorf("path %q: got %q, want %q", s, got, want)
		}
		qwant, err := url.QueryUnescape(s)
		if err != nil {
			qwant = s
		}
		if got := string(apiUnescape(nil, []byte(s), true)); got != qwant {
			t.Errorf("query %q: got %q, want %q", s, got, qwant)
		}
	}
}
