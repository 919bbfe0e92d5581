package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	pushersdk "github.com/pusher/pusher-http-go/v5"
)

const (
	// The §6 vector credentials.
	caSecret = "7ad3773142a6692b25b8"
	caKey    = "278d425bdf160c739803"
	caSocket = "1234.1234"
)

// TestCheckChannelAuthVectors uses the signature vectors of PROTOCOL.md §6.1.
func TestCheckChannelAuthVectors(t *testing.T) {
	tests := []struct {
		channel, channelData, digest string
	}{
		{"private-foobar", "", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"},
		{"presence-foobar", `{"user_id":"10","user_info":{"name":"Mr. Channels"}}`, "4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800"},
		{"private-foobar", `{"foo":"bar"}`, "13cc18efb858e429b24bd58bb1e47f405d3d2f40c8bdfc96d933b65295139612"},
	}
	for _, tt := range tests {
		cd := []byte(tt.channelData)
		if tt.channelData == "" {
			cd = nil
		}
		auth := []byte(caKey + ":" + tt.digest)
		if !CheckChannelAuth(caSecret, caSocket, []byte(tt.channel), cd, auth) {
			t.Errorf("%s %s: valid signature rejected", tt.channel, tt.channelData)
		}
		// Every part of the signed string matters.
		if CheckChannelAuth(caSecret, "1234.1235", []byte(tt.channel), cd, auth) {
			t.Errorf("%s: accepted for another socket", tt.channel)
		}
		if CheckChannelAuth(caSecret, caSocket, []byte(tt.channel+"x"), cd, auth) {
			t.Errorf("%s: accepted for another channel", tt.channel)
		}
		if CheckChannelAuth(caSecret, caSocket, []byte(tt.channel), append(cd, ' '), auth) {
			t.Errorf("%s: accepted for other channel_data", tt.channel)
		}
		if CheckChannelAuth("other-secret", caSocket, []byte(tt.channel), cd, auth) {
			t.Errorf("%s: accepted with another secret", tt.channel)
		}
		if CheckChannelAuth(caSecret, caSocket, []byte(tt.channel), cd, []byte(caKey+":"+strings.ToUpper(tt.digest))) {
			t.Errorf("%s: uppercase hex accepted", tt.channel)
		}
	}
}

func TestCheckChannelAuthShapes(t *testing.T) {
	const digest = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	ch := []byte("private-foobar")
	tests := []struct {
		name string
		auth []byte
		want bool
	}{
		{"key:digest", []byte(caKey + ":" + digest), true},
		{"any key part is fine (Reverb does not check it)", []byte("wrong-key:" + digest), true},
		{"empty key part", []byte(":" + digest), true},
		{"no colon: whole value is the digest", []byte(digest), true},
		{"nil", nil, false},
		{"empty", []byte{}, false},
		{"key only", []byte(caKey + ":"), false},
		{"second colon is part of the digest", []byte("a:b:" + digest), false},
		{"truncated", []byte(caKey + ":" + digest[:63]), false},
		{"extra byte", []byte(caKey + ":" + digest + "0"), false},
	}
	for _, tt := range tests {
		if got := CheckChannelAuth(caSecret, caSocket, ch, nil, tt.auth); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	// Empty and nil channel_data sign the same two-part string.
	if !CheckChannelAuth(caSecret, caSocket, ch, []byte{}, []byte(digest)) {
		t.Error("empty channel_data must be treated as absent")
	}
}

func TestCheckUserAuthVector(t *testing.T) {
	ud := []byte(`{"id":"12345"}`)
	auth := []byte(caKey + ":4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba")
	if !CheckUserAuth(caSecret, caSocket, ud, auth) {
		t.Fatal("§6.2 vector rejected")
	}
	if CheckUserAuth(caSecret, caSocket, []byte(`{"id":"12346"}`), auth) {
		t.Error("accepted for other user_data")
	}
	if CheckUserAuth(caSecret, "1.2", ud, auth) {
		t.Error("accepted for another socket")
	}
	// A channel signature over the same bytes must not pass as a user one.
	if CheckChannelAuth(caSecret, caSocket, ud, nil, auth) {
		t.Error("user signature accepted as a channel signature")
	}
}

// authResponse decodes an auth endpoint response built by pusher-http-go:
// {"auth":…} plus "channel_data" or "user_data".
func authResponse(t *testing.T, body []byte, err error) map[string]string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return m
}

// TestCheckAuthAgainstPusherSDK signs with pusher-http-go's own auth helpers
// (what an app server running that SDK answers) and checks we accept it.
func TestCheckAuthAgainstPusherSDK(t *testing.T) {
	// The master key only lets the SDK authorize private-encrypted-* channels.
	c := pushersdk.Client{AppID: "3", Key: caKey, Secret: caSecret, EncryptionMasterKeyBase64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	sockets := []string{"1234.1234", "1.2", "987654321.123456789"}
	channels := []string{"private-foobar", "private-orders.1", "private-encrypted-x", "private-cache-a=b@c,d;e"}
	for _, sock := range sockets {
		for _, ch := range channels {
			body := []byte("socket_id=" + sock + "&channel_name=" + url.QueryEscape(ch))
			res, err := c.AuthorizePrivateChannel(body)
			r := authResponse(t, res, err)
			if !CheckChannelAuth(caSecret, sock, []byte(ch), nil, []byte(r["auth"])) {
				t.Errorf("private %s %s: SDK signature rejected: %v", sock, ch, r)
			}
			if CheckChannelAuth(caSecret, sock, []byte(ch+"-"), nil, []byte(r["auth"])) {
				t.Errorf("private %s %s: accepted for another channel", sock, ch)
			}
		}
		for _, uid := range []string{"10", "ann@example.com", "ü"} {
			ch := "presence-chat.1"
			body := []byte("socket_id=" + sock + "&channel_name=" + url.QueryEscape(ch))
			member := pushersdk.MemberData{UserID: uid, UserInfo: map[string]string{"name": "Mr. Channels", "q": `"\`}}
			res, err := c.AuthorizePresenceChannel(body, member)
			r := authResponse(t, res, err)
			cd := []byte(r["channel_data"])
			if len(cd) == 0 {
				t.Fatalf("SDK gave no channel_data: %v", r)
			}
			if !CheckChannelAuth(caSecret, sock, []byte(ch), cd, []byte(r["auth"])) {
				t.Errorf("presence %s %s: SDK signature rejected: %v", sock, uid, r)
			}
			if CheckChannelAuth(caSecret, sock, []byte(ch), nil, []byte(r["auth"])) {
				t.Errorf("presence %s %s: accepted without channel_data", sock, uid)
			}
		}
		res, err := c.AuthenticateUser([]byte("socket_id="+sock), map[string]any{"id": "12345", "user_info": map[string]string{"n": "x"}})
		r := authResponse(t, res, err)
		if !CheckUserAuth(caSecret, sock, []byte(r["user_data"]), []byte(r["auth"])) {
			t.Errorf("signin %s: SDK signature rejected: %v", sock, r)
		}
	}
}

// TestMacHexMatchesCryptoHMAC checks the hand-rolled HMAC against
// crypto/hmac for random keys (short, block-sized, longer than a block) and
// messages.
func TestMacHexMatchesCryptoHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, keyLen := range []int{0, 1, 20, 63, 64, 65, 200} {
		for range 20 {
			secret := string(rnd(keyLen))
			sock := string(rnd(rng.IntN(100)))
			parts := [][]byte{rnd(rng.IntN(5)), rnd(rng.IntN(300)), rnd(rng.IntN(3)), rnd(rng.IntN(2000))}
			var got [64]byte
			macHex(&got, secret, sock, parts[0], parts[1], parts[2], parts[3])
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(sock))
			for _, p := range parts {
				m.Write(p)
			}
			if want := hex.EncodeToString(m.Sum(nil)); string(got[:]) != want {
				t.Fatalf("key len %d: got %s, want %s", keyLen, got, want)
			}
		}
	}
}

func TestValidSocketID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"1234.1234", true},
		{"0.0", true},
		{"1828473925.620591217", true},
		{"", false},
		{".", false},
		{"1.", false},
		{".1", false},
		{"1.2.3", false},
		{"1..2", false},
		{"a.1", false},
		{"1.2\n", false},
		{" 1.2", false},
		{"-1.2", false},
		{"1,2", false},
		{"１.2", false}, // full-width digit
	}
	for _, tt := range tests {
		if got := ValidSocketID([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidSocketID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCheckChannelAuthNoAlloc(t *testing.T) {
	ch := []byte("presence-foobar")
	cd := []byte(`{"user_id":"10","user_info":{"name":"Mr. Channels"}}`)
	auth := []byte(caKey + ":4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800")
	if n := testing.AllocsPerRun(100, func() {
		if !CheckChannelAuth(caSecret, caSocket, ch, cd, auth) {
			t.Fatal("rejected")
		}
	}); n != 0 {
		t.Errorf("CheckChannelAuth allocates %v times per call", n)
	}
	ud := []byte(`{"id":"12345"}`)
	uauth := []byte("4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba")
	if n := testing.AllocsPerRun(100, func() { CheckUserAuth(caSecret, caSocket, ud, uauth) }); n != 0 {
		t.Errorf("CheckUserAuth allocates %v times per call", n)
	}
}

func BenchmarkCheckChannelAuth(b *testing.B) {
	ch := []byte("private-foobar")
	auth := []byte(caKey + ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4")
	b.ReportAllocs()
	for b.Loop() {
		if !CheckChannelAuth(caSecret, caSocket, ch, nil, auth) {
			b.Fatal("rejected")
		}
	}
}
