//go:build linux

// Package abuse holds the abuse suite of issue 9: misbehaving clients
// driven through real sockets on loopback against the server, each scenario
// checking that the server stays bounded and keeps serving well-behaved
// clients. The package has tests only.
//
// Every scenario has a short version that runs in `make test` (a few
// seconds, in-process server from package loop) and a scale version that
// runs only with ABUSE_SCALE=1 (`make abuse`): it builds the real reverb
// binary, starts it as a subprocess, reads its RSS from /proc and prints
// each figure next to its target, failing when a target is missed.
//
// Scenarios live in their own files; helpers shared by this author's files
// are in abuse_helpers_test.go (names start with abuse), the stalled-reader
// scenario keeps its own stalled-prefixed helpers. Tests run on the test
// goroutine and goroutines they start and wait for; nothing outlives a test.
package abuse
