package pusher

import (
	"bytes"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// APIRequest is one HTTP request as the loop hands it over. Path has the
// server prefix P already removed (e.g. "/apps/123/events", "/up",
// "/app/key") and is still percent-encoded; RawQuery is the undecoded text
// after '?'. The slices are only valid during Serve, which keeps none of them.
type APIRequest struct {
	Method, Path, RawQuery, Body []byte
}

// API serves the Reverb HTTP API (PROTOCOL.md §9): routing, app lookup,
// request signatures (§6.3), body validation and the response bodies.
// Serve is safe for concurrent use from any goroutine. Set the exported
// fields before the first Serve and do not copy an API after that.
type API struct {
	// Apps resolves {appId}. Required.
	Apps *AppSet
	// Backend holds channel state and does the fan-out. Required.
	Backend Backend
	// TimestampWindow rejects (401) a request whose auth_timestamp is further
	// than this from Now, in whole seconds; 0 disables the check (Reverb's
	// behaviour). The caller sets the default, 600 s.
	TimestampWindow time.Duration
	// Now is the clock for TimestampWindow; nil means time.Now.
	Now func() time.Time

	parsers fastjson.ParserPool
	macs    apiMACs
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

type apiRoute uint8

const (
	routeNone apiRoute = iota
	routeUp
	routeAppKey
	routeEvents
	routeBatch
	routeChannels
	routeChannel
	routeUsers
	routeTerminate
	routeConnections
)

// method is the one method a route answers; it is also the Allow value.
func (rt apiRoute) method() string {
	switch rt {
	case routeEvents, routeBatch, routeTerminate:
		return "POST"
	}
	return "GET"
}

// apiMatch routes a percent-decoded path (§1): exact segments, no trailing
// slash, parameters non-empty and free of '/' after decoding. id is the
// {appId} and arg the {channel} or {userId}; both alias path.
func apiMatch(path []byte) (rt apiRoute, id, arg []byte) {
	if len(path) < 2 || path[0] != '/' {
		return routeNone, nil, nil
	}
	var seg [5][]byte
	n := 0
	for rest := path[1:]; ; {
		if n == len(seg) {
			return routeNone, nil, nil
		}
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			seg[n] = rest
			n++
			break
		}
		seg[n], rest = rest[:i], rest[i+1:]
		n++
	}
	for _, s := range seg[:n] {
		if len(s) == 0 {
			return routeNone, nil, nil
		}
	}
	s0 := string(seg[0])
	switch {
	case n == 1 && s0 == "up":
		return routeUp, nil, nil
	case n == 2 && s0 == "app":
		return routeAppKey, nil, seg[1]
	case s0 != "apps" || n < 3:
		return routeNone, nil, nil
	}
	id = seg[1]
	s2 := string(seg[2])
	switch n {
	case 3:
		switch s2 {
		case "events":
			return routeEvents, id, nil
		case "batch_events":
			return routeBatch, id, nil
		case "channels":
			return routeChannels, id, nil
		case "connections":
			return routeConnections, id, nil
		}
	case 4:
		if s2 == "channels" {
			return routeChannel, id, seg[3]
		}
	case 5:
		switch {
		case s2 == "channels" && string(seg[4]) == "users":
			return routeUsers, id, seg[3]
		case s2 == "users" && string(seg[4]) == "terminate_connections":
			return routeTerminate, id, seg[3]
		}
	}
	return routeNone, nil, nil
}

// apiState is the pooled scratch of one Serve call.
type apiState struct {
	q    apiQuery
	v    apiVerifier
	path []byte
	bag  apiBag
	evs  []apiEvent
}

var apiStates = sync.Pool{New: func() any { return new(apiState) }}

// apiPoolMax keeps one unusually large request from pinning its buffers.
const apiPoolMax = 64 << 10

func (st *apiState) release() {
	if cap(st.q.buf) > apiPoolMax || cap(st.path) > apiPoolMax || cap(st.bag.b) > apiPoolMax || cap(st.v.params) > apiPoolMax {
		return
	}
	st.q.reset()
	st.path = st.path[:0]
	st.bag.b = st.bag.b[:0]
	clear(st.evs)
	st.evs = st.evs[:0]
	apiStates.Put(st)
}

// Serve answers one request. It appends the response body (always JSON) to
// dst and returns it with the status and an Allow header value, which is
// non-empty only for 405. Processing order is §9.1: route, app, signature,
// body JSON, validation, action. Any goroutine may call it; r is not kept.
// Backend.Publish receives freshly allocated arguments it may keep.
func (a *API) Serve(r *APIRequest, dst []byte) (status int, body []byte, allow string) {
	st := apiStates.Get().(*apiState)
	defer st.release()

	path := r.Path
	if bytes.IndexByte(path, '%') >= 0 {
		st.path = apiUnescape(st.path[:0], path, false)
		path = st.path
	}
	rt, id, arg := apiMatch(path)
	switch {
	case rt == routeNone:
		return 404, apiErrorBody(dst, "Not found.", nil), ""
	case string(r.Method) != rt.method():
		return 405, apiErrorBody(dst, "Method not allowed.", nil), rt.method()
	case rt == routeUp:
		return 200, append(dst, `{"health":"OK"}`...), ""
	case rt == routeAppKey:
		// A WebSocket path without the upgrade: Reverb fails with a 500
		// here; a 400 tells the caller what is wrong (§1 deviation).
		return 400, apiErrorBody(dst, "Bad request.", nil), ""
	}

	app := a.Apps.ByID(string(id))
	if app == nil {
		return 404, apiErrorBody(dst, "No matching application for ID [", id), ""
	}
	st.q.parse(r.RawQuery)
	if !a.verify(&st.v, &st.q, app, r.Method, r.Path, path, r.Body) {
		return 401, apiErrorBody(dst, "Authentication signature invalid.", nil), ""
	}

	switch rt {
	case routeEvents:
		status, dst = a.events(st, app, r.Body, dst)
	case routeBatch:
		status, dst = a.batch(st, app, r.Body, dst)
	case routeChannels:
		status, dst = a.channels(st, app, dst)
	case routeChannel:
		status, dst = a.channel(st, app, string(arg), dst)
	case routeUsers:
		status, dst = a.users(app, string(arg), dst)
	case routeTerminate:
		// The body (pusher-php sends {}) is signed but otherwise ignored.
		a.Backend.Terminate(app, string(arg))
		status, dst = 200, append(dst, "{}"...)
	case routeConnections:
		dst = append(dst, `{"connections":`...)
		dst = strconv.AppendInt(dst, int64(a.Backend.Connections(app)), 10)
		status, dst = 200, append(dst, '}')
	}
	return status, dst, ""
}

// apiErrorBody appends {"error":"<msg>"}; with id it appends Reverb's
// unknown-app text "<msg><id>]." instead.
func apiErrorBody(dst []byte, msg string, id []byte) []byte {
	dst = append(dst, `{"error":"`...)
	dst = append(dst, msg...)
	if id != nil {
		dst = apiAppendEscaped(dst, string(id))
		dst = append(dst, "]."...)
	}
	return append(dst, `"}`...)
}

// apiParseJSON parses a body that must be a JSON object.
func apiParseJSON(p *fastjson.Parser, body []byte) *fastjson.Value {
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil
	}
	return v
}

const apiInvalidJSON = "Invalid JSON body."

func (a *API) events(st *apiState, app *App, body, dst []byte) (int, []byte) {
	p := a.parsers.Get()
	defer a.parsers.Put(p)
	o := apiParseJSON(p, body)
	if o == nil {
		return 400, apiErrorBody(dst, apiInvalidJSON, nil)
	}
	var ev apiEvent
	st.bag.validateEvent(o, &ev)
	if !st.bag.empty() {
		return 422, st.bag.finish(dst)
	}
	var names []string
	if ev.list {
		names = make([]string, len(ev.channels))
		for i, c := range ev.channels {
			s, _ := c.StringBytes()
			names[i] = string(s)
		}
	} else {
		names = []string{string(ev.channel)}
	}
	if len(names) > 0 {
		a.Backend.Publish(app, names, string(ev.name), bytes.Clone(ev.data), string(ev.socketID))
	}
	if !ev.hasInfo {
		return 200, append(dst, "{}"...)
	}
	want := apiParseInfo(ev.info)
	dst = append(dst, `{"channels":{`...)
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = apiAppendString(dst, name)
		dst = append(dst, ':')
		dst = a.appendEventInfo(dst, app, name, want)
	}
	return 200, append(dst, "}}"...)
}

func (a *API) batch(st *apiState, app *App, body, dst []byte) (int, []byte) {
	p := a.parsers.Get()
	defer a.parsers.Put(p)
	o := apiParseJSON(p, body)
	if o == nil {
		return 400, apiErrorBody(dst, apiInvalidJSON, nil)
	}
	st.evs = st.bag.validateBatch(o, st.evs[:0])
	if !st.bag.empty() {
		return 422, st.bag.finish(dst)
	}
	anyInfo := false
	for i := range st.evs {
		ev := &st.evs[i]
		a.Backend.Publish(app, []string{string(ev.channel)}, string(ev.name), bytes.Clone(ev.data), string(ev.socketID))
		anyInfo = anyInfo || ev.hasInfo
	}
	if !anyInfo {
		// Reverb answers {"batch":{}}, which the official Go SDK cannot
		// decode (it wants a list). Pusher's {} suits every SDK, and
		// pusher-php accepts both (§9.4).
		return 200, append(dst, "{}"...)
	}
	dst = append(dst, `{"batch":[`...)
	for i := range st.evs {
		ev := &st.evs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		if !ev.hasInfo {
			dst = append(dst, "{}"...)
			continue
		}
		dst = a.appendEventInfo(dst, app, string(ev.channel), apiParseInfo(ev.info))
	}
	return 200, append(dst, "]}"...)
}

func (a *API) channels(st *apiState, app *App, dst []byte) (int, []byte) {
	prefix := string(st.q.getOrNil("filter_by_prefix"))
	want := apiParseInfo(st.q.getOrNil("info"))
	// Always an object: Reverb's empty [] crashes pusher-php (§9.5).
	dst = append(dst, `{"channels":{`...)
	first := true
	a.Backend.Channels(app, prefix, func(name string, ci ChannelInfo) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = apiAppendString(dst, name)
		dst = append(dst, ':')
		dst = apiAppendAttrs(dst, ClassifyChannel(name), ci, want)
	})
	return 200, append(dst, "}}"...)
}

func (a *API) channel(st *apiState, app *App, name string, dst []byte) (int, []byte) {
	ci := a.Backend.Channel(app, name)
	if !ci.Occupied {
		return 200, append(dst, `{"occupied":false}`...)
	}
	want := apiParseInfo(st.q.getOrNil("info")) | infoOccupied
	return 200, apiAppendAttrs(dst, ClassifyChannel(name), ci, want)
}

func (a *API) users(app *App, name string, dst []byte) (int, []byte) {
	// Reverb looks for the channel before checking its type, so an
	// unoccupied non-presence channel is 404, not 400 (§9.7).
	if !ClassifyChannel(name).IsPresence() {
		if !a.Backend.Channel(app, name).Occupied {
			return 404, append(dst, "{}"...)
		}
		return 400, append(dst, "{}"...)
	}
	mark := len(dst)
	dst = append(dst, `{"users":[`...)
	first := true
	occupied := a.Backend.Users(app, name, func(id []byte) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"id":`...)
		dst = append(dst, id...)
		dst = append(dst, '}')
	})
	if !occupied {
		return 404, append(dst[:mark], "{}"...)
	}
	return 200, append(dst, "]}"...)
}

// appendEventInfo appends the info object of one channel for /events and
// batch items: {} when unoccupied, never the cache (§9.3, §9.11).
func (a *API) appendEventInfo(dst []byte, app *App, name string, want apiInfo) []byte {
	ci := a.Backend.Channel(app, name)
	if !ci.Occupied {
		return append(dst, "{}"...)
	}
	return apiAppendAttrs(dst, ClassifyChannel(name), ci, want&^infoCache)
}

// apiInfo is the set of attributes asked for with info=a,b (§9.11).
type apiInfo uint8

const (
	infoOccupied apiInfo = 1 << iota
	infoUserCount
	infoSubscriptionCount
	infoCache
)

// apiParseInfo matches comma-separated tokens exactly, like Reverb's
// explode + in_array; unknown tokens are ignored.
func apiParseInfo(s []byte) apiInfo {
	var w apiInfo
	for len(s) > 0 {
		tok := s
		s = nil
		if i := bytes.IndexByte(tok, ','); i >= 0 {
			tok, s = tok[:i], tok[i+1:]
		}
		switch string(tok) {
		case "occupied":
			w |= infoOccupied
		case "user_count":
			w |= infoUserCount
		case "subscription_count":
			w |= infoSubscriptionCount
		case "cache":
			w |= infoCache
		}
	}
	return w
}

// apiAppendAttrs appends the attribute object of a channel: user_count only
// for presence channels, subscription_count only for the others, cache only
// for cache channels holding a message.
func apiAppendAttrs(dst []byte, typ ChannelType, ci ChannelInfo, want apiInfo) []byte {
	dst = append(dst, '{')
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
	}
	if want&infoOccupied != 0 {
		sep()
		dst = append(dst, `"occupied":`...)
		dst = strconv.AppendBool(dst, ci.Occupied)
	}
	if want&infoUserCount != 0 && typ.IsPresence() {
		sep()
		dst = append(dst, `"user_count":`...)
		dst = strconv.AppendInt(dst, int64(ci.UserCount), 10)
	}
	if want&infoSubscriptionCount != 0 && !typ.IsPresence() {
		sep()
		dst = append(dst, `"subscription_count":`...)
		dst = strconv.AppendInt(dst, int64(ci.SubscriptionCount), 10)
	}
	if want&infoCache != 0 && typ.IsCache() && ci.Cache != nil {
		sep()
		dst = append(dst, `"cache":`...)
		dst = append(dst, ci.Cache...)
	}
	return append(dst, '}')
}

// apiAppendString appends s as a JSON string. Invalid UTF-8 (possible in
// percent-decoded paths) becomes U+FFFD so the body stays valid JSON.
func apiAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = apiAppendEscaped(dst, s)
	return append(dst, '"')
}

const apiHex = "0123456789abcdef"

func apiAppendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', apiHex[c>>4], apiHex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
