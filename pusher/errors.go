package pusher

import "strconv"

// Error is one entry of the pusher:error catalogue (PROTOCOL.md §4.10). Code
// is also the WebSocket close code when the error ends the connection
// (§2.6). The catalogue values below are shared, immutable and safe for any
// goroutine; compare errors by pointer (err == ErrInvalidMessage).
type Error struct {
	Code    int
	Message string
}

// Error returns "pusher: <code> <message>". Any goroutine; cold paths only
// (it allocates).
func (e *Error) Error() string {
	return "pusher: " + strconv.Itoa(e.Code) + " " + e.Message
}

// The pusher:error catalogue. Messages are the exact strings clients and
// Reverb's tests expect; do not reword them.
var (
	// ErrAppNotFound: unknown app key at connect; close 4001 follows.
	ErrAppNotFound = &Error{4001, "Application does not exist"}
	// ErrOverQuota: max_connections reached at connect; close 4004 follows.
	ErrOverQuota = &Error{4004, "Application is over connection quota"}
	// ErrOriginNotAllowed: Origin rejected by allowed_origins; close 4009 follows.
	ErrOriginNotAllowed = &Error{4009, "Origin not allowed"}
	// ErrUnauthorized: bad channel or signin signature, or an illegal '#'
	// channel; the socket stays open.
	ErrUnauthorized = &Error{4009, "Connection is unauthorized"}
	// ErrNotMember: client event in members mode from a socket that is not
	// subscribed to the channel; the socket stays open.
	ErrNotMember = &Error{4009, "The client is not a member of the specified channel."}
	// ErrInvalidMessage: any parse or validation failure of a client
	// message, including unknown pusher:* events; the socket stays open.
	ErrInvalidMessage = &Error{4200, "Invalid message format"}
	// ErrPongTimeout: an idle socket did not answer the server's ping; close
	// 4201 follows.
	ErrPongTimeout = &Error{4201, "Pong reply not received in time"}
	// ErrRateLimited: per-connection message limit hit (§8.3).
	ErrRateLimited = &Error{4301, "Rate limit exceeded"}
	// ErrTooManyChannels: a subscribe to one more channel than the app's
	// per-socket cap (our extension; 43xx: the client may retry after a
	// back-off). The socket and its other channels stay as they are.
	ErrTooManyChannels = &Error{4303, "Maximum channels per connection reached"}
	// ErrClientEventsOff: client event while the app disables them.
	ErrClientEventsOff = &Error{4301, "The app does not have client messaging enabled."}
)

// Close codes the server sends that are not tied to a pusher:error (§2.6).
const (
	// CloseMessageTooBig closes a socket whose message exceeds max_message_size.
	CloseMessageTooBig = 1009
	// CloseRestarting closes every socket on restart/shutdown; clients
	// reconnect at once.
	CloseRestarting = 4200
)

// Close reasons that go with the codes above and with terminate_connections.
const (
	ReasonMessageTooBig = "Maximum message size exceeded"
	ReasonRestarting    = "Server is restarting"
	ReasonTerminated    = "Connection terminated by the application"
)

// AppendError appends the pusher:error message for e to dst:
// {"event":"pusher:error","data":"{\"code\":N,\"message\":\"…\"}"} — data is a
// data-string and there is no channel key. Any goroutine; does not allocate
// when dst has room.
func AppendError(dst []byte, e *Error) []byte {
	dst = append(dst, `{"event":"pusher:error","data":"{\"code\":`...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, `,\"message\":\"`...)
	dst = appendEscaped(dst, e.Message, 2)
	return append(dst, `\"}"}`...)
}
