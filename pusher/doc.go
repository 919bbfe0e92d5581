// Package pusher is the Pusher protocol 7 and Reverb HTTP API without I/O:
// client messages decoded with fastjson, server messages encoded append-style,
// channel-name rules, channel/user/API signatures, the /apps/{id}/... API and
// the pusher:error catalogue.
//
// pusher is a leaf: it imports no other package of this module, no gnet and
// no WebSocket code. Nothing here starts goroutines. Types documented as
// "one per loop" (Decoder) are not safe for concurrent use; everything else is.
package pusher
