//go:build linux

package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is the unit of utime/stime in /proc/<pid>/stat (sysconf
// _SC_CLK_TCK), read from the auxiliary vector; 100 on every common kernel.
var clockTicks = func() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil {
		for i := 0; i+16 <= len(b); i += 16 {
			k := binary.NativeEndian.Uint64(b[i:])
			if k == 17 { // AT_CLKTCK
				if v := int64(binary.NativeEndian.Uint64(b[i+8:])); v > 0 {
					return v
				}
			}
		}
	}
	return 100
}()

// ProcSample is the resource use of a set of processes at one instant.
type ProcSample struct {
	At  time.Time
	CPU time.Duration // user + system, summed over the processes
	RSS int64         // resident set, KiB, summed
}

// SampleProcs reads /proc/<pid>/stat and /proc/<pid>/status of every pid.
// An empty list gives a zero sample with At set. Any goroutine.
func SampleProcs(pids []int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	for _, pid := range pids {
		cpu, err := procCPU(pid)
		if err != nil {
			return s, err
		}
		rss, err := procRSS(pid)
		if err != nil {
			return s, err
		}
		s.CPU += cpu
		s.RSS += rss
	}
	return s, nil
}

var errStat = errors.New("bench: unexpected /proc stat format")

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses; fields restart
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errStat
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, errStat
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errStat
	}
	return time.Duration((ut + st) * int64(time.Second) / clockTicks), nil
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte("\nVmRSS:"))
	if i < 0 {
		return 0, nil // a zombie has no VmRSS
	}
	f := bytes.Fields(b[i+7:])
	if len(f) == 0 {
		return 0, errStat
	}
	return strconv.ParseInt(string(f[0]), 10, 64)
}

// selfCPU returns this process's user+system CPU time in ns (getrusage,
// which is finer than /proc ticks).
func selfCPU() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// selfRSS returns this process's resident set in KiB.
func selfRSS() int64 {
	v, _ := procRSS(os.Getpid())
	return v
}
