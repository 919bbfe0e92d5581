package loop_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "reverb test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func oneApp(t *testing.T) *pusher.AppSet {
	t.Helper()
	apps, err := pusher.NewAppSet([]pusher.App{{ID: "1", Key: "key", Secret: "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	return apps
}

// readText reads one server text message from c (with br holding any
// bytes the handshake read ahead).
func readText(t *testing.T, rw io.ReadWriter) string {
	t.Helper()
	msg, err := wsutil.ReadServerText(rw)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(msg)
}

type rw struct {
	io.Reader
	io.Writer
}

func TestTLSTerminatedInFrontOfTheEngine(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := freeAddr(t)
	srv, err := loop.Start(loop.Config{
		Addr:  addr,
		Apps:  oneApp(t),
		Loops: 2,
		TLS:   &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})

	d := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, Timeout: 3 * time.Second}
	c, br, _, err := d.Dial(context.Background(), "wss://"+addr+"/app/key")
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c)
	}
	conn := rw{r, c}
	if msg := readText(t, conn); !strings.Contains(msg, "pusher:connection_established") {
		t.Fatalf("first message over TLS = %s", msg)
	}
	if err := wsutil.WriteClientText(c, []byte(`{"event":"pusher:ping","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	if msg := readText(t, conn); msg != `{"event":"pusher:pong"}` {
		t.Fatalf("pong over TLS = %s", msg)
	}

	// Plain HTTP on the TLS port is refused, not served.
	pc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = pc.Write([]byte("GET /up HTTP/1.1\r\nHost: x\r\n\r\n"))
	got, _ := io.ReadAll(pc)
	if bytes.Contains(got, []byte(`"health":"OK"`)) {
		t.Fatalf("plaintext request served on the TLS port: %q", got)
	}
}

// lockedBuffer collects log output from the event loops.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestDebugLogsConnectionsAndEveryFrame(t *testing.T) {
	var logs lockedBuffer
	addr := freeAddr(t)
	srv, err := loop.Start(loop.Config{
		Addr:   addr,
		Apps:   oneApp(t),
		Loops:  1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	c, br, _, err := ws.Dial(context.Background(), "ws://"+addr+"/app/key")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c)
	}
	conn := rw{r, c}
	readText(t, conn)
	_ = wsutil.WriteClientText(c, []byte(`{"event":"pusher:subscribe","data":{"channel":"news"}}`))
	readText(t, conn)
	c.Close()

	deadline := time.Now().Add(3 * time.Second)
	want := []string{
		"connection established",
		`frame in`, `pusher:subscribe`,
		`frame out`, `pusher_internal:subscription_succeeded`,
		"connection closed",
	}
	for {
		out := logs.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("debug log lacks %q:\n%s", missing, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
