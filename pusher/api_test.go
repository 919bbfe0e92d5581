package pusher

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePublish is one recorded Backend.Publish call.
type fakePublish struct {
	app      string
	channels []string
	event    string
	data     []byte // kept as passed, to prove the API hands over owned bytes
	except   string
}

// fakeBackend is an in-memory Backend that records what the API asks of it.
type fakeBackend struct {
	mu         sync.Mutex
	state      map[string]ChannelInfo // channel -> state; absent = unoccupied
	users      map[string][]string    // presence channel -> user id JSON texts
	conns      int
	published  []fakePublish
	terminated []string
	prefixes   []string // filter_by_prefix values seen by Channels
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{state: map[string]ChannelInfo{}, users: map[string][]string{}}
}

func (f *fakeBackend) Publish(app *App, channels []string, event string, data []byte, except string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, fakePublish{app.ID, channels, event, data, except})
}

func (f *fakeBackend) Channel(app *App, name string) ChannelInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[name]
}

func (f *fakeBackend) Channels(app *App, prefix string, visit func(string, ChannelInfo)) {
	f.mu.Lock()
	f.prefixes = append(f.prefixes, prefix)
	var names []string
	for n, ci := range f.state {
		if ci.Occupied && strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	f.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		visit(n, f.Channel(app, n))
	}
}

func (f *fakeBackend) Users(app *App, channel string, visit func([]byte)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.state[channel].Occupied {
		return false
	}
	for _, id := range f.users[channel] {
		visit([]byte(id))
	}
	return true
}

func (f *fakeBackend) Terminate(app *App, userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, app.ID+"/"+userID)
}

func (f *fakeBackend) Connections(app *App) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fakeBackend) calls() []fakePublish {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.published)
}

// newTestAPI serves app 3 (the §6.3 vector credentials) and a second app, so
// tests can see that calls go to the app named in the path.
func newTestAPI(t testing.TB) (*API, *fakeBackend) {
	t.Helper()
	apps, err := NewAppSet([]App{
		{ID: "3", Key: vecKey, Secret: vecSecret},
		{ID: "other app", Key: "k2", Secret: "s2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	be := newFakeBackend()
	return &API{Apps: apps, Backend: be, TimestampWindow: 600 * time.Second}, be
}

// signedReq builds a request signed like pusher-php does for app 3, at the
// API's current time.
func signedReq(a *API, method, path, query, body string) *APIRequest {
	return signedReqApp(a, vecKey, vecSecret, method, path, query, body)
}

func signedReqApp(a *API, key, secret, method, path, query, body string) *APIRequest {
	q := "auth_key=" + key + "&auth_timestamp=" + strconv.FormatInt(a.now().Unix(), 10) + "&auth_version=1.0"
	if query != "" {
		q += "&" + query
	}
	sig := SignAPIRequest(nil, secret, []byte(method), []byte(path), []byte(q), []byte(body))
	q += "&auth_signature=" + string(sig)
	return &APIRequest{Method: []byte(method), Path: []byte(path), RawQuery: []byte(q), Body: []byte(body)}
}

// jsonEqual compares JSON texts structurally (key order is irrelevant, §0.3)
// and fails on invalid JSON.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body = %s\nwant   %s", got, want)
	}
}

func TestAPIRouting(t *testing.T) {
	tests := []struct {
		name, method, path string
		signed             bool
		status             int
		allow, body        string
	}{
		{"health", "GET", "/up", false, 200, "", `{"health":"OK"}`},
		{"health wrong method", "POST", "/up", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"health trailing slash", "GET", "/up/", false, 404, "", `{"error":"Not found."}`},
		{"websocket path without upgrade", "GET", "/app/" + vecKey, false, 400, "", `{"error":"Bad request."}`},
		{"websocket path wrong method", "POST", "/app/" + vecKey, false, 405, "GET", `{"error":"Method not allowed."}`},
		{"root", "GET", "/", false, 404, "", `{"error":"Not found."}`},
		{"empty", "GET", "", false, 404, "", `{"error":"Not found."}`},
		{"unknown", "GET", "/apps/3/nothing", false, 404, "", `{"error":"Not found."}`},
		{"prefix left in", "POST", "/ws/apps/3/events", false, 404, "", `{"error":"Not found."}`},
		{"double slash", "GET", "/apps//channels", false, 404, "", `{"error":"Not found."}`},
		{"trailing slash", "GET", "/apps/3/channels/", false, 404, "", `{"error":"Not found."}`},
		{"too deep", "GET", "/apps/3/channels/a/users/x", false, 404, "", `{"error":"Not found."}`},
		{"encoded slash splits the segment", "GET", "/apps/3/channels/a%2Fb", false, 404, "", `{"error":"Not found."}`},
		{"events is POST", "GET", "/apps/3/events", false, 405, "POST", `{"error":"Method not allowed."}`},
		{"batch is POST", "PUT", "/apps/3/batch_events", false, 405, "POST", `{"error":"Method not allowed."}`},
		{"terminate is POST", "GET", "/apps/3/users/1/terminate_connections", false, 405, "POST", `{"error":"Method not allowed."}`},
		{"channels is GET", "POST", "/apps/3/channels", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"channel is GET", "DELETE", "/apps/3/channels/x", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"users is GET", "POST", "/apps/3/channels/x/users", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"connections is GET", "POST", "/apps/3/connections", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"method is case-sensitive", "get", "/apps/3/connections", false, 405, "GET", `{"error":"Method not allowed."}`},
		{"405 before app lookup", "GET", "/apps/404/events", false, 405, "POST", `{"error":"Method not allowed."}`},
		{"unknown app before signature", "GET", "/apps/404/connections", false, 404, "", `{"error":"No matching application for ID [404]."}`},
		{"unknown app id escaped", "GET", "/apps/a%22b/connections", false, 404, "", `{"error":"No matching application for ID [a\"b]."}`},
		{"signature before body", "POST", "/apps/3/events", false, 401, "", `{"error":"Authentication signature invalid."}`},
		{"encoded app id", "GET", "/apps/other%20app/connections", false, 401, "", `{"error":"Authentication signature invalid."}`},
		{"connections", "GET", "/apps/3/connections", true, 200, "", `{"connections":7}`},
		{"channel named users", "GET", "/apps/3/channels/users", true, 200, "", `{"occupied":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			be.conns = 7
			r := &APIRequest{Method: []byte(tt.method), Path: []byte(tt.path)}
			if tt.signed {
				r = signedReq(api, tt.method, tt.path, "", "")
			}
			status, body, allow := api.Serve(r, nil)
			if status != tt.status || allow != tt.allow {
				t.Fatalf("status, allow = %d, %q; want %d, %q (body %s)", status, allow, tt.status, tt.allow, body)
			}
			jsonEqual(t, body, tt.body)
		})
	}
}

// publishCase is one signed POST to a publishing endpoint: the body, the
// expected status and response, and what the backend must have published
// (app "3" implied).
type publishCase struct {
	name    string
	body    string
	status  int
	resp    string
	publish []fakePublish
}

// runPublishCases serves each case against a fresh fake backend with state.
func runPublishCases(t *testing.T, path string, state map[string]ChannelInfo, tests []publishCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			be.state = state
			status, body, _ := api.Serve(signedReq(api, "POST", path, "", tt.body), nil)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", status, tt.status, body)
			}
			jsonEqual(t, body, tt.resp)
			got := be.calls()
			for i := range tt.publish {
				tt.publish[i].app = "3"
			}
			if !reflect.DeepEqual(got, tt.publish) && !(len(got) == 0 && len(tt.publish) == 0) {
				t.Fatalf("published %+v\nwant      %+v", got, tt.publish)
			}
		})
	}
}

func TestAPIEvents(t *testing.T) {
	state := map[string]ChannelInfo{
		"presence-room": {Occupied: true, UserCount: 1, SubscriptionCount: 2},
		"public":        {Occupied: true, SubscriptionCount: 3},
		"cache-x":       {Occupied: true, SubscriptionCount: 1, Cache: []byte(`{"event":"e","data":"d","channel":"cache-x"}`)},
		`we"ird`:        {Occupied: true, SubscriptionCount: 4},
	}
	tests := []publishCase{
		{"one channel", `{"name":"App\\Events\\Shipped","data":"{\"id\":1}","channel":"private-orders.1"}`, 200, `{}`,
			[]fakePublish{{channels: []string{"private-orders.1"}, event: `App\Events\Shipped`, data: []byte(`{"id":1}`)}}},
		{"channels and socket_id", `{"name":"e","data":"d","channels":["a","b"],"socket_id":"123.456"}`, 200, `{}`,
			[]fakePublish{{channels: []string{"a", "b"}, event: "e", data: []byte("d"), except: "123.456"}}},
		{"channels wins over channel", `{"name":"e","data":"d","channels":["a"],"channel":"b"}`, 200, `{}`,
			[]fakePublish{{channels: []string{"a"}, event: "e", data: []byte("d")}}},
		{"empty channels with channel publishes nothing", `{"name":"e","data":"d","channels":[],"channel":"b"}`, 200, `{}`, nil},
		{"data forwarded as decoded once", `{"name":"e","data":"{\"a\":\"\\u00e9\\n\"}","channel":"c"}`, 200, `{}`,
			[]fakePublish{{channels: []string{"c"}, event: "e", data: []byte(`{"a":"\u00e9\n"}`)}}},
		{"non-JSON data string forwarded", `{"name":"e","data":"hello","channel":"c"}`, 200, `{}`,
			[]fakePublish{{channels: []string{"c"}, event: "e", data: []byte("hello")}}},
		{"info counts after dispatch", `{"name":"e","data":"d","channels":["presence-room","public","nobody"],"info":"user_count,subscription_count"}`, 200,
			`{"channels":{"presence-room":{"user_count":1},"public":{"subscription_count":3},"nobody":{}}}`,
			[]fakePublish{{channels: []string{"presence-room", "public", "nobody"}, event: "e", data: []byte("d")}}},
		{"info only user_count", `{"name":"e","data":"d","channels":["presence-room","public"],"info":"user_count"}`, 200,
			`{"channels":{"presence-room":{"user_count":1},"public":{}}}`,
			[]fakePublish{{channels: []string{"presence-room", "public"}, event: "e", data: []byte("d")}}},
		{"info occupied, never cache", `{"name":"e","data":"d","channel":"cache-x","info":"occupied,cache"}`, 200,
			`{"channels":{"cache-x":{"occupied":true}}}`,
			[]fakePublish{{channels: []string{"cache-x"}, event: "e", data: []byte("d")}}},
		{"info names escaped", `{"name":"e","data":"d","channel":"we\"ird","info":"subscription_count"}`, 200,
			`{"channels":{"we\"ird":{"subscription_count":4}}}`,
			[]fakePublish{{channels: []string{`we"ird`}, event: "e", data: []byte("d")}}},
		{"empty info string still answers channels", `{"name":"e","data":"d","channel":"public","info":""}`, 200,
			`{"channels":{"public":{}}}`,
			[]fakePublish{{channels: []string{"public"}, event: "e", data: []byte("d")}}},

		{"missing data", `{"name":"e","channel":"c"}`, 422, `{"data":["The data field is required."]}`, nil},
		{"empty data", `{"name":"e","data":"","channel":"c"}`, 422, `{"data":["The data field is required."]}`, nil},
		{"data not a string", `{"name":"e","data":{"a":1},"channel":"c"}`, 422, `{"data":["The data field must be a string."]}`, nil},
		{"blank name", `{"name":" \t","data":"d","channel":"c"}`, 422, `{"name":["The name field is required."]}`, nil},
		{"name null", `{"name":null,"data":"d","channel":"c"}`, 422, `{"name":["The name field is required."]}`, nil},
		{"name number", `{"name":5,"data":"d","channel":"c"}`, 422, `{"name":["The name field must be a string."]}`, nil},
		{"no channel at all", `{"name":"e","data":"d"}`, 422,
			`{"channels":["The channels field is required when channel is not present."],"channel":["The channel field is required when channels is not present."]}`, nil},
		{"empty channel and channels", `{"name":"e","data":"d","channel":"","channels":[]}`, 422,
			`{"channels":["The channels field is required when channel is not present."],"channel":["The channel field is required when channels is not present."]}`, nil},
		{"channels not an array", `{"name":"e","data":"d","channels":"a"}`, 422, `{"channels":["The channels field must be an array."]}`, nil},
		{"channels null beside channel", `{"name":"e","data":"d","channels":null,"channel":"a"}`, 422, `{"channels":["The channels field must be an array."]}`, nil},
		{"channels element not a string", `{"name":"e","data":"d","channels":["a",1]}`, 422, `{"channels.1":["The channels.1 field must be a string."]}`, nil},
		{"channel not a string", `{"name":"e","data":"d","channel":7}`, 422, `{"channel":["The channel field must be a string."]}`, nil},
		{"socket_id int", `{"name":"e","data":"d","channel":"c","socket_id":1234}`, 422, `{"socket_id":["The socket id field must be a string."]}`, nil},
		{"socket_id null", `{"name":"e","data":"d","channel":"c","socket_id":null}`, 422, `{"socket_id":["The socket id field must be a string."]}`, nil},
		{"info int", `{"name":"e","data":"d","channel":"c","info":1234}`, 422, `{"info":["The info field must be a string."]}`, nil},
		{"everything wrong", `{"name":[],"data":1,"socket_id":false,"info":[]}`, 422,
			`{"name":["The name field is required."],"data":["The data field must be a string."],"channels":["The channels field is required when channel is not present."],"channel":["The channel field is required when channels is not present."],"socket_id":["The socket id field must be a string."],"info":["The info field must be a string."]}`, nil},

		{"invalid JSON", `{"name":`, 400, `{"error":"Invalid JSON body."}`, nil},
		{"JSON array body", `[]`, 400, `{"error":"Invalid JSON body."}`, nil},
		{"empty body", ``, 400, `{"error":"Invalid JSON body."}`, nil},
	}
	runPublishCases(t, "/apps/3/events", state, tests)
}

// TestAPIPublishOwnsArguments checks that what Publish received survives the
// next request, which reuses the pooled parser and scratch.
func TestAPIPublishOwnsArguments(t *testing.T) {
	api, be := newTestAPI(t)
	for i := range 20 {
		body := `{"name":"e` + strconv.Itoa(i) + `","data":"payload-` + strconv.Itoa(i) + `","channel":"c` + strconv.Itoa(i) + `"}`
		if status, b, _ := api.Serve(signedReq(api, "POST", "/apps/3/events", "", body), nil); status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
	}
	for i, p := range be.calls() {
		n := strconv.Itoa(i)
		if p.event != "e"+n || string(p.data) != "payload-"+n || p.channels[0] != "c"+n {
			t.Fatalf("call %d was overwritten: %+v", i, p)
		}
	}
}

func TestAPIBatch(t *testing.T) {
	state := map[string]ChannelInfo{
		"presence-room": {Occupied: true, UserCount: 1, SubscriptionCount: 2},
		"public":        {Occupied: true, SubscriptionCount: 3},
	}
	tests := []publishCase{
		{"no info", `{"batch":[{"name":"a","data":"1","channel":"x"},{"name":"b","data":"2","channel":"y","socket_id":"1.2"}]}`, 200, `{}`,
			[]fakePublish{
				{channels: []string{"x"}, event: "a", data: []byte("1")},
				{channels: []string{"y"}, event: "b", data: []byte("2"), except: "1.2"},
			}},
		{"info per item", `{"batch":[{"name":"a","data":"1","channel":"presence-room","info":"user_count,subscription_count"},{"name":"b","data":"2","channel":"public"},{"name":"c","data":"3","channel":"public","info":"subscription_count,user_count"},{"name":"d","data":"4","channel":"gone","info":"subscription_count"}]}`, 200,
			`{"batch":[{"user_count":1},{},{"subscription_count":3},{}]}`,
			[]fakePublish{
				{channels: []string{"presence-room"}, event: "a", data: []byte("1")},
				{channels: []string{"public"}, event: "b", data: []byte("2")},
				{channels: []string{"public"}, event: "c", data: []byte("3")},
				{channels: []string{"gone"}, event: "d", data: []byte("4")},
			}},
		{"item channels ignored, channel required", `{"batch":[{"name":"a","data":"1","channel":"x"},{"name":"b","data":"2","channels":["y"]}]}`, 422,
			`{"batch.1.channel":["The batch.1.channel field is required."]}`, nil},
		{"item field errors", `{"batch":[{"name":1,"data":"","channel":"x","socket_id":5,"info":true}]}`, 422,
			`{"batch.0.name":["The batch.0.name field must be a string."],"batch.0.data":["The batch.0.data field is required."],"batch.0.socket_id":["The batch.0.socket id field must be a string."],"batch.0.info":["The batch.0.info field must be a string."]}`, nil},
		{"item not an object", `{"batch":[7]}`, 422,
			`{"batch.0.name":["The batch.0.name field is required."],"batch.0.data":["The batch.0.data field is required."],"batch.0.channel":["The batch.0.channel field is required."]}`, nil},
		{"missing batch", `{}`, 422, `{"batch":["The batch field is required."]}`, nil},
		{"empty batch", `{"batch":[]}`, 422, `{"batch":["The batch field is required."]}`, nil},
		{"batch not an array", `{"batch":"x"}`, 422, `{"batch":["The batch field must be an array."]}`, nil},
		{"invalid JSON", `{"batch":[}`, 400, `{"error":"Invalid JSON body."}`, nil},
	}
	runPublishCases(t, "/apps/3/batch_events", state, tests)
}

func TestAPIChannels(t *testing.T) {
	cached := `{"event":"e","data":"{\"a\":1}","channel":"cache-x"}`
	state := map[string]ChannelInfo{
		"presence-room":    {Occupied: true, UserCount: 2, SubscriptionCount: 3},
		"public":           {Occupied: true, SubscriptionCount: 3},
		"cache-x":          {Occupied: true, SubscriptionCount: 1, Cache: []byte(cached)},
		"cache-empty":      {Occupied: true, SubscriptionCount: 1},
		"private-gone":     {},
		"presence-cache-r": {Occupied: true, UserCount: 1, SubscriptionCount: 1},
	}
	tests := []struct {
		name, query, resp, prefix string
		empty                     bool
	}{
		{"empty is an object", "", `{"channels":{}}`, "", true},
		{"no info", "", `{"channels":{"presence-room":{},"public":{},"cache-x":{},"cache-empty":{},"presence-cache-r":{}}}`, "", false},
		{"user_count", "info=user_count", `{"channels":{"presence-room":{"user_count":2},"public":{},"cache-x":{},"cache-empty":{},"presence-cache-r":{"user_count":1}}}`, "", false},
		{"prefix", "filter_by_prefix=presence-&info=user_count", `{"channels":{"presence-room":{"user_count":2},"presence-cache-r":{"user_count":1}}}`, "presence-", false},
		{"subscription_count, occupied and cache", "info=subscription_count%2Coccupied,cache",
			`{"channels":{"presence-room":{"occupied":true},"public":{"occupied":true,"subscription_count":3},"cache-x":{"occupied":true,"subscription_count":1,"cache":` + cached + `},"cache-empty":{"occupied":true,"subscription_count":1},"presence-cache-r":{"occupied":true}}}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			if !tt.empty {
				be.state = state
			}
			status, body, _ := api.Serve(signedReq(api, "GET", "/apps/3/channels", tt.query, ""), nil)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			jsonEqual(t, body, tt.resp)
			if len(be.prefixes) != 1 || be.prefixes[0] != tt.prefix {
				t.Fatalf("prefixes = %q, want [%q]", be.prefixes, tt.prefix)
			}
		})
	}
}

func TestAPIChannel(t *testing.T) {
	cached := `{"event":"e","data":"d","channel":"cache-x"}`
	state := map[string]ChannelInfo{
		"public":            {Occupied: true, SubscriptionCount: 2},
		"presence-room":     {Occupied: true, UserCount: 1, SubscriptionCount: 2},
		"cache-x":           {Occupied: true, SubscriptionCount: 1, Cache: []byte(cached)},
		"cache-empty":       {Occupied: true, SubscriptionCount: 1},
		"#server-to-user-1": {Occupied: true, SubscriptionCount: 1},
	}
	all := "info=user_count,subscription_count,cache"
	tests := []struct{ name, path, query, resp string }{
		{"public with everything asked", "public", all, `{"occupied":true,"subscription_count":2}`},
		{"presence with everything asked", "presence-room", all, `{"occupied":true,"user_count":1}`},
		{"cache channel", "cache-x", "info=subscription_count,cache", `{"occupied":true,"subscription_count":1,"cache":` + cached + `}`},
		{"cache channel without a message", "cache-empty", "info=cache", `{"occupied":true}`},
		{"no info", "public", "", `{"occupied":true}`},
		{"occupied asked does not repeat", "public", "info=occupied", `{"occupied":true}`},
		{"unoccupied", "nobody", all, `{"occupied":false}`},
		{"percent-decoded name", "%23server-to-user-1", "info=subscription_count", `{"occupied":true,"subscription_count":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			be.state = state
			status, body, _ := api.Serve(signedReq(api, "GET", "/apps/3/channels/"+tt.path, tt.query, ""), nil)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			jsonEqual(t, body, tt.resp)
		})
	}
}

func TestAPIUsers(t *testing.T) {
	state := map[string]ChannelInfo{
		"presence-room":  {Occupied: true, UserCount: 3},
		"presence-empty": {Occupied: true},
		"public":         {Occupied: true, SubscriptionCount: 1},
	}
	users := map[string][]string{"presence-room": {`"1"`, `2`, `"a\"b"`}}
	tests := []struct {
		name, channel string
		status        int
		resp          string
	}{
		{"presence", "presence-room", 200, `{"users":[{"id":"1"},{"id":2},{"id":"a\"b"}]}`},
		{"presence without ids", "presence-empty", 200, `{"users":[]}`},
		{"unoccupied presence", "presence-nobody", 404, `{}`},
		{"unoccupied public is 404 first", "public-nobody", 404, `{}`},
		{"occupied public", "public", 400, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, be := newTestAPI(t)
			be.state, be.users = state, users
			status, body, _ := api.Serve(signedReq(api, "GET", "/apps/3/channels/"+tt.channel+"/users", "", ""), []byte("prefix:"))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			rest, ok := strings.CutPrefix(string(body), "prefix:")
			if !ok {
				t.Fatalf("dst prefix lost: %s", body)
			}
			jsonEqual(t, []byte(rest), tt.resp)
		})
	}
}

func TestAPITerminateAndConnections(t *testing.T) {
	api, be := newTestAPI(t)
	be.conns = 12345
	status, body, _ := api.Serve(signedReq(api, "POST", "/apps/3/users/a%20b/terminate_connections", "", "{}"), nil)
	if status != 200 {
		t.Fatalf("terminate status %d: %s", status, body)
	}
	jsonEqual(t, body, `{}`)
	// The body is not parsed: anything signed is accepted.
	status, _, _ = api.Serve(signedReq(api, "POST", "/apps/3/users/7/terminate_connections", "", "not json"), nil)
	if status != 200 {
		t.Fatalf("terminate with text body: %d", status)
	}
	if want := []string{"3/a b", "3/7"}; !slices.Equal(be.terminated, want) {
		t.Fatalf("terminated %q, want %q", be.terminated, want)
	}

	req := signedReqApp(api, "k2", "s2", "GET", "/apps/other%20app/connections", "", "")
	status, body, _ = api.Serve(req, nil)
	if status != 200 {
		t.Fatalf("connections status %d: %s", status, body)
	}
	jsonEqual(t, body, `{"connections":12345}`)
}

func TestAPIParseInfo(t *testing.T) {
	tests := []struct {
		in   string
		want apiInfo
	}{
		{"", 0},
		{"user_count", infoUserCount},
		{"user_count,subscription_count,occupied,cache", infoUserCount | infoSubscriptionCount | infoOccupied | infoCache},
		{"user_count ,subscription_count", infoSubscriptionCount}, // exact tokens, like in_array
		{"USER_COUNT,,bogus", 0},
	}
	for _, tt := range tests {
		if got := apiParseInfo([]byte(tt.in)); got != tt.want {
			t.Errorf("apiParseInfo(%q) = %b, want %b", tt.in, got, tt.want)
		}
	}
}

func TestAPIAppendString(t *testing.T) {
	for _, s := range []string{"plain", `q"b\s`, "ctl\x00\x1f\n\r\t", "ünï€😀", "bad\xffutf8", "\u2028"} {
		b := apiAppendString([]byte("x"), s)
		var got string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got != want {
			t.Fatalf("%q round-tripped to %q", s, got)
		}
	}
}

// TestAPIConcurrent runs mixed requests in parallel; run it with -race.
func TestAPIConcurrent(t *testing.T) {
	api, be := newTestAPI(t)
	be.state = map[string]ChannelInfo{"presence-room": {Occupied: true, UserCount: 1}}
	be.users = map[string][]string{"presence-room": {`"1"`}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				n := strconv.Itoa(g*1000 + i)
				reqs := []*APIRequest{
					signedReq(api, "POST", "/apps/3/events", "", `{"name":"e","data":"`+n+`","channel":"c`+n+`","info":"user_count"}`),
					signedReq(api, "POST", "/apps/3/batch_events", "", `{"batch":[{"name":"e","data":"`+n+`","channel":"c`+n+`"}]}`),
					signedReq(api, "GET", "/apps/3/channels/presence-room/users", "", ""),
					signedReq(api, "GET", "/apps/3/channels", "info=user_count", ""),
				}
				for _, r := range reqs {
					if status, body, _ := api.Serve(r, nil); status != 200 {
						t.Errorf("status %d: %s", status, body)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	calls := be.calls()
	if len(calls) != 8*50*2 {
		t.Fatalf("%d publishes, want %d", len(calls), 8*50*2)
	}
	for _, c := range calls {
		if c.channels[0] != "c"+string(c.data) {
			t.Fatalf("mixed-up publish %+v", c)
		}
	}
}

// BenchmarkAPIEvents serves a signed POST /events with one channel, the
// shape Laravel's broadcaster sends for every broadcast.
func BenchmarkAPIEvents(b *testing.B) {
	api, _ := newTestAPI(b)
	api.Backend = nopBackend{}
	body := `{"name":"App\\Events\\OrderShipped","data":"{\"order\":{\"id\":1,\"status\":\"shipped\"}}","channel":"private-orders.1","socket_id":"123.456"}`
	r := signedReq(api, "POST", "/apps/3/events", "", body)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		status, out, _ := api.Serve(r, dst[:0])
		if status != 200 || len(out) != 2 {
			b.Fatalf("status %d: %s", status, out)
		}
	}
}

// nopBackend discards publishes so the benchmark measures the API alone.
type nopBackend struct{}

func (nopBackend) Publish(*App, []string, string, []byte, string)   {}
func (nopBackend) Channel(*App, string) ChannelInfo                 { return ChannelInfo{} }
func (nopBackend) Channels(*App, string, func(string, ChannelInfo)) {}
func (nopBackend) Users(*App, string, func([]byte)) bool            { return false }
func (nopBackend) Terminate(*App, string)                           {}
func (nopBackend) Connections(*App) int                             { return 0 }
