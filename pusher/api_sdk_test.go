package pusher

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	pushersdk "github.com/pusher/pusher-http-go/v5"
)

// sdkServer serves api over real HTTP on 127.0.0.1 the way the loop will:
// strip the server prefix from the raw request target, hand over the raw
// path, raw query and body, and copy status, Allow and body back.
func sdkServer(t *testing.T, api *API, prefix string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target, query, _ := strings.Cut(r.RequestURI, "?")
		path, ok := strings.CutPrefix(target, prefix)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		status, out, allow := 404, []byte(`{"error":"Not found."}`), ""
		if ok {
			req := &APIRequest{Method: []byte(r.Method), Path: []byte(path), RawQuery: []byte(query), Body: body}
			status, out, allow = api.Serve(req, nil)
		}
		w.Header().Set("Content-Type", "application/json")
		if allow != "" {
			w.Header().Set("Allow", allow)
		}
		w.WriteHeader(status)
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sdkClient(srv *httptest.Server, prefix string) *pushersdk.Client {
	return &pushersdk.Client{
		AppID:  "3",
		Key:    vecKey,
		Secret: vecSecret,
		// The SDK appends "/apps/3/..." to Host, so a path here plays the
		// server prefix; it still signs the path without it, as pusher-php does.
		Host:       strings.TrimPrefix(srv.URL, "http://") + prefix,
		HTTPClient: srv.Client(),
	}
}

func ptr[T any](v T) *T { return &v }

// TestSDK drives every API call the official Go SDK can make against Serve,
// with and without a server prefix.
func TestSDK(t *testing.T) {
	for _, prefix := range []string{"", "/ws"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			api, be := newTestAPI(t)
			api.Now = nil // the SDK signs with the real clock
			be.state = map[string]ChannelInfo{
				"presence-room": {Occupied: true, UserCount: 2, SubscriptionCount: 3},
				"public":        {Occupied: true, SubscriptionCount: 4},
			}
			be.users = map[string][]string{"presence-room": {`"1"`, `"7"`}}
			srv := sdkServer(t, api, prefix)
			c := sdkClient(srv, prefix)

			var want []fakePublish
			expect := func(ps ...fakePublish) {
				t.Helper()
				for _, p := range ps {
					p.app = "3"
					want = append(want, p)
				}
				if got := be.calls(); !reflect.DeepEqual(got, want) {
					t.Fatalf("published %+v\nwant      %+v", got, want)
				}
			}

			if err := c.Trigger("private-orders.1", `App\Events\Shipped`, map[string]int{"id": 1}); err != nil {
				t.Fatal(err)
			}
			expect(fakePublish{channels: []string{"private-orders.1"}, event: `App\Events\Shipped`, data: []byte(`{"id":1}`)})

			if err := c.TriggerMulti([]string{"a", "b"}, "ev", "plain text"); err != nil {
				t.Fatal(err)
			}
			expect(fakePublish{channels: []string{"a", "b"}, event: "ev", data: []byte("plain text")})

			res, err := c.TriggerWithParams("presence-room", "ev", "d", pushersdk.TriggerParams{
				SocketID: ptr("123.456"), Info: ptr("user_count,subscription_count"),
			})
			if err != nil {
				t.Fatal(err)
			}
			expect(fakePublish{channels: []string{"presence-room"}, event: "ev", data: []byte("d"), except: "123.456"})
			if got := res.Channels["presence-room"]; len(res.Channels) != 1 || got.UserCount == nil || *got.UserCount != 2 || got.SubscriptionCount != nil {
				t.Fatalf("trigger info = %+v", res.Channels)
			}

			res, err = c.TriggerMultiWithParams([]string{"presence-room", "public", "nobody"}, "ev", "d", pushersdk.TriggerParams{Info: ptr("subscription_count")})
			if err != nil {
				t.Fatal(err)
			}
			expect(fakePublish{channels: []string{"presence-room", "public", "nobody"}, event: "ev", data: []byte("d")})
			if pub := res.Channels["public"]; len(res.Channels) != 3 || pub.SubscriptionCount == nil || *pub.SubscriptionCount != 4 ||
				res.Channels["presence-room"] != (pushersdk.TriggerChannelListItem{}) || res.Channels["nobody"] != (pushersdk.TriggerChannelListItem{}) {
				t.Fatalf("trigger multi info = %+v", res.Channels)
			}

			batch, err := c.TriggerBatch([]pushersdk.Event{
				{Channel: "presence-room", Name: "b1", Data: "one", Info: ptr("user_count")},
				{Channel: "public", Name: "b2", Data: map[string]string{"x": "y"}, SocketID: ptr("9.9")},
				{Channel: "public", Name: "b3", Data: "three", Info: ptr("subscription_count")},
			})
			if err != nil {
				t.Fatal(err)
			}
			expect(
				fakePublish{channels: []string{"presence-room"}, event: "b1", data: []byte("one")},
				fakePublish{channels: []string{"public"}, event: "b2", data: []byte(`{"x":"y"}`), except: "9.9"},
				fakePublish{channels: []string{"public"}, event: "b3", data: []byte("three")},
			)
			if b := batch.Batch; len(b) != 3 || b[0].UserCount == nil || *b[0].UserCount != 2 || b[1] != (pushersdk.TriggerBatchChannelListItem{}) ||
				b[2].SubscriptionCount == nil || *b[2].SubscriptionCount != 4 {
				t.Fatalf("batch info = %+v", b)
			}

			if _, err := c.TriggerBatch([]pushersdk.Event{{Channel: "public", Name: "b4", Data: "four"}}); err != nil {
				t.Fatalf("batch without info: %v", err)
			}
			expect(fakePublish{channels: []string{"public"}, event: "b4", data: []byte("four")})

			if err := c.SendToUser("42", "notice", "hi"); err != nil {
				t.Fatal(err)
			}
			expect(fakePublish{channels: []string{"#server-to-user-42"}, event: "notice", data: []byte("hi")})

			list, err := c.Channels(pushersdk.ChannelsParams{FilterByPrefix: ptr("presence-"), Info: ptr("user_count")})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(list.Channels, map[string]pushersdk.ChannelListItem{"presence-room": {UserCount: 2}}) {
				t.Fatalf("channels = %+v", list.Channels)
			}
			if last := be.prefixes[len(be.prefixes)-1]; last != "presence-" {
				t.Fatalf("backend got prefix %q", last)
			}
			// An empty list must decode: Reverb's [] would fail here.
			list, err = c.Channels(pushersdk.ChannelsParams{FilterByPrefix: ptr("private-")})
			if err != nil || len(list.Channels) != 0 {
				t.Fatalf("empty channels = %+v, %v", list, err)
			}

			ch, err := c.Channel("presence-room", pushersdk.ChannelParams{Info: ptr("user_count,subscription_count")})
			if err != nil {
				t.Fatal(err)
			}
			if *ch != (pushersdk.Channel{Name: "presence-room", Occupied: true, UserCount: 2}) {
				t.Fatalf("channel = %+v", ch)
			}
			ch, err = c.Channel("public", pushersdk.ChannelParams{Info: ptr("subscription_count")})
			if err != nil || *ch != (pushersdk.Channel{Name: "public", Occupied: true, SubscriptionCount: 4}) {
				t.Fatalf("channel = %+v, %v", ch, err)
			}

			users, err := c.GetChannelUsers("presence-room")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(users.List, []pushersdk.User{{ID: "1"}, {ID: "7"}}) {
				t.Fatalf("users = %+v", users.List)
			}
			if _, err := c.GetChannelUsers("public"); err == nil || !strings.Contains(err.Error(), "Status Code: 400") {
				t.Fatalf("users of a public channel: %v", err)
			}

			// pusher-http-go 5.1.1 has no TerminateUserConnections; send what
			// pusher-php sends (POST, body {}) signed with our signer, whose
			// output the §6.3 vectors pin down.
			status, body := terminateOverHTTP(t, srv, prefix, "42")
			if status != 200 || body != "{}" {
				t.Fatalf("terminate = %d %s", status, body)
			}
			if len(be.terminated) != 1 || be.terminated[0] != "3/42" {
				t.Fatalf("terminated %q", be.terminated)
			}
		})
	}
}

func terminateOverHTTP(t *testing.T, srv *httptest.Server, prefix, user string) (int, string) {
	t.Helper()
	path := "/apps/3/users/" + user + "/terminate_connections"
	body := []byte("{}")
	q := "auth_key=" + vecKey + "&auth_timestamp=" + strconv.FormatInt(time.Now().Unix(), 10) +
		"&auth_version=1.0&body_md5=" + string(apiMD5Hex(nil, body))
	q += "&auth_signature=" + string(SignAPIRequest(nil, vecSecret, []byte("POST"), []byte(path), []byte(q), body))
	resp, err := srv.Client().Post(srv.URL+prefix+path+"?"+q, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// tamperTransport changes the body after the SDK signed it.
type tamperTransport struct{ base http.RoundTripper }

func (tt tamperTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	b = bytes.Replace(b, []byte("hello"), []byte("HELLO"), 1)
	r2 := r.Clone(r.Context())
	r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	return tt.base.RoundTrip(r2)
}

// TestSDKRejected checks that requests the SDK signs wrongly, or that were
// changed on the way, are refused with 401 and publish nothing.
func TestSDKRejected(t *testing.T) {
	tests := []struct {
		name  string
		setup func(api *API, c *pushersdk.Client)
	}{
		{"tampered body", func(api *API, c *pushersdk.Client) {
			c.HTTPClient = &http.Client{Transport: tamperTransport{http.DefaultTransport}}
		}},
		{"wrong secret", func(api *API, c *pushersdk.Client) { c.Secret = "not-the-secret" }},
		{"wrong auth_key", func(api *API, c *pushersdk.Client) { c.Key = "k2" }},
		{"stale timestamp", func(api *API, c *pushersdk.Client) {
			api.Now = func() time.Time { return time.Now().Add(11 * time.Minute) }
		}},
		{"future timestamp", func(api *API, c *pushersdk.Client) {
			api.Now = func() time.Time { return time.Now().Add(-11 * time.Minute) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			api.Now = nil
			srv := sdkServer(t, api, "")
			c := sdkClient(srv, "")
			tt.setup(api, c)
			err := c.Trigger("public", "ev", "hello")
			if err == nil || !strings.Contains(err.Error(), "Status Code: 401") || !strings.Contains(err.Error(), "Authentication signature invalid.") {
				t.Fatalf("err = %v, want a 401", err)
			}
			if _, err := c.Channels(pushersdk.ChannelsParams{}); err == nil || !strings.Contains(err.Error(), "401") {
				if tt.name != "tampered body" { // GETs have no body to tamper with
					t.Fatalf("channels err = %v, want a 401", err)
				}
			}
			if calls := be.calls(); len(calls) != 0 {
				t.Fatalf("published %+v", calls)
			}
		})
	}
	t.Run("window 0 accepts the stale request", func(t *testing.T) {
		api, be := newTestAPI(t)
		api.TimestampWindow = 0
		api.Now = func() time.Time { return time.Now().Add(time.Hour) }
		c := sdkClient(sdkServer(t, api, ""), "")
		if err := c.Trigger("public", "ev", "hello"); err != nil {
			t.Fatal(err)
		}
		if len(be.calls()) != 1 {
			t.Fatalf("published %+v", be.calls())
		}
	})
}
