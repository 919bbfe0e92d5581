package pusher

import (
	"bytes"
	"unicode/utf8"
)

// OriginAllowed reports whether a WebSocket upgrade with this Origin header
// value (nil when absent) may connect to an app with the allowed list
// (PROTOCOL.md §2.4). It reproduces Reverb exactly: a literal "*" entry
// allows everything, even a missing Origin; otherwise the host is taken the
// way PHP parse_url does (no host, e.g. for "laravel.com" or a missing
// header, compares as "") and matched with Laravel Str::is: whole string,
// case-sensitive, '*' matches any run including dots and the empty string.
// Any goroutine; does not allocate; origin is only read during the call.
func OriginAllowed(allowed []string, origin []byte) bool {
	for _, a := range allowed {
		if a == "*" {
			return true
		}
	}
	host := phpURLHost(origin)
	for _, a := range allowed {
		if strIs(a, host) {
			return true
		}
	}
	return false
}

// phpURLHost returns what PHP's parse_url($s, PHP_URL_HOST) returns, with
// null and false (unparsable URL) both mapped to nil. The steps mirror PHP's
// php_url_parse_ex2 so odd inputs ("host:80", "//host", "a@b", "[::1]:8")
// give the same host as under Reverb. PHP also replaces control bytes in the
// host by '_'; strIs applies that replacement while comparing.
func phpURLHost(u []byte) []byte {
	n := len(u)
	s := 0
	portSet := false
	relative := n > 1 && u[0] == '/' && u[1] == '/'

	colon := bytes.IndexByte(u, ':')
	portAt := -1 // index of a ':' whose digits PHP tries as a port before the host
	switch {
	case colon > 0:
		schemeOK := true
		for _, c := range u[:colon] {
			if !isASCIIAlnum(c) && c != '+' && c != '.' && c != '-' {
				schemeOK = false
				break
			}
		}
		switch {
		case !schemeOK:
			q := bytes.IndexAny(u, "?#")
			if colon+1 < n && (q < 0 || colon < q) {
				portAt = colon
			} else if relative {
				s = 2
			} else {
				return nil
			}
		case colon+1 == n:
			return nil // only a scheme
		case u[colon+1] != '/':
			// "host:80" style: digits up to the end or a '/' read as a port.
			p := colon + 1
			for p < n && isASCIIDigit(u[p]) {
				p++
			}
			if (p == n || u[p] == '/') && p-colon < 7 {
				portAt = colon
			} else {
				return nil // "mailto:x" etc.: a path, no host
			}
		case colon+2 < n && u[colon+2] == '/':
			s = colon + 3
			if colon == 4 && bytes.EqualFold(u[:4], []byte("file")) && colon+3 < n && u[colon+3] == '/' {
				return nil
			}
		default:
			return nil // "scheme:/path"
		}
	case colon == 0:
		portAt = 0
	case relative:
		s = 2
	default:
		return nil // no scheme and not "//host": a bare path such as "laravel.com"
	}

	if portAt >= 0 {
		p := portAt + 1
		pp := p
		for pp < n && pp-p < 6 && isASCIIDigit(u[pp]) {
			pp++
		}
		switch {
		case pp-p > 0 && pp-p < 6 && (pp == n || u[pp] == '/'):
			port := 0
			for _, c := range u[p:pp] {
				port = port*10 + int(c-'0')
			}
			if port > 65535 {
				return nil
			}
			portSet = port != 0 // PHP tests the value, so port 0 counts as unset
			if relative {
				s += 2
			}
		case p == pp && pp == n:
			return nil
		case relative:
			s += 2
		default:
			return nil
		}
	}

	e := n
	if i := bytes.IndexAny(u[s:], "/?#"); i >= 0 {
		e = s + i
	}
	if at := bytes.LastIndexByte(u[s:e], '@'); at >= 0 {
		s += at + 1
	}
	hostEnd := e
	if !(s < n && u[s] == '[' && e > s && u[e-1] == ']') {
		if c := bytes.LastIndexByte(u[s:e], ':'); c >= 0 {
			c += s
			if !portSet {
				digits := u[c+1 : e]
				if len(digits) > 5 {
					return nil
				}
				if len(digits) > 0 && !cPortOK(digits) {
					return nil
				}
			}
			hostEnd = c
		}
	}
	if hostEnd-s < 1 {
		return nil
	}
	return u[s:hostEnd]
}

// cPortOK reports whether C strtol accepts b as a number in 0..65535: optional
// leading white space and sign, at least one digit, trailing junk ignored.
func cPortOK(b []byte) bool {
	i := 0
	for i < len(b) && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	v, digits := 0, 0
	for ; i < len(b) && isASCIIDigit(b[i]); i++ {
		v = v*10 + int(b[i]-'0')
		digits++
	}
	if digits == 0 {
		return false
	}
	return v <= 65535 && (!neg || v == 0)
}

// strIs is Laravel's Str::is($pattern, $value) without ignoreCase: exact
// equality first, then a regex in UTF-8 mode where only '*' is special. PCRE
// refuses invalid UTF-8 in either string, so those only match exactly.
// Control bytes in value compare as '_' (PHP's parse_url replaces them).
func strIs(pattern string, value []byte) bool {
	if pattern == "*" || hostEqual(pattern, value) {
		return true
	}
	if !utf8.ValidString(pattern) || !utf8.Valid(value) {
		return false
	}
	return globMatch(pattern, value)
}

func hostByte(c byte) byte {
	if c < 0x20 || c == 0x7f {
		return '_'
	}
	return c
}

func hostEqual(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if a[i] != hostByte(b[i]) {
			return false
		}
	}
	return true
}

// globMatch matches the whole of v against p where '*' matches any run of
// bytes. Matching bytewise equals matching code points here because both
// sides are valid UTF-8, which cannot match at a non-boundary. Greedy with
// one backtrack point: linear in practice, O(len(p)·len(v)) worst case.
func globMatch(p string, v []byte) bool {
	pi, vi := 0, 0
	star, mark := -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case pi < len(p) && p[pi] == hostByte(v[vi]):
			pi++
			vi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func isASCIIDigit(c byte) bool { return c >= '0' && c <= '9' }

func isASCIIAlnum(c byte) bool {
	return isASCIIDigit(c) || (c|0x20) >= 'a' && (c|0x20) <= 'z'
}
