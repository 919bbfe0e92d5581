//go:build linux

package bench

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strconv"

	"github.com/goreverb/reverb/pusher"
)

// AppendChannelAuth appends the "auth" value of a private or presence
// pusher:subscribe (PROTOCOL.md §6.1): key ":" HMAC(secret,
// socketID ":" channel [":" channelData]). channelData is the exact string
// sent in the subscribe message; empty means none. Arguments are only read.
// Any goroutine may call it.
func AppendChannelAuth(dst []byte, key, secret string, socketID, channel, channelData []byte) []byte {
	dst = append(dst, key...)
	dst = append(dst, ':')
	if len(channelData) == 0 {
		return pusher.AppendHMAC(dst, secret, socketID, colon, channel)
	}
	return pusher.AppendHMAC(dst, secret, socketID, colon, channel, colon, channelData)
}

var colon = []byte{':'}

// APISigner signs HTTP API requests (PROTOCOL.md §6.3) for one app. The
// zero value is not usable; set Key and Secret. Its methods keep no state,
// so any goroutine may call them.
type APISigner struct {
	Key    string
	Secret string
}

// AppendQuery appends the complete query string (without '?') of a signed
// request: auth_key, auth_timestamp (unix seconds ts), auth_version,
// body_md5 when body is non-empty, then auth_signature. path is the path
// WITHOUT the server prefix, as the server verifies it. body is only read.
func (s APISigner) AppendQuery(dst []byte, method, path string, body []byte, ts int64) []byte {
	start := len(dst)
	dst = append(dst, "auth_key="...)
	dst = append(dst, url.QueryEscape(s.Key)...)
	dst = append(dst, "&auth_timestamp="...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, "&auth_version=1.0"...)
	if len(body) > 0 {
		sum := md5.Sum(body)
		dst = append(dst, "&body_md5="...)
		dst = hex.AppendEncode(dst, sum[:])
	}
	// The signer parses the query we just wrote, so it signs exactly what
	// the server will see.
	var sig [64]byte
	out := pusher.SignAPIRequest(sig[:0], s.Secret, []byte(method), []byte(path), dst[start:], body)
	dst = append(dst, "&auth_signature="...)
	return append(dst, out...)
}
