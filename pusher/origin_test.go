package pusher

import (
	"strings"
	"testing"
)

// TestOriginAllowedSpecTable runs every row of PROTOCOL.md §2.4.
func TestOriginAllowedSpecTable(t *testing.T) {
	tests := []struct {
		allowed []string
		origin  string // "<absent>" means no header
		want    bool
	}{
		{[]string{"*"}, "http://anything.example", true},
		{[]string{"*"}, "<absent>", true},
		{[]string{"*"}, "garbage", true},
		{[]string{"laravel.com"}, "http://laravel.com", true},
		{[]string{"laravel.com"}, "https://laravel.com:8443", true},
		{[]string{"laravel.com"}, "http://sub.laravel.com", false},
		{[]string{"laravel.com"}, "http://localhost", false},
		{[]string{"laravel.com"}, "<absent>", false},
		{[]string{"laravel.com"}, "laravel.com", false},
		{[]string{"*.laravel.com"}, "http://laravel.com", false},
		{[]string{"*.laravel.com"}, "http://sub.laravel.com", true},
		{[]string{"*.laravel.com"}, "http://a.b.laravel.com", true},
		{[]string{"localhost", "*.localhost"}, "http://sub.localhost", true},
		{[]string{"laravel.com"}, "http://LARAVEL.COM", false},
		{[]string{"app-*.example.com"}, "https://app-eu.example.com", true},
	}
	for _, tt := range tests {
		var origin []byte
		if tt.origin != "<absent>" {
			origin = []byte(tt.origin)
		}
		if got := OriginAllowed(tt.allowed, origin); got != tt.want {
			t.Errorf("OriginAllowed(%q, %q) = %v, want %v", tt.allowed, tt.origin, got, tt.want)
		}
	}
}

// TestPHPURLHost compares with what PHP 8.2's parse_url($s, PHP_URL_HOST)
// returned for each input (null and false shown as "").
func TestPHPURLHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://laravel.com", "laravel.com"},
		{"https://laravel.com:8443", "laravel.com"},
		{"laravel.com", ""},
		{"laravel.com:8080", "laravel.com"},
		{"laravel.com:8080/x", "laravel.com"},
		{"laravel.com:99999", ""},
		{"laravel.com:abc", ""},
		{"//laravel.com", "laravel.com"},
		{"//laravel.com:80", "laravel.com"},
		{"http://user:pass@host.com:80/p?q#f", "host.com"},
		{"http://[::1]:8080", "[::1]"},
		{"http://[::1]", "[::1]"},
		{"http://host:", "host"},
		{"http://host:0", "host"},
		{"http://host:65536", ""},
		{"http://host:123456", ""},
		{"http://host: 12", "host"},
		{"http://host:-1", ""},
		{"http://host:+5", "host"},
		{"http://host:12ab", "host"},
		{"http://:80", ""},
		{":80", ""},
		{":", ""},
		{"null", ""},
		{"file:///etc/passwd", ""},
		{"file://host/x", "host"},
		{"mailto:a@b.c", ""},
		{"http:/x", ""},
		{"http:", ""},
		{"http://a@", ""},
		{"http://a@b@c", "c"},
		{"http://LARAVEL.COM", "LARAVEL.COM"},
		{"a:1:2", ""},
		{"x y:80", "x y"},
		{"x y://host", ""},
		{"ws://h?x:1", "h"},
		{"http://h#x:1", "h"},
		{"http://h?x", "h"},
		{"//", ""},
		{"///x", ""},
		{"http://a.b.laravel.com", "a.b.laravel.com"},
		{"https://app-eu.example.com", "app-eu.example.com"},
		{"http://sub.localhost", "sub.localhost"},
		{"1:2", "1"},
		{"http://host.com:08", "host.com"},
	}
	for _, tt := range tests {
		if got := string(phpURLHost([]byte(tt.in))); got != tt.want {
			t.Errorf("phpURLHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStrIs checks Laravel Str::is semantics on hosts.
func TestStrIs(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"", "", true}, // no host matches an empty entry, as under Reverb
		{"a", "", false},
		{"*", "", true},
		{"**", "x", true},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*.x.*", "a.x.b", true},
		{"*.x.*", "x.b", false},
		{"a.c", "abc", false}, // '.' is literal
		{"a?c", "abc", false}, // '?' is literal
		{"[ab]", "a", false},  // regex syntax is literal
		{"[ab]", "[ab]", true},
		{"é*", "éa", true},
		{"*é", "aé", true},
		{"ÉX", "éx", false},         // case-sensitive
		{"a_b", "a\x01b", true},     // PHP turns control bytes of the host into '_'
		{"a*\xff", "ab\xff", false}, // invalid UTF-8 pattern only matches exactly
		{"ab\xff", "ab\xff", true},
		{"*", "\xff", true},
		{"a*", "a\xff", false}, // PCRE refuses invalid UTF-8 subjects
		{"a*b", "a\nb", true},  // dot-all: '*' crosses newlines
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false},
	}
	for _, tt := range tests {
		if got := strIs(tt.pattern, []byte(tt.value)); got != tt.want {
			t.Errorf("strIs(%q, %q) = %v, want %v", tt.pattern, tt.value, got, tt.want)
		}
	}
}

func TestOriginAllowedNoAlloc(t *testing.T) {
	allowed := []string{"localhost", "*.example.com"}
	origin := []byte("https://user@app.example.com:8443/path")
	if !OriginAllowed(allowed, origin) {
		t.Fatal("origin should be allowed")
	}
	if n := testing.AllocsPerRun(100, func() { OriginAllowed(allowed, origin) }); n != 0 {
		t.Errorf("OriginAllowed allocates %v times per call", n)
	}
}
