package cluster

import (
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// Envelope format, version 1. Field order is fixed when we write and free
// when we read:
//
//	{"v":1,"type":"message","node":"<id>","app":"<app_id>","channel":"<name>","except":"<socket_id>","t":<unix µs>,"payload":<Pusher JSON object>}
//	{"v":1,"type":"terminate","node":"<id>","app":"<app_id>","user":"<user_id>"}
//	{"v":1,"type":"restart","node":"<id>"}
//	{"v":1,"type":"stats","node":"<id>","conns":{"<app_id>":<sockets>,...},"x":<JSON object>}
//	{"v":1,"type":"presence","app":"<app_id>","channel":"<name>","node":"<id>","user":"<key>","m":[<user_id>,<user_info>]}
//	{"v":1,"type":"snapshot","app":"<app_id>","channel":"<name>","node":"<id>","nodes":["<node>",...],"members":[["<node>","<key>",<user_id>,<user_info>],...]}
//	{"v":1,"type":"cached","app":"<app_id>","channel":"<name>","node":"<id>","payload":<Pusher JSON object>}
//
// presence: node has its first socket of user <key> on the channel ("m"
// present: the user's id and info as JSON) or no longer any (no "m").
// snapshot and cached answer one node's sync request on its reply channel
// (presence.go); the Lua scripts there write them, "payload" is absent when
// nothing is cached.
//
// A stats envelope's "x" (optional) is what Broker.SetStatsExtra adds,
// carried opaquely for the other nodes' metrics (metrics.go).
// "except" is omitted when no socket is excluded. "t" is when the sender
// queued the message (optional; the receiver's cross-node latency metric).
// The payload is the event exactly as local subscribers receive it,
// embedded as a JSON value, so a receiving node frames it without
// re-encoding.
const envelopeVersion = 1

type kind uint8

const (
	kindMessage kind = iota + 1
	kindTerminate
	kindRestart
	kindStats
	kindPresence
	kindSnapshot
	kindCached
	kindQuery
	kindAnswer
)

var (
	errNotEnvelope = errors.New("cluster: not a cluster envelope")
	errVersion     = errors.New("cluster: unknown envelope version")
	errType        = errors.New("cluster: unknown envelope type")
	errFields      = errors.New("cluster: envelope misses a required field")
)

// appendMessage appends a message envelope. payload must be one JSON object.
func appendMessage(dst []byte, node, app, channel, except string, payload []byte) []byte {
	dst = append(dst, `{"v":1,"type":"message","node":`...)
	dst = appendString(dst, node)
	dst = append(dst, `,"app":`...)
	dst = appendString(dst, app)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, channel)
	if except != "" {
		dst = append(dst, `,"except":`...)
		dst = appendString(dst, except)
	}
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, time.Now().UnixMicro(), 10)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// appendTerminate appends a terminate envelope.
func appendTerminate(dst []byte, node, app, user string) []byte {
	dst = append(dst, `{"v":1,"type":"terminate","node":`...)
	dst = appendString(dst, node)
	dst = append(dst, `,"app":`...)
	dst = appendString(dst, app)
	dst = append(dst, `,"user":`...)
	dst = appendString(dst, user)
	return append(dst, '}')
}

// appendRestart appends a restart envelope.
func appendRestart(dst []byte, node string) []byte {
	dst = append(dst, `{"v":1,"type":"restart","node":`...)
	dst = appendString(dst, node)
	return append(dst, '}')
}

// appendStats appends a stats envelope: the established sockets of this node
// per app id, as visit reports them (hub.Hub.LocalConnections fits).
func appendStats(dst []byte, node string, visit func(func(appID string, n int64))) []byte {
	dst = append(dst, `{"v":1,"type":"stats","node":`...)
	dst = appendString(dst, node)
	dst = append(dst, `,"conns":{`...)
	first := true
	visit(func(appID string, n int64) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, appID)
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, n, 10)
	})
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Bytes ≥ 0x80 pass through: ids
// and channel names are UTF-8 already and the reader does not re-validate.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// envelope is a decoded envelope. Its byte slices point into the decoder's
// parser and buffer, or into the message itself (readMessage), and are
// valid until the next decode. Nobody writes through them.
type envelope struct {
	kind    kind
	node    []byte
	app     []byte
	channel []byte       // message
	except  []byte       // message, may be empty
	user    []byte       // terminate
	payload []byte       // message: the embedded JSON object
	sent    int64        // message: "t", unix µs; 0 when absent
	counts  []appCount   // stats
	extra   []byte       // stats: the "x" object, empty when absent
	on      bool         // presence: "m" present
	id      []byte       // presence: user_id JSON
	info    []byte       // presence: user_info JSON
	members []snapMember // snapshot
	sure    [][]byte     // snapshot: nodes whose lists are complete
	qid     uint64       // query, answer
	prefix  bool         // query: channel is a name prefix
	users   bool         // query: member ids wanted
	chans   []answerChan // answer
	conns   int64        // answer: the app's sockets on that node
	cached  bool         // cached: a payload is present
}

// answerChan is one channel of an answer (copied out of the parser).
type answerChan struct {
	name        []byte
	subs, count int
	ids         [][]byte
}

// snapMember is one entry of a snapshot; its slices alias the decoder.
type snapMember struct {
	node, user, id, info []byte
}

// appCount is one app's socket count in a stats envelope.
type appCount struct {
	app []byte
	n   int64
}

// decoder parses envelopes. It is owned by one goroutine.
type decoder struct {
	p    fastjson.Parser
	buf  []byte
	keys []byte // stats: the app ids, back to back
	ends []int  // stats: where each app id ends in keys
}

// decode parses one envelope. Foreign or malformed input is an error, never
// a panic.
func (d *decoder) decode(msg string, e *envelope) error {
	if readMessage(msg, e) {
		return nil // the common case, without a parse tree (passthrough.go)
	}
	return d.decodeTree(msg, e)
}

// decodeTree parses any envelope into a parse tree and reads it.
func (d *decoder) decodeTree(msg string, e *envelope) error {
	v, err := d.p.Parse(msg)
	if err != nil {
		return errNotEnvelope
	}
	o, err := v.Object()
	if err != nil {
		return errNotEnvelope
	}
	ver := o.Get("v")
	if ver == nil || ver.Type() != fastjson.TypeNumber {
		return errNotEnvelope
	}
	if n, err := ver.Int(); err != nil || n != envelopeVersion {
		return errVersion
	}
	*e = envelope{counts: e.counts[:0], members: e.members[:0], sure: e.sure[:0], chans: e.chans[:0]}
	typ := stringField(o, "type")
	e.node = stringField(o, "node")
	if typ == nil || e.node == nil {
		return errFields
	}
	switch string(typ) {
	case "message":
		e.kind = kindMessage
		e.app = stringField(o, "app")
		e.channel = stringField(o, "channel")
		e.except = stringField(o, "except")
		if t := o.Get("t"); t != nil {
			e.sent, _ = t.Int64()
		}
		p := o.Get("payload")
		if len(e.app) == 0 || len(e.channel) == 0 || p == nil || p.Type() != fastjson.TypeObject {
			return errFields
		}
		// Payload strings were never unescaped, so MarshalTo writes back the
		// sender's bytes (compact JSON in, identical JSON out).
		d.buf = p.MarshalTo(d.buf[:0])
		e.payload = d.buf
	case "terminate":
		e.kind = kindTerminate
		e.app = stringField(o, "app")
		e.user = stringField(o, "user")
		if len(e.app) == 0 || e.user == nil {
			return errFields
		}
	case "restart":
		e.kind = kindRestart
	case "stats":
		e.kind = kindStats
		if x := o.Get("x"); x != nil && x.Type() == fastjson.TypeObject {
			d.buf = x.MarshalTo(d.buf[:0])
			e.extra = d.buf
		}
		cv := o.Get("conns")
		if cv == nil || cv.Type() != fastjson.TypeObject {
			return errFields
		}
		c, _ := cv.Object()
		// Visit's keys may not outlive the callback: copy them into one
		// scratch buffer and slice it once it stops growing.
		d.keys, d.ends = d.keys[:0], d.ends[:0]
		bad := false
		c.Visit(func(key []byte, v *fastjson.Value) {
			n, err := v.Int64()
			if err != nil || n < 0 || len(key) == 0 {
				bad = true
				return
			}
			d.keys = append(d.keys, key...)
			d.ends = append(d.ends, len(d.keys))
			e.counts = append(e.counts, appCount{n: n})
		})
		if bad {
			return errFields
		}
		start := 0
		for i, end := range d.ends {
			e.counts[i].app = d.keys[start:end:end]
			start = end
		}
	case "presence":
		e.kind = kindPresence
		if err := d.channelFields(o, e); err != nil {
			return err
		}
		e.user = stringField(o, "user")
		if e.user == nil {
			return errFields
		}
		if m := o.Get("m"); m != nil {
			a, err := m.Array()
			if err != nil || len(a) != 2 {
				return errFields
			}
			e.on = true
			d.buf = a[0].MarshalTo(d.buf[:0])
			n := len(d.buf)
			d.buf = a[1].MarshalTo(d.buf)
			e.id, e.info = d.buf[:n:n], d.buf[n:]
		}
	case "snapshot":
		e.kind = kindSnapshot
		if err := d.channelFields(o, e); err != nil {
			return err
		}
		return d.snapshot(o, e)
	case "cached":
		e.kind = kindCached
		if err := d.channelFields(o, e); err != nil {
			return err
		}
		if p := o.Get("payload"); p != nil {
			if p.Type() != fastjson.TypeObject {
				return errFields
			}
			e.cached = true
			d.buf = p.MarshalTo(d.buf[:0])
			e.payload = d.buf
		}
	case "query":
		e.kind = kindQuery
		e.app = stringField(o, "app")
		e.channel = stringField(o, "name")
		id, err := uintField(o, "id")
		if len(e.app) == 0 || e.channel == nil || err != nil {
			return errFields
		}
		e.qid = id
		e.prefix = trueField(o, "prefix")
		e.users = trueField(o, "users")
	case "answer":
		e.kind = kindAnswer
		return answer(o, e)
	default:
		return errType
	}
	return nil
}

// snapshot reads a snapshot's members and complete nodes. Strings are
// copied out unescaped and JSON values marshalled back into d.buf: offsets
// first, slices once buf stops growing.
func (d *decoder) snapshot(o *fastjson.Object, e *envelope) error {
	ms, err := arrayField(o, "members", true)
	if err != nil {
		return err
	}
	d.buf, d.ends = d.buf[:0], d.ends[:0]
	for _, m := range ms {
		a, err := m.Array()
		if err != nil || len(a) != 4 {
			return errFields
		}
		for i, v := range a {
			if i < 2 {
				b, err := v.StringBytes()
				if err != nil {
					return errFields
				}
				d.buf = append(d.buf, b...)
			} else {
				d.buf = v.MarshalTo(d.buf)
			}
			d.ends = append(d.ends, len(d.buf))
		}
	}
	start := 0
	part := func(i int) []byte {
		end := d.ends[i]
		b := d.buf[start:end:end]
		start = end
		return b
	}
	for i := 0; i < len(d.ends); i += 4 {
		e.members = append(e.members, snapMember{node: part(i), user: part(i + 1), id: part(i + 2), info: part(i + 3)})
	}
	ns, err := arrayField(o, "nodes", false)
	if err != nil {
		return err
	}
	for _, n := range ns {
		b, err := n.StringBytes()
		if err != nil {
			return errFields
		}
		e.sure = append(e.sure, b)
	}
	return nil
}

// answer reads a query answer. Answers are rare: copies keep this simple.
func answer(o *fastjson.Object, e *envelope) error {
	id, err := uintField(o, "id")
	if err != nil {
		return errFields
	}
	e.qid = id
	if c := o.Get("conns"); c != nil {
		if e.conns, err = c.Int64(); err != nil || e.conns < 0 {
			return errFields
		}
	}
	cs, err := arrayField(o, "channels", true)
	if err != nil {
		return err
	}
	for _, c := range cs {
		a, err := c.Array()
		if err != nil || len(a) != 4 {
			return errFields
		}
		name, err1 := a[0].StringBytes()
		subs, err2 := a[1].Int()
		count, err3 := a[2].Int()
		ids, err4 := a[3].Array()
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return errFields
		}
		ac := answerChan{name: append([]byte(nil), name...), subs: subs, count: count}
		for _, id := range ids {
			ac.ids = append(ac.ids, id.MarshalTo(nil))
		}
		e.chans = append(e.chans, ac)
	}
	return nil
}

// channelFields reads the app and channel every per-channel envelope has.
func (d *decoder) channelFields(o *fastjson.Object, e *envelope) error {
	e.app = stringField(o, "app")
	e.channel = stringField(o, "channel")
	if len(e.app) == 0 || len(e.channel) == 0 {
		return errFields
	}
	return nil
}

// appendPresenceHead appends the part shared by presence, snapshot and
// cached envelopes: {"v":1,"type":T,"app":A,"channel":C  (no closing brace).
func appendPresenceHead(dst []byte, typ, app, channel string) []byte {
	dst = append(dst, `{"v":1,"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","app":`...)
	dst = appendString(dst, app)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, channel)
	return dst
}

// appendPresence appends a presence envelope; member is "<id>,<info>" for a
// user this node gained, nil for one it lost.
func appendPresence(dst []byte, node, app, channel, user string, member []byte) []byte {
	dst = appendPresenceHead(dst, "presence", app, channel)
	dst = append(dst, `,"node":`...)
	dst = appendString(dst, node)
	dst = append(dst, `,"user":`...)
	dst = appendString(dst, user)
	if member != nil {
		dst = append(dst, `,"m":[`...)
		dst = append(dst, member...)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// uintField returns the unsigned integer value of key.
func uintField(o *fastjson.Object, key string) (uint64, error) {
	v := o.Get(key)
	if v == nil {
		return 0, errFields
	}
	return v.Uint64()
}

// arrayField returns the array at key: nil when the key is missing and
// not required, errFields when it is required or not an array.
func arrayField(o *fastjson.Object, key string, required bool) ([]*fastjson.Value, error) {
	v := o.Get(key)
	if v == nil {
		if required {
			return nil, errFields
		}
		return nil, nil
	}
	a, err := v.Array()
	if err != nil {
		return nil, errFields
	}
	return a, nil
}

// trueField reports whether key holds the JSON value true.
func trueField(o *fastjson.Object, key string) bool {
	v := o.Get(key)
	return v != nil && v.Type() == fastjson.TypeTrue
}

// stringField returns the unescaped string value of key, or nil when the key
// is missing or not a string.
func stringField(o *fastjson.Object, key string) []byte {
	v := o.Get(key)
	if v == nil {
		return nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return nil
	}
	if b == nil {
		return []byte{}
	}
	return b
}
