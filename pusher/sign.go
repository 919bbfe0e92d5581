package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// AppendHMAC appends lowercase hex HMAC-SHA256(secret, concat(parts...)) to dst.
func AppendHMAC(dst []byte, secret string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.AppendEncode(dst, m.Sum(sum[:0]))
}

// EqualHex compares a received signature with the expected one in constant time.
func EqualHex(got, want []byte) bool {
	return hmac.Equal(got, want)
}
