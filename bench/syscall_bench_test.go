//go:build linux

package bench

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The price of entering the kernel on the machine at hand, which README's
// million-socket section compares against: a system call that does
// nothing, a one-byte write and read over a Unix socket pair, and the
// round trip of a byte to a peer blocked in read(2) and back (two
// wake-ups), with the peer a thread or another process, on this vCPU or
// the other one.

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

// BenchmarkWakeRoundTrip: the benchmark's thread and its peer are each
// pinned to one vCPU; the peer echoes every byte it reads from one pipe
// into another. On one vCPU each round trip is two context switches; on
// two it is two wake-ups of a sleeping vCPU's task.
func BenchmarkWakeRoundTrip(b *testing.B) {
	for _, peer := range []string{"thread", "process"} {
		for _, cpu := range []int{0, 1} {
			name := peer + "/same-cpu"
			if cpu == 1 {
				name = peer + "/other-cpu"
			}
			b.Run(name, func(b *testing.B) {
				if cpu >= runtime.NumCPU() {
					b.Skip("one CPU")
				}
				wakeRoundTrips(b, peer == "process", cpu)
			})
		}
	}
}

func wakeRoundTrips(b *testing.B, process bool, peerCPU int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		b.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &was)
	if err := pinThread(0); err != nil {
		b.Fatal(err)
	}
	var there, back [2]int
	if err := unix.Pipe2(there[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	if err := unix.Pipe2(back[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(back[0])
	if process {
		in, out := os.NewFile(uintptr(there[0]), "in"), os.NewFile(uintptr(back[1]), "out")
		cmd := exec.Command(os.Args[0], "echo", strconv.Itoa(peerCPU))
		cmd.ExtraFiles = []*os.File{in, out} // fds 3 and 4 there
		err := cmd.Start()
		in.Close()
		out.Close()
		if err != nil {
			b.Fatal(err)
		}
		defer cmd.Wait()
	} else {
		go func() {
			runtime.LockOSThread()
			if pinThread(peerCPU) == nil { // else the closes below fail the first read
				echoBytes(there[0], back[1])
			}
			unix.Close(there[0])
			unix.Close(back[1])
		}()
	}
	defer unix.Close(there[1]) // the peer's read returns 0: it ends
	var one [1]byte
	p := uintptr(unsafe.Pointer(&one[0]))
	roundTrip := func() {
		if _, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(there[1]), p, 1); e != 0 {
			b.Fatal(e)
		}
		if n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(back[0]), p, 1); e != 0 || n != 1 {
			b.Fatalf("read: %d, %v", n, e)
		}
	}
	roundTrip() // the peer is up
	for b.Loop() {
		roundTrip()
	}
}

// pinThread binds the calling OS thread to one CPU.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// echoBytes writes back every byte read from in until in is closed. It
// blocks through the runtime (not RawSyscall) so that the benchmark's
// stop-the-world (B.Loop reads memory stats) need not wait for its read.
func echoBytes(in, out int) {
	var one [1]byte
	for {
		if n, err := unix.Read(in, one[:]); err != nil || n != 1 {
			return
		}
		if _, err := unix.Write(out, one[:]); err != nil {
			return
		}
	}
}

// runEcho is the process peer of BenchmarkWakeRoundTrip (TestMain).
func runEcho(cpu string) {
	n, err := strconv.Atoi(cpu)
	if err != nil {
		os.Exit(2)
	}
	runtime.LockOSThread()
	if pinThread(n) != nil {
		os.Exit(1)
	}
	echoBytes(3, 4)
	os.Exit(0)
}
