package pusher

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzServe sends the API signed requests with fuzzed routes, path
// arguments, extra query parameters and bodies, so that they reach body
// parsing and validation rather than stop at the signature. Whatever
// arrives: no panic, a status from the documented set, a JSON body, nothing
// published or terminated by a refused request, every publish with an
// event and channels, and published data that is the Backend's to keep
// (the caller reuses the request buffer, the API its JSON parsers).
func FuzzServe(f *testing.F) {
	f.Add(uint8(0), "", "", []byte(`{"name":"e","channel":"c","data":"{}"}`))
	f.Add(uint8(0), "", "info=subscription_count", []byte(`{"name":"e","channels":["a","presence-b"],"data":"x","socket_id":"1.2","info":"user_count"}`))
	f.Add(uint8(1), "", "", []byte(`{"batch":[{"name":"e","channel":"c","data":"1"},{"name":"f","channel":"d","data":"2","socket_id":"3.4"}]}`))
	f.Add(uint8(2), "", "filter_by_prefix=presence-&info=user_count", []byte(nil))
	f.Add(uint8(3), "presence-room", "info=user_count,subscription_count", []byte(nil))
	f.Add(uint8(4), "presence-room", "", []byte(nil))
	f.Add(uint8(5), "42", "", []byte(`{}`))
	f.Add(uint8(6), "", "", []byte(nil))
	f.Add(uint8(7), "/apps/3/channels/a%2Fb", "", []byte(nil))
	f.Add(uint8(0), "", "", []byte(`{"name":"e","channels":[],"data":null}`))
	f.Add(uint8(1), "", "", []byte(`{"batch":[{"name":""},1,"x",[]]}`))

	a, be := newTestAPI(f)
	fixed := time.Unix(1_700_000_000, 0)
	a.Now = func() time.Time { return fixed }
	be.state["presence-room"] = ChannelInfo{Occupied: true, SubscriptionCount: 2, UserCount: 1}
	be.users["presence-room"] = []string{`"1"`}

	f.Fuzz(func(t *testing.T, route uint8, arg, query string, body []byte) {
		var method, path string
		switch route % 8 {
		case 0:
			method, path = "POST", "/apps/3/events"
		case 1:
			method, path = "POST", "/apps/3/batch_events"
		case 2:
			method, path = "GET", "/apps/3/channels"
		case 3:
			method, path = "GET", "/apps/3/channels/"+arg
		case 4:
			method, path = "GET", "/apps/3/channels/"+arg+"/users"
		case 5:
			method, path = "POST", "/apps/3/users/"+arg+"/terminate_connections"
		case 6:
			method, path = "GET", "/apps/3/connections"
		default:
			method, path = "GET", arg
			if route&8 != 0 {
				method = "POST"
			}
		}
		be.mu.Lock()
		be.published, be.terminated = nil, nil
		be.mu.Unlock()

		r := signedReq(a, method, path, query, string(body))
		status, out, allow := a.Serve(r, nil)

		switch status {
		case 200, 400, 401, 404, 405, 413, 422:
		default:
			t.Fatalf("status %d for %s %q ? %q: %s", status, method, path, query, out)
		}
		if !json.Valid(out) || !bytes.HasPrefix(out, []byte("{")) {
			t.Fatalf("%d with a body that is not a JSON object: %q", status, out)
		}
		if (status == 405) != (allow != "") {
			t.Fatalf("status %d with Allow %q", status, allow)
		}
		pubs := be.calls()
		be.mu.Lock()
		terminated := len(be.terminated)
		be.mu.Unlock()
		if status != 200 && (len(pubs) > 0 || terminated > 0) {
			t.Fatalf("refused with %d, yet %d published and %d terminated", status, len(pubs), terminated)
		}
		keep := make([]string, len(pubs))
		for i, p := range pubs {
			if p.event == "" || len(p.channels) == 0 {
				t.Fatalf("published %+v", p)
			}
			keep[i] = string(p.data)
		}
		// The caller reuses its request buffer and the API its parsers: the
		// published data must change with neither.
		for i := range r.Body {
			r.Body[i] = '#'
		}
		const skeleton = `{"name":"z","channel":"z","data":""}`
		pad := strings.Repeat("#", max(0, len(body)-len(skeleton))) // no longer than body: the parser's buffer is reused, not grown
		a.Serve(signedReq(a, "POST", "/apps/3/events", "", skeleton[:len(skeleton)-2]+pad+`"}`), nil)
		for i, p := range pubs {
			if string(p.data) != keep[i] {
				t.Fatalf("published data changed after Serve returned: %q", p.data)
			}
		}
	})
}
