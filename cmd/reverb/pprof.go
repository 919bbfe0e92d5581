package main

import (
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"runtime"
	"strings"
)

// startProfiler serves net/http/pprof on REVERB_PPROF (e.g. 127.0.0.1:6060)
// when set: heap and CPU profiles of a running server, for load tests. It is
// off by default and should only ever listen on loopback.
func startProfiler(environ []string, stderr io.Writer) {
	addr := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "REVERB_PPROF="); ok {
			addr = v
		}
	}
	if addr == "" {
		return
	}
	// Sample small allocations too: per-connection objects are a few
	// hundred bytes, below the default 512 KiB sampling interval.
	runtime.MemProfileRate = 256
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(stderr, "reverb: pprof:", err)
		}
	}()
}
