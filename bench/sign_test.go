//go:build linux

package bench

import (
	"net/url"
	"testing"
)

const (
	vecKey    = "278d425bdf160c739803"
	vecSecret = "7ad3773142a6692b25b8"
)

// TestAppendChannelAuth checks the subscribe signatures against the
// PROTOCOL.md §6.1 vectors.
func TestAppendChannelAuth(t *testing.T) {
	tests := []struct{ channel, data, want string }{
		{"private-foobar", "", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"},
		{"presence-foobar", `{"user_id":"10","user_info":{"name":"Mr. Channels"}}`, "4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800"},
		{"private-foobar", `{"foo":"bar"}`, "13cc18efb858e429b24bd58bb1e47f405d3d2f40c8bdfc96d933b65295139612"},
	}
	for _, tt := range tests {
		got := string(AppendChannelAuth(nil, vecKey, vecSecret, []byte("1234.1234"), []byte(tt.channel), []byte(tt.data)))
		if want := vecKey + ":" + tt.want; got != want {
			t.Errorf("%s %s: got %s, want %s", tt.channel, tt.data, got, want)
		}
	}
}

// TestAPISignerVector checks the signed /events query against Pusher's
// worked example in PROTOCOL.md §6.3.
func TestAPISignerVector(t *testing.T) {
	body := []byte(`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`)
	q := APISigner{Key: vecKey, Secret: vecSecret}.AppendQuery([]byte("prefix?"), "POST", "/apps/3/events", body, 1353088179)
	if string(q[:7]) != "prefix?" {
		t.Fatalf("dst prefix clobbered: %q", q)
	}
	v, err := url.ParseQuery(string(q[7:]))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"auth_key":       vecKey,
		"auth_timestamp": "1353088179",
		"auth_version":   "1.0",
		"body_md5":       "ec365a775a4cd0599faeb73354201b6f",
		"auth_signature": "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
	}
	for k, w := range want {
		if got := v.Get(k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	if len(v) != len(want) {
		t.Errorf("unexpected parameters in %q", q)
	}
	// No body: no body_md5, and the §6.3 GET vector still holds.
	q = APISigner{Key: vecKey, Secret: vecSecret}.AppendQuery(nil, "GET", "/apps/3/connections", nil, 1353088179)
	v, _ = url.ParseQuery(string(q))
	if v.Has("body_md5") || v.Get("auth_signature") != "37023bce146b72320751f497a98d5d47c4b0092cd2c7f231e00be7f6bfa31a07" {
		t.Errorf("GET /connections: %q", q)
	}
}
