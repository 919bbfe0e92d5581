//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// The harness drives sockets with raw epoll and eventfd and reads server
// metrics from /proc, so it exists only on Linux. Building it elsewhere
// gives this stub, so `go build ./...` and `go vet ./...` work on every OS.
func main() {
	fmt.Fprintf(os.Stderr, "reverb-bench needs Linux (epoll, eventfd, /proc); this build is for %s/%s. "+
		"Run it on a Linux machine or in a Linux container.\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(1)
}
