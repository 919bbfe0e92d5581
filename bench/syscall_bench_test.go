//go:build linux

package bench

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The price of entering the kernel on the machine at hand, which README's
// million-socket section compares against: a system call that does
// nothing, and a one-byte write and read over a Unix socket pair.

func BenchmarkNullSyscall(b *testing.B) {
	for b.Loop() {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
}

func BenchmarkUnixPairWriteRead(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var one [1]byte
	p := uintptr(unsafe.Pointer(&one[0]))
	for b.Loop() {
		if _, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fds[0]), p, 1); e != 0 {
			b.Fatal(e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fds[1]), p, 1); e != 0 {
			b.Fatal(e)
		}
	}
}
