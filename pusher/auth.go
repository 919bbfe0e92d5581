package pusher

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// CheckChannelAuth reports whether auth is a valid subscription signature
// (PROTOCOL.md §6.1): the lowercase hex HMAC-SHA256 with the app secret of
// "<socketID>:<channel>", or "<socketID>:<channel>:<channelData>" when
// channelData is not empty, compared in constant time with the part of auth
// after its first ':' (the whole of auth if it has none). The key part
// before the ':' is not checked, like Reverb. A nil or empty auth fails.
// Any goroutine; the slices are only read during the call; no allocation
// unless the secret is longer than 64 bytes.
func CheckChannelAuth(secret, socketID string, channel, channelData, auth []byte) bool {
	got := authDigest(auth)
	if len(got) != 2*sha256.Size {
		return false
	}
	var want [2 * sha256.Size]byte
	if len(channelData) > 0 {
		macHex(&want, secret, socketID, authColon, channel, authColon, channelData)
	} else {
		macHex(&want, secret, socketID, authColon, channel, nil, nil)
	}
	return subtle.ConstantTimeCompare(got, want[:]) == 1
}

// CheckUserAuth reports whether auth is a valid pusher:signin signature
// (§6.2): HMAC of "<socketID>::user::<userData>" with userData exactly as
// received, compared like CheckChannelAuth. Any goroutine; no allocation
// unless the secret is longer than 64 bytes.
func CheckUserAuth(secret, socketID string, userData, auth []byte) bool {
	got := authDigest(auth)
	if len(got) != 2*sha256.Size {
		return false
	}
	var want [2 * sha256.Size]byte
	macHex(&want, secret, socketID, authUserMarker, userData, nil, nil)
	return subtle.ConstantTimeCompare(got, want[:]) == 1
}

// ValidSocketID reports whether s has the shape ^\d+\.\d+$ that
// pusher-php-server insists on (§2.5). Any goroutine.
func ValidSocketID(s []byte) bool {
	dot := bytes.IndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return false
	}
	for i, c := range s {
		if i != dot && !isASCIIDigit(c) {
			return false
		}
	}
	return true
}

var (
	authColon      = []byte{':'}
	authUserMarker = []byte("::user::")
)

// authDigest returns the part of an auth value after the first ':'.
func authDigest(auth []byte) []byte {
	if i := bytes.IndexByte(auth, ':'); i >= 0 {
		return auth[i+1:]
	}
	return auth
}

// macHex writes the lowercase hex HMAC-SHA256 keyed by secret of
// socketID + a + b + c + d into out (RFC 2104 spelled out, because
// crypto/hmac allocates its two digests on every call while sha256.New
// inlined here stays on the stack).
func macHex(out *[2 * sha256.Size]byte, secret, socketID string, a, b, c, d []byte) {
	var key [sha256.BlockSize]byte
	if len(secret) > sha256.BlockSize {
		sum := sha256.Sum256([]byte(secret))
		copy(key[:], sum[:])
	} else {
		copy(key[:], secret)
	}
	var pad [sha256.BlockSize]byte
	for i, k := range key {
		pad[i] = k ^ 0x36
	}
	var sid [64]byte
	inner := sha256.New()
	inner.Write(pad[:])
	inner.Write(append(sid[:0], socketID...))
	inner.Write(a)
	inner.Write(b)
	inner.Write(c)
	inner.Write(d)
	var sum [sha256.Size]byte
	inner.Sum(sum[:0])

	for i, k := range key {
		pad[i] = k ^ 0x5c
	}
	outer := sha256.New()
	outer.Write(pad[:])
	outer.Write(sum[:])
	outer.Sum(sum[:0])
	hex.Encode(out[:], sum[:])
}
