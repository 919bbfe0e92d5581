//go:build linux

package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// apiConn is one keep-alive HTTP/1.1 connection of the Publisher. It is
// written by hand instead of going through net/http for one reading that
// net/http cannot give: the kernel's receive timestamp of the response
// (SO_TIMESTAMPNS), i.e. when the answer reached this process's socket, as
// opposed to when this process next got a CPU to read it. On a box where the
// publisher shares its cores with thousands of simulated browsers those two
// differ by milliseconds. It speaks exactly what the Pusher HTTP API needs:
// one request at a time, responses framed by Content-Length. One goroutine.
type apiConn struct {
	addr string
	c    *net.TCPConn
	rc   syscall.RawConn
	buf  []byte // the response read so far
	oob  []byte // control messages of one recvmsg (the timestamp)
	req  []byte

	mu      sync.Mutex // guards c against abort from another goroutine
	aborted bool
}

// rxStamps keeps the kernel's receive timestamps switched on for the
// process: the first socket in a system that asks for them turns them on
// from a work queue a little later, and the last one to close turns them
// off, so answers read in such a gap carry none. The Publisher holds one
// for its life, opened well before its first trigger.
type rxStamps struct{ a, b net.Conn }

// enableRxTimestamps opens a loopback TCP pair whose receiving end asks for
// timestamps, and sends itself a byte every millisecond until one arrives
// stamped (at most wait). ok reports that one did.
func enableRxTimestamps(wait time.Duration) (st *rxStamps, ok bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, false
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, false
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		return nil, false
	}
	st = &rxStamps{a, b}
	rc, err := stampedConn(b.(*net.TCPConn))
	if err != nil {
		return st, false
	}
	var one [1]byte
	oob := make([]byte, oobSize)
	end := time.Now().Add(wait)
	for {
		if _, err := a.Write(one[:]); err != nil {
			return st, false
		}
		b.SetReadDeadline(time.Now().Add(time.Second))
		if _, at, err := recvStamped(rc, one[:], oob); err != nil {
			return st, false
		} else if !at.IsZero() {
			return st, true
		}
		if time.Now().After(end) {
			return st, false
		}
		time.Sleep(time.Millisecond)
	}
}

func (st *rxStamps) Close() {
	if st != nil {
		st.a.Close()
		st.b.Close()
	}
}

var (
	errResponse = errors.New("bench: malformed HTTP response")
	errAborted  = errors.New("bench: publish cancelled")
)

// maxResponseBody bounds the body of one answer: the API's are a few
// bytes (`{}` or an error), and a bigger one fails the trigger.
const maxResponseBody = 1 << 20

// maxResponseHead bounds the status line and headers of one answer.
const maxResponseHead = 64 << 10

// oobSize holds the one control message recvStamped asks for.
var oobSize = unix.CmsgSpace(16) // struct timespec

// stampedConn asks the kernel to timestamp what c receives and returns its
// raw connection for recvStamped.
func stampedConn(c *net.TCPConn) (syscall.RawConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, err
	}
	return rc, serr
}

// recvStamped reads what the socket holds into p (waiting through the
// runtime's poller, with the connection's deadline) and returns the
// kernel's receive timestamp of the first byte, zero when there is none.
func recvStamped(rc syscall.RawConn, p, oob []byte) (n int, at time.Time, err error) {
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				at = time.Unix(sec, nsec)
			}
		}
	}
	return n, at, nil
}

// dial (re)connects with timestamping on.
func (a *apiConn) dial(timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", a.addr, timeout)
	if err != nil {
		return err
	}
	tc := c.(*net.TCPConn)
	rc, err := stampedConn(tc)
	if err != nil {
		tc.Close()
		return err
	}
	a.mu.Lock()
	aborted := a.aborted
	if !aborted {
		a.c, a.rc = tc, rc
	}
	a.mu.Unlock()
	if aborted {
		tc.Close()
		return errAborted
	}
	a.buf = a.buf[:0]
	if a.oob == nil {
		a.oob = make([]byte, oobSize)
	}
	return nil
}

func (a *apiConn) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c != nil {
		a.c.Close()
		a.c = nil
	}
}

// abort makes the post in progress, and every later one, fail at once; the
// publisher's run was cancelled. Any goroutine.
func (a *apiConn) abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.c != nil {
		a.c.SetDeadline(time.Unix(1, 0))
	}
}

// reset forgets an abort, for the next run.
func (a *apiConn) reset() {
	a.mu.Lock()
	a.aborted = false
	a.mu.Unlock()
}

// post sends one POST of body to target (path and query) and reads the
// response. It returns the status code and the time the first byte of the
// response arrived at the socket (zero if the kernel gave no timestamp). On
// an error the connection is dropped; the next post redials.
func (a *apiConn) post(host string, target, body []byte, timeout time.Duration) (status int, arrived time.Time, err error) {
	deadline := time.Now().Add(timeout)
	reused := a.c != nil
	if !reused {
		if err := a.dial(timeout); err != nil {
			return 0, time.Time{}, err
		}
	}
	if !a.arm(deadline) {
		a.close()
		return 0, time.Time{}, errAborted
	}
	r := append(a.req[:0], "POST "...)
	r = append(r, target...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, host...)
	r = append(r, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, body...)
	a.req = r
	status, arrived, keep, got, err := a.exchange(r)
	if err != nil && reused && got == 0 {
		// The server closed the idle keep-alive connection before this
		// request reached it: once more on a new one, as browsers and
		// net/http do.
		a.close()
		if err = a.dial(timeout); err == nil {
			if !a.arm(deadline) {
				err = errAborted
			} else {
				status, arrived, keep, _, err = a.exchange(r)
			}
		}
	}
	if err != nil || !keep {
		a.close()
	}
	return status, arrived, err
}

// arm sets the deadline of the post in progress unless it was aborted.
func (a *apiConn) arm(deadline time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.aborted {
		a.c.SetDeadline(deadline)
	}
	return !a.aborted
}

// exchange writes req and reads its response; got is how many response
// bytes came in.
func (a *apiConn) exchange(req []byte) (status int, arrived time.Time, keep bool, got int, err error) {
	if _, err := a.c.Write(req); err != nil {
		return 0, time.Time{}, false, 0, err
	}
	status, arrived, keep, err = a.response()
	return status, arrived, keep, len(a.buf), err
}

// response reads one response; keep reports whether the connection may
// carry the next request.
func (a *apiConn) response() (status int, arrived time.Time, keep bool, err error) {
	a.buf = a.buf[:0]
	head := -1
	for head < 0 {
		if arrived, err = a.fill(arrived); err != nil {
			return 0, arrived, false, err
		}
		head = bytes.Index(a.buf, []byte("\r\n\r\n"))
		if head < 0 && len(a.buf) > maxResponseHead {
			return 0, arrived, false, errResponse
		}
	}
	h := a.buf[:head]
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, arrived, false, errResponse
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, arrived, false, errResponse
	}
	length, keep := -1, line[7] == '1'
	for len(rest) > 0 {
		var f []byte
		f, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, val, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(val)); err != nil || length < 0 || length > maxResponseBody {
				return status, arrived, false, errResponse
			}
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(val, []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, arrived, false, errResponse // the API never chunks
		}
	}
	if length < 0 {
		return status, arrived, false, errResponse
	}
	for len(a.buf) < head+4+length {
		if arrived, err = a.fill(arrived); err != nil {
			return status, arrived, false, err
		}
	}
	return status, arrived, keep && len(a.buf) == head+4+length, nil
}

// fill reads what the socket holds into buf. arrived keeps the first
// timestamp of the response.
func (a *apiConn) fill(arrived time.Time) (time.Time, error) {
	if cap(a.buf)-len(a.buf) < 4096 {
		a.buf = append(a.buf, make([]byte, 4096)...)[:len(a.buf)]
	}
	n, at, err := recvStamped(a.rc, a.buf[len(a.buf):cap(a.buf)], a.oob)
	if err != nil {
		return arrived, err
	}
	if n == 0 {
		return arrived, errResponse // closed before a whole response
	}
	a.buf = a.buf[:len(a.buf)+n]
	if arrived.IsZero() {
		arrived = at
	}
	return arrived, nil
}
