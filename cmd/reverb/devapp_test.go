package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildReverb compiles this command the way a user does (make build) into
// a temporary directory and returns the binary's path.
func buildReverb(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to build the binary with")
		}
	}
	bin := filepath.Join(t.TempDir(), "reverb")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs `bin start` on a free loopback port in dir (a directory
// without .env) and returns its address and everything it printed up to the
// last line of the .env block, or up to "Starting" when no block follows.
// The process is stopped with SIGTERM when the test ends; the exit status
// must be 0.
func startBinary(t *testing.T, bin, dir string, env []string, extra ...string) (addr, out string) {
	t.Helper()
	port := freePort(t)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, append([]string{"start", "--host", "127.0.0.1", "--port", strconv.Itoa(port)}, extra...)...)
	cmd.Dir = dir
	cmd.Env = env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reverb start exited: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("reverb start did not stop within 15 s of SIGTERM")
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stderr of reverb start on %s:\n%s", addr, stderr.String())
		}
	})

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var b strings.Builder
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("reverb start ended early; output:\n%s", b.String())
			}
			b.WriteString(line + "\n")
			// The block ends with VITE_REVERB_SCHEME; a configured app prints no block.
			if strings.HasPrefix(line, "VITE_REVERB_SCHEME=") || (strings.HasPrefix(line, "Starting") && !hasDevBlock(extra, env)) {
				go func() {
					for range lines {
					}
				}()
				waitUp(t, addr)
				return addr, b.String()
			}
		case <-timeout:
			t.Fatalf("no startup output within 20 s:\n%s", b.String())
		}
	}
}

// hasDevBlock: only a start without any app configuration prints the block.
func hasDevBlock(args, env []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "--env-file") {
			return false
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "REVERB_APP_KEY=") {
			return false
		}
	}
	return true
}

var envBlockRE = regexp.MustCompile(`(?s)BROADCAST_CONNECTION=reverb\n.*VITE_REVERB_SCHEME="\$\{REVERB_SCHEME\}"\n`)

// TestDevAppKeptAcrossRestarts starts the real binary twice with no
// configuration: both starts serve the same development app, kept in the
// state directory and printed as a .env block that a client can use at
// once; pasted into a .env, the block configures that app.
func TestDevAppKeptAcrossRestarts(t *testing.T) {
	bin := buildReverb(t)
	state, work := t.TempDir(), t.TempDir()
	env := []string{"REVERB_STATE_DIR=" + state, "HOME=" + work, "PATH=" + os.Getenv("PATH")}

	addr, out1 := startBinary(t, bin, work, env)
	block1 := envBlockRE.FindString(out1)
	if block1 == "" {
		t.Fatalf("no .env block in the output:\n%s", out1)
	}
	if want := filepath.Join(state, "dev-app.json"); !strings.Contains(out1, want) {
		t.Errorf("output does not name %s:\n%s", want, out1)
	}
	for _, re := range []string{
		`(?m)^REVERB_APP_ID=[1-9][0-9]{5}$`, `(?m)^REVERB_APP_KEY=[a-z0-9]{20}$`, `(?m)^REVERB_APP_SECRET=[a-z0-9]{20}$`,
		`(?m)^REVERB_HOST="localhost"$`, `(?m)^REVERB_PORT=` + addr[strings.LastIndexByte(addr, ':')+1:] + `$`, `(?m)^REVERB_SCHEME=http$`,
		`(?m)^VITE_REVERB_APP_KEY="\$\{REVERB_APP_KEY\}"$`, `(?m)^VITE_REVERB_HOST="\$\{REVERB_HOST\}"$`, `(?m)^VITE_REVERB_PORT="\$\{REVERB_PORT\}"$`,
	} {
		if !regexp.MustCompile(re).MatchString(block1) {
			t.Errorf("block lacks %s:\n%s", re, block1)
		}
	}
	key := regexp.MustCompile(`(?m)^REVERB_APP_KEY=(\w+)$`).FindStringSubmatch(block1)[1]
	c, first := dial(t, addr, key)
	c.Close()
	if !strings.Contains(first, "pusher:connection_established") {
		t.Fatalf("first message with the printed key: %s", first)
	}

	// Second start, same state directory, another port.
	addr2, out2 := startBinary(t, bin, work, env)
	block2 := envBlockRE.FindString(out2)
	strip := func(s string) string { return regexp.MustCompile(`(?m)^REVERB_PORT=\d+$`).ReplaceAllString(s, "") }
	if strip(block2) != strip(block1) {
		t.Fatalf("the development app changed across restarts:\nfirst:\n%s\nsecond:\n%s", block1, block2)
	}
	c, first = dial(t, addr2, key)
	c.Close()
	if !strings.Contains(first, "pusher:connection_established") {
		t.Fatalf("second start refused the first start's key: %s", first)
	}

	// Pasted into a .env (and another, empty state directory): the same app,
	// now configured, so no block is printed.
	envFile := filepath.Join(work, ".env")
	if err := os.WriteFile(envFile, []byte(block1), 0o600); err != nil {
		t.Fatal(err)
	}
	env3 := []string{"REVERB_STATE_DIR=" + t.TempDir(), "HOME=" + work, "PATH=" + os.Getenv("PATH")}
	addr3, out3 := startBinary(t, bin, work, env3, "--env-file", envFile)
	if strings.Contains(out3, "No app configured") {
		t.Fatalf("a start with the pasted .env still serves a development app:\n%s", out3)
	}
	c, first = dial(t, addr3, key)
	c.Close()
	if !strings.Contains(first, "pusher:connection_established") {
		t.Fatalf("start with the pasted .env refused the key: %s", first)
	}
}
