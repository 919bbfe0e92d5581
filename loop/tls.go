package loop

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// gnet has no TLS. When TLS is configured, a crypto/tls listener on the
// public address terminates it and relays the plaintext to the engine,
// which then listens on a private unix socket. The plain path is untouched;
// a TLS connection costs two goroutines and two buffers in this process (a
// few tens of KiB), which is why production setups terminate TLS at a proxy
// in front of a plain listener.
type tlsFront struct {
	ln     net.Listener
	sock   string
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// newTLSFront listens on addr with cfg and returns the gnet address the
// engine must listen on.
func newTLSFront(addr string, cfg *tls.Config) (*tlsFront, string, error) {
	dir, err := os.MkdirTemp("", "reverb-tls-")
	if err != nil {
		return nil, "", fmt.Errorf("loop: tls: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("loop: listen on %s: %w", addr, err)
	}
	f := &tlsFront{
		ln:     tls.NewListener(ln, cfg),
		sock:   filepath.Join(dir, "engine.sock"),
		closed: make(chan struct{}),
	}
	return f, "unix://" + f.sock, nil
}

func (f *tlsFront) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			select {
			case <-f.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *tlsFront) relay(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	back, err := net.Dial("unix", f.sock)
	if err != nil {
		return
	}
	defer back.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(back, c)
		_ = back.(*net.UnixConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, back)
	_ = c.Close()
	<-done
}

func (f *tlsFront) close() {
	f.once.Do(func() {
		close(f.closed)
		_ = f.ln.Close()
		_ = os.RemoveAll(filepath.Dir(f.sock))
	})
}
