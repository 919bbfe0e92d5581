package wsproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// reqView is the comparable part of a Request; absent headers are "".
type reqView struct {
	Method, Path, Query                                          string
	Host, Upgrade, Connection, Origin, Key, Version, ContentType string
	ContentLength                                                int
	Chunked, KeepAlive, HTTP11, IsUpgrade                        bool
	HeadLen                                                      int
}

func view(r *Request) reqView {
	return reqView{
		Method:        string(r.Method),
		Path:          string(r.Path),
		Query:         string(r.Query),
		Host:          string(r.Host),
		Upgrade:       string(r.Upgrade),
		Connection:    string(r.Connection),
		Origin:        string(r.Origin),
		Key:           string(r.Key),
		Version:       string(r.Version),
		ContentType:   string(r.ContentType),
		ContentLength: r.ContentLength,
		Chunked:       r.Chunked,
		KeepAlive:     r.KeepAlive,
		HTTP11:        r.HTTP11,
		IsUpgrade:     r.IsUpgrade(),
		HeadLen:       r.HeadLen,
	}
}

// chromeUpgrade is the handshake a browser sends for pusher-js.
const chromeUpgrade = "GET /app/reverb-key?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n" +
	"Host: localhost:8080\r\n" +
	"Connection: Upgrade\r\n" +
	"Pragma: no-cache\r\n" +
	"Cache-Control: no-cache\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Upgrade: websocket\r\n" +
	"Origin: http://localhost:8000\r\n" +
	"Sec-WebSocket-Version: 13\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
	"\r\n"

const triggerHead = "POST /apps/123/events?auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=x&auth_signature=y HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\n" +
	"content-type: application/json\r\n" +
	"CONTENT-LENGTH: 38\r\n" +
	"\r\n"

const triggerBody = `{"name":"e","channel":"c","data":"{}"}`

type parseCase struct {
	name string
	head string // request line + headers + empty line
	body string // bytes after the head (body and/or pipelined data)
	max  int
	err  error
	want reqView // checked when err == nil; HeadLen is filled in from head
	// notNetHTTP skips the net/http cross-check where the two differ on
	// purpose (leading empty lines, an absolute target without a path).
	notNetHTTP bool
}

var parseCases = []parseCase{
	{
		name: "browser upgrade",
		head: chromeUpgrade,
		max:  10000,
		want: reqView{
			Method:        "GET",
			Path:          "/app/reverb-key",
			Query:         "protocol=7&client=js&version=8.6.0&flash=false",
			Host:          "localhost:8080",
			Upgrade:       "websocket",
			Connection:    "Upgrade",
			Origin:        "http://localhost:8000",
			Key:           "dGhlIHNhbXBsZSBub25jZQ==",
			Version:       "13",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
			IsUpgrade:     true,
		},
	},
	{
		name: "trigger with body, case-insensitive names",
		head: triggerHead,
		body: triggerBody,
		max:  10000,
		want: reqView{
			Method:        "POST",
			Path:          "/apps/123/events",
			Query:         "auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=x&auth_signature=y",
			Host:          "127.0.0.1:8080",
			ContentType:   "application/json",
			ContentLength: 38,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "firefox connection list and OWS",
		head: "GET /app/k HTTP/1.1\r\nhost:\t h \r\nconnection:  keep-alive, Upgrade \r\nUPGRADE: WebSocket\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/app/k",
			Host:          "h",
			Upgrade:       "WebSocket",
			Connection:    "keep-alive, Upgrade",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
			IsUpgrade:     true,
		},
	},
	{
		name: "connection tokens over repeated headers",
		head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/",
			Host:          "h",
			Upgrade:       "h2c, websocket",
			Connection:    "upgrade",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
			IsUpgrade:     true,
		},
	},
	{
		name: "upgrade token must be exact",
		head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrades\r\nUpgrade: websocket2\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/",
			Host:          "h",
			Upgrade:       "websocket2",
			Connection:    "upgrades",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "HTTP/1.1 Connection: close",
		head: "GET /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/up",
			Host:          "h",
			Connection:    "close",
			ContentLength: -1,
			HTTP11:        true,
		},
	},
	{
		name: "HTTP/1.0 closes by default and needs no Host",
		head: "GET /up HTTP/1.0\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/up",
			ContentLength: -1,
		},
	},
	{
		name: "HTTP/1.0 keep-alive",
		head: "GET /up HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/up",
			Connection:    "Keep-Alive",
			ContentLength: -1,
			KeepAlive:     true,
		},
	},
	{
		name: "close wins over keep-alive",
		head: "GET /up HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/up",
			Connection:    "keep-alive, close",
			ContentLength: -1,
		},
	},
	{
		name: "later 1.x minor is served as 1.1",
		head: "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/",
			Host:          "h",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name:       "bare LF line ends and leading empty lines",
		head:       "\r\n\nGET /x?y HTTP/1.1\nHost: h\n\n",
		notNetHTTP: true,
		want: reqView{
			Method:        "GET",
			Path:          "/x",
			Query:         "y",
			Host:          "h",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "absolute-form target",
		head: "GET HTTP://example.com/apps/1/channels?info=user_count HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: reqView{
			Method:        "GET",
			Path:          "/apps/1/channels",
			Query:         "info=user_count",
			Host:          "example.com",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name:       "absolute-form without path",
		head:       "GET https://example.com?a HTTP/1.1\r\nHost: example.com\r\n\r\n",
		notNetHTTP: true,
		want: reqView{
			Method:        "GET",
			Path:          "/",
			Query:         "a",
			Host:          "example.com",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "chunked",
		head: "POST /apps/1/events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
		body: "0\r\n\r\n",
		want: reqView{
			Method:        "POST",
			Path:          "/apps/1/events",
			Host:          "h",
			ContentLength: -1,
			Chunked:       true,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "repeated equal Content-Length",
		head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
		body: "{}",
		want: reqView{
			Method:        "POST",
			Path:          "/",
			Host:          "h",
			ContentLength: 2,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{
		name: "head plus body exactly at max",
		head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n",
		body: "0123456789",
		max:  len("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n") + 10,
		want: reqView{
			Method:        "POST",
			Path:          "/",
			Host:          "h",
			ContentLength: 10,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},

	{name: "body one byte over max", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", body: "0123456789a", max: 48 + 10, err: ErrTooLarge},
	{name: "complete head over max", head: chromeUpgrade, max: 200, err: ErrTooLarge},
	{
		name: "head exactly at max",
		head: "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		max:  len("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
		want: reqView{
			Method:        "GET",
			Path:          "/",
			Host:          "h",
			ContentLength: -1,
			KeepAlive:     true,
			HTTP11:        true,
		},
	},
	{name: "head one byte over max", head: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", max: len("GET / HTTP/1.1\r\nHost: h\r\n\r\n") - 1, err: ErrTooLarge},
	{name: "size is judged before a later bad line", head: "GET / HTTP/1.1\r\nHost: hhhhhhhhhhhhhhhhhhhh\r\nbad line\r\n\r\n", max: 30, err: ErrTooLarge},
	{name: "incomplete head over max", head: "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 100), max: 64, err: ErrTooLarge},
	{name: "huge Content-Length with a limit", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", max: 10000, err: ErrTooLarge},
	{name: "huge Content-Length without a limit", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", err: ErrBadRequest},
	{name: "incomplete head", head: "GET / HTTP/1.1\r\nHost: h\r\n", max: 10000, err: ErrNeedMore},
	{name: "incomplete request line", head: "GET / HT", max: 10000, err: ErrNeedMore},
	{name: "header without colon", head: "GET / HTTP/1.1\r\nHost h\r\n\r\n", err: ErrBadRequest},
	{name: "space before colon", head: "GET / HTTP/1.1\r\nHost : h\r\n\r\n", err: ErrBadRequest},
	{name: "empty header name", head: "GET / HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "obs-fold", head: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", err: ErrBadRequest},
	{name: "control byte in value", head: "GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n", err: ErrBadRequest},
	{name: "bare CR in value", head: "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", err: ErrBadRequest},
	{name: "bad method", head: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "missing version", head: "GET /\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "double space", head: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "HTTP/2 preface", head: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: ErrBadRequest},
	{name: "lowercase version", head: "GET / http/1.1\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "relative target", head: "GET app/k HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrBadRequest},
	{name: "TLS record on plain port", head: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", err: ErrBadRequest},
	{name: "Content-Length not digits", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\n", err: ErrBadRequest},
	{name: "Content-Length signed", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", err: ErrBadRequest},
	{name: "Content-Length empty", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", err: ErrBadRequest},
	{name: "Content-Length conflict", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", err: ErrBadRequest},
	{name: "Content-Length and chunked", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrBadRequest},
	{name: "unsupported transfer coding", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: ErrBadRequest},
	{name: "HTTP/1.1 without Host", head: "GET / HTTP/1.1\r\n\r\n", err: ErrBadRequest},
	{name: "two Host headers", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", err: ErrBadRequest},
}

func TestParseRequest(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			buf := []byte(tc.head + tc.body)
			var r Request
			err := ParseRequest(buf, tc.max, &r)
			if err != tc.err {
				t.Fatalf("ParseRequest() error = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			want := tc.want
			want.HeadLen = len(tc.head)
			if got := view(&r); got != want {
				t.Fatalf("ParseRequest() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestParseRequestSplit feeds every prefix of every fixture: each must say
// "need more" or give the final verdict, never a different one.
func TestParseRequestSplit(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			full := []byte(tc.head + tc.body)
			var whole Request
			final := ParseRequest(full, tc.max, &whole)
			for i := range len(full) {
				var r Request
				err := ParseRequest(full[:i], tc.max, &r)
				switch {
				case final == nil && i >= whole.HeadLen:
					if err != nil || view(&r) != view(&whole) {
						t.Fatalf("prefix %d: %v %+v, want the whole-input result", i, err, view(&r))
					}
				case err != ErrNeedMore && err != final:
					t.Fatalf("prefix %d: error %v, want %v or %v", i, err, ErrNeedMore, final)
				}
			}
		})
	}
}

// TestParseRequestAgainstNetHTTP cross-checks accepted fixtures with the
// standard library's parser.
func TestParseRequestAgainstNetHTTP(t *testing.T) {
	for _, tc := range parseCases {
		if tc.err != nil || tc.notNetHTTP {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head+tc.body), tc.max, &r); err != nil {
				t.Fatal(err)
			}
			hr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.head + tc.body)))
			if err != nil {
				t.Fatalf("net/http rejects a request we accept: %v", err)
			}
			if hr.Method != string(r.Method) || hr.Host != string(r.Host) || hr.URL.RawQuery != string(r.Query) {
				t.Fatalf("net/http %s %q ?%q, we %s %q ?%q", hr.Method, hr.Host, hr.URL.RawQuery, r.Method, r.Host, r.Query)
			}
			if hr.URL.Path != string(r.Path) {
				t.Fatalf("path: net/http %q, we %q", hr.URL.Path, r.Path)
			}
			if hr.Close == r.KeepAlive {
				t.Fatalf("net/http Close=%v, we KeepAlive=%v", hr.Close, r.KeepAlive)
			}
			// net/http reports 0 for an absent length and -1 for chunked.
			ours := int64(r.ContentLength)
			if ours < 0 && !r.Chunked {
				ours = 0
			}
			if ours != hr.ContentLength {
				t.Fatalf("Content-Length: net/http %d, we %d", hr.ContentLength, r.ContentLength)
			}
		})
	}
}

func TestParseRequestPipelined(t *testing.T) {
	stream := []byte(triggerHead + triggerBody + "GET /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /app")
	var r Request
	if err := ParseRequest(stream, 10000, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Method) != "POST" || r.HeadLen != len(triggerHead) || r.ContentLength != len(triggerBody) {
		t.Fatalf("first request: %+v", view(&r))
	}
	if body := stream[r.HeadLen : r.HeadLen+r.ContentLength]; string(body) != triggerBody {
		t.Fatalf("body = %q", body)
	}
	stream = stream[r.HeadLen+r.ContentLength:]
	if err := ParseRequest(stream, 10000, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Path) != "/up" || r.KeepAlive {
		t.Fatalf("second request: %+v", view(&r))
	}
	stream = stream[r.HeadLen:]
	if err := ParseRequest(stream, 10000, &r); err != ErrNeedMore {
		t.Fatalf("third, partial request: %v, want ErrNeedMore", err)
	}
}

func TestParseRequestAliasesInput(t *testing.T) {
	buf := []byte(chromeUpgrade)
	var r Request
	if err := ParseRequest(buf, 0, &r); err != nil {
		t.Fatal(err)
	}
	copy(r.Path, "/app/XXXXXX-key")
	if !bytes.HasPrefix(buf, []byte("GET /app/XXXXXX-key?")) {
		t.Fatalf("Path does not alias the input: %q", buf[:24])
	}
}

func TestCheckUpgrade(t *testing.T) {
	valid := "GET /app/k HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	cases := []struct {
		name string
		head string
		want int
	}{
		{name: "valid", head: valid, want: 0},
		{name: "POST", head: strings.Replace(valid, "GET", "POST", 1), want: 400},
		{name: "HTTP/1.0", head: strings.Replace(valid, "HTTP/1.1", "HTTP/1.0", 1), want: 400},
		{name: "no Upgrade", head: strings.Replace(valid, "Upgrade: websocket\r\n", "", 1), want: 400},
		{name: "Connection without upgrade", head: strings.Replace(valid, "Connection: Upgrade", "Connection: keep-alive", 1), want: 400},
		{name: "version 8", head: strings.Replace(valid, "Version: 13", "Version: 8", 1), want: 426},
		{name: "version list", head: strings.Replace(valid, "Version: 13", "Version: 13, 8", 1), want: 426},
		{name: "no version", head: strings.Replace(valid, "Sec-WebSocket-Version: 13\r\n", "", 1), want: 400},
		{name: "no key", head: strings.Replace(valid, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1), want: 400},
		{name: "key of 15 bytes", head: strings.Replace(valid, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", 1), want: 400},
		{name: "key of 17 bytes", head: strings.Replace(valid, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZXM=", 1), want: 400},
		{name: "key not base64", head: strings.Replace(valid, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j*Q==", 1), want: 400},
		{name: "two keys", head: valid + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", want: 400},
		{name: "body", head: valid + "Content-Length: 3\r\n", want: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head+"\r\n"), 0, &r); err != nil {
				t.Fatal(err)
			}
			if got := CheckUpgrade(&r); got != tc.want {
				t.Fatalf("CheckUpgrade() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAppendUpgradeResponseRFCExample(t *testing.T) {
	// RFC 6455 §1.3 worked example.
	got := string(AppendUpgradeResponse(nil, []byte("dGhlIHNhbXBsZSBub25jZQ==")))
	if !strings.Contains(got, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") {
		t.Fatalf("wrong accept in %q", got)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 101 Switching Protocols\r\n") ||
		!strings.Contains(got, "\r\nX-Powered-By: Laravel Reverb\r\n") ||
		!strings.HasSuffix(got, "\r\n\r\n") ||
		strings.Contains(got, "Extensions") || strings.Contains(got, "Protocol:") {
		t.Fatalf("unexpected response %q", got)
	}
}

// TestHandshakeWithGobwasClient runs gobwas's client handshake against our
// parser and response over a pipe, then exchanges frames both ways.
func TestHandshakeWithGobwasClient(t *testing.T) {
	client, server := netPipe(t)
	done := make(chan error, 1)
	go func() {
		u, _ := url.Parse("ws://localhost:8080/app/reverb-key?protocol=7")
		br, _, err := ws.Dialer{}.Upgrade(client, u)
		if err != nil {
			done <- err
			return
		}
		var in io.Reader = client
		if br != nil {
			in = br // bytes read past the handshake
		}
		err = ws.WriteFrame(client, ws.MaskFrame(ws.NewTextFrame([]byte(`{"event":"pusher:ping","data":{}}`))))
		if err != nil {
			done <- err
			return
		}
		f, err := ws.ReadFrame(in)
		if err == nil && string(f.Payload) != `{"event":"pusher:pong"}` {
			err = errors.New("client got " + string(f.Payload))
		}
		done <- err
	}()

	var pending []byte
	chunk := make([]byte, 512)
	var r Request
	for {
		n, err := server.Read(chunk)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, chunk[:n]...)
		err = ParseRequest(pending, 10000, &r)
		if err == ErrNeedMore {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if code := CheckUpgrade(&r); code != 0 {
		t.Fatalf("CheckUpgrade() = %d for gobwas's handshake", code)
	}
	if string(r.Path) != "/app/reverb-key" || string(r.Query) != "protocol=7" {
		t.Fatalf("target %q ? %q", r.Path, r.Query)
	}
	if _, err := server.Write(AppendUpgradeResponse(nil, r.Key)); err != nil {
		t.Fatal(err)
	}
	pending = pending[r.HeadLen:]

	var rd Reader
	for {
		f, n, ok, err := rd.Next(pending)
		if err == ErrNeedMore {
			m, err := server.Read(chunk)
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, chunk[:m]...)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		pending = pending[n:]
		if ok {
			if f.Kind != KindMessage || string(f.Payload) != `{"event":"pusher:ping","data":{}}` {
				t.Fatalf("server got %+v", f)
			}
			break
		}
	}
	if _, err := server.Write(AppendText(nil, []byte(`{"event":"pusher:pong"}`))); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
}

func TestAppendResponse(t *testing.T) {
	body := []byte(`{"error":"Method not allowed."}`)
	out := AppendResponse([]byte("keep"), 405, "application/json", body, false, "Allow: POST", "X-A: b")
	if !bytes.HasPrefix(out, []byte("keep")) {
		t.Fatal("dst prefix lost")
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out[4:])), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 405 || resp.Status != "405 Method Not Allowed" || !resp.Close ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Allow") != "POST" ||
		resp.Header.Get("X-A") != "b" || resp.ContentLength != int64(len(body)) || !bytes.Equal(got, body) {
		t.Fatalf("parsed back: %+v body %q", resp, got)
	}

	out = AppendResponse(nil, 200, "", nil, true)
	if string(out) != "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
		t.Fatalf("keep-alive empty response = %q", out)
	}
}

func TestReasonPhrase(t *testing.T) {
	for _, s := range []int{101, 200, 400, 401, 403, 404, 405, 413, 422, 426, 500, 503} {
		if ReasonPhrase(s) == "" {
			t.Errorf("no reason phrase for %d", s)
		}
		if want := http.StatusText(s); s != 413 && s != 422 && ReasonPhrase(s) != want {
			t.Errorf("ReasonPhrase(%d) = %q, want %q", s, ReasonPhrase(s), want)
		}
	}
	if ReasonPhrase(299) != "" {
		t.Error("unknown status has a phrase")
	}
}

// netPipe returns a connected in-memory pair with a deadline so a broken
// handshake fails the test instead of hanging it.
func netPipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	c, s := net.Pipe()
	deadline := time.Now().Add(5 * time.Second)
	_ = c.SetDeadline(deadline)
	_ = s.SetDeadline(deadline)
	t.Cleanup(func() {
		_ = c.Close()
		_ = s.Close()
	})
	return c, s
}
