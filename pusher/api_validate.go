package pusher

import (
	"strconv"

	"github.com/valyala/fastjson"
)

// apiEvent is one validated event of POST /events or one batch item. The
// byte slices point into the fastjson parser and die with it.
type apiEvent struct {
	name     []byte
	data     []byte
	list     bool              // /events got a "channels" array, which wins over channel
	channels []*fastjson.Value // its elements, all strings once validated
	channel  []byte
	socketID []byte
	info     []byte
	hasInfo  bool
}

// apiBag collects Laravel-style validation errors (§9.1) as the JSON object
// {"<field>":["<message>"],...}. Fields are dot paths (batch.0.name); the
// displayed name replaces '_' with ' ' as Laravel's validator does.
type apiBag struct {
	b []byte
}

type apiRule uint8

const (
	ruleRequired apiRule = iota
	ruleRequiredWithout
	ruleString
	ruleArray
)

func (g *apiBag) empty() bool { return len(g.b) == 0 }

// add records one failure. prefix and index build paths like "batch.3.name"
// (index < 0: none); other is the field named by required_without.
func (g *apiBag) add(prefix string, index int, field string, rule apiRule, other string) {
	if len(g.b) == 0 {
		g.b = append(g.b, '{')
	} else {
		g.b = append(g.b, ',')
	}
	mark := len(g.b)
	g.b = append(g.b, '"')
	g.b = g.path(prefix, index, field)
	g.b = append(g.b, '"')
	path := string(g.b[mark+1 : len(g.b)-1])
	g.b = append(g.b, ":[\"The "...)
	for i := 0; i < len(path); i++ {
		if path[i] == '_' {
			g.b = append(g.b, ' ')
		} else {
			g.b = append(g.b, path[i])
		}
	}
	switch rule {
	case ruleRequired:
		g.b = append(g.b, " field is required."...)
	case ruleRequiredWithout:
		g.b = append(g.b, " field is required when "...)
		g.b = append(g.b, other...)
		g.b = append(g.b, " is not present."...)
	case ruleString:
		g.b = append(g.b, " field must be a string."...)
	case ruleArray:
		g.b = append(g.b, " field must be an array."...)
	}
	g.b = append(g.b, "\"]"...)
}

// path appends the field path. Prefixes and fields are ASCII constants and
// the index is digits, so nothing needs JSON escaping.
func (g *apiBag) path(prefix string, index int, field string) []byte {
	b := append(g.b, prefix...)
	if index >= 0 {
		b = strconv.AppendInt(b, int64(index), 10)
		if field != "" {
			b = append(b, '.')
		}
	}
	return append(b, field...)
}

// finish closes the bag's JSON object and appends it to dst.
func (g *apiBag) finish(dst []byte) []byte {
	dst = append(dst, g.b...)
	return append(dst, '}')
}

// apiFilled reports whether v passes Laravel's "required": present, not
// null, not a string that trims to empty, not an empty array or object.
func apiFilled(v *fastjson.Value) bool {
	if v == nil {
		return false
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return false
	case fastjson.TypeString:
		return !apiBlank(v)
	case fastjson.TypeArray:
		a, _ := v.Array()
		return len(a) > 0
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o.Len() > 0
	}
	return true
}

// apiBlank reports whether v is a string of PHP trim() whitespace only.
// Laravel skips non-implicit rules (string, array) for such values.
func apiBlank(v *fastjson.Value) bool {
	if v == nil || v.Type() != fastjson.TypeString {
		return false
	}
	s, _ := v.StringBytes()
	for _, c := range s {
		switch c {
		case ' ', '\t', '\n', '\r', 0, '\x0b':
		default:
			return false
		}
	}
	return true
}

// requiredString applies "required|string" and returns the value.
func (g *apiBag) requiredString(v *fastjson.Value, prefix string, index int, field string) []byte {
	if !apiFilled(v) {
		g.add(prefix, index, field, ruleRequired, "")
		return nil
	}
	if v.Type() != fastjson.TypeString {
		g.add(prefix, index, field, ruleString, "")
		return nil
	}
	s, _ := v.StringBytes()
	return s
}

// optionalString applies "string" to an optional field.
func (g *apiBag) optionalString(v *fastjson.Value, prefix string, index int, field string) ([]byte, bool) {
	if v == nil {
		return nil, false
	}
	if v.Type() != fastjson.TypeString {
		g.add(prefix, index, field, ruleString, "")
		return nil, false
	}
	s, _ := v.StringBytes()
	return s, true
}

// validateEvent applies Reverb's EventsController rules (§9.3) to the body
// object o. channels (an array, element strings checked too) wins over
// channel.
func (g *apiBag) validateEvent(o *fastjson.Value, ev *apiEvent) {
	ev.name = g.requiredString(o.Get("name"), "", -1, "name")
	ev.data = g.requiredString(o.Get("data"), "", -1, "data")
	chs, ch := o.Get("channels"), o.Get("channel")
	chsFilled, chFilled := apiFilled(chs), apiFilled(ch)
	switch {
	case !chsFilled && !chFilled:
		g.add("", -1, "channels", ruleRequiredWithout, "channel")
	case chs != nil && !apiBlank(chs):
		if chs.Type() != fastjson.TypeArray {
			g.add("", -1, "channels", ruleArray, "")
			break
		}
		ev.channels, _ = chs.Array()
		ev.list = true
		// Reverb leaves elements unchecked and would publish to "1" for 1;
		// we insist on strings (deviation, no client sends anything else).
		for i, c := range ev.channels {
			if c.Type() != fastjson.TypeString {
				g.add("channels.", i, "", ruleString, "")
			}
		}
	}
	switch {
	case !chsFilled && !chFilled:
		g.add("", -1, "channel", ruleRequiredWithout, "channels")
	case ch != nil && !apiBlank(ch):
		if ch.Type() != fastjson.TypeString {
			g.add("", -1, "channel", ruleString, "")
			break
		}
		ev.channel, _ = ch.StringBytes()
	}
	ev.socketID, _ = g.optionalString(o.Get("socket_id"), "", -1, "socket_id")
	ev.info, ev.hasInfo = g.optionalString(o.Get("info"), "", -1, "info")
}

// validateBatch applies the batch_events rules (§9.4) and fills evs with one
// entry per item. Unlike Reverb every item needs its own "channel"; an
// item's "channels" is ignored.
func (g *apiBag) validateBatch(o *fastjson.Value, evs []apiEvent) []apiEvent {
	b := o.Get("batch")
	if !apiFilled(b) {
		g.add("", -1, "batch", ruleRequired, "")
		return evs
	}
	if b.Type() != fastjson.TypeArray {
		g.add("", -1, "batch", ruleArray, "")
		return evs
	}
	items, _ := b.Array()
	for i, it := range items {
		var ev apiEvent
		// Get on a non-object yields nil, so a non-object item fails
		// "required" on each field, as in Laravel.
		ev.name = g.requiredString(it.Get("name"), "batch.", i, "name")
		ev.data = g.requiredString(it.Get("data"), "batch.", i, "data")
		ev.channel = g.requiredString(it.Get("channel"), "batch.", i, "channel")
		ev.socketID, _ = g.optionalString(it.Get("socket_id"), "batch.", i, "socket_id")
		ev.info, ev.hasInfo = g.optionalString(it.Get("info"), "batch.", i, "info")
		evs = append(evs, ev)
	}
	return evs
}
