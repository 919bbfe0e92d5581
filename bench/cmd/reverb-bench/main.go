//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goreverb/reverb/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  reverb-bench connect|fanout|whisper|churn|http [flags]   run one scenario
  reverb-bench compare [flags]                              fanout vs the reference server
  reverb-bench ref [--host 127.0.0.1] [--port 8090] [--loops N] [--timeout 1h]
Run "reverb-bench fanout -h" for the flags.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "worker":
		if err := bench.RunWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(stderr, "reverb-bench worker:", err)
			return 1
		}
		return 0
	case "ref":
		return ref(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	cfg, err := bench.ParseFlags(args[0], args[1:], stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	summary := stdout
	if cfg.JSON {
		summary = stderr
	}
	var out any
	if args[0] == "compare" {
		c, err := bench.Compare(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "reverb-bench:", err)
			return 1
		}
		bench.PrintComparison(summary, c)
		out = c
	} else {
		r, err := bench.Run(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "reverb-bench:", err)
			return 1
		}
		bench.PrintSummary(summary, r)
		out = r
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(stdout, string(b))
	return 0
}

func ref(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ref", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "IPv4 address to listen on")
	port := fs.Int("port", 8090, "port (0 = any free port)")
	loops := fs.Int("loops", 0, "event loops (0 = one per CPU)")
	timeout := fs.Duration("timeout", time.Hour, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s, err := bench.StartRef(*host, *port, *loops)
	if err != nil {
		fmt.Fprintln(stderr, "reverb-bench ref:", err)
		return 1
	}
	defer s.Close()
	b, _ := json.Marshal(bench.RefReady{PID: s.PID(), Port: s.Port(), Loops: s.Loops()})
	fmt.Fprintln(stdout, string(b))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*timeout):
	}
	return 0
}
