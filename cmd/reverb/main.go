// Command reverb is a drop-in replacement for Laravel Reverb: the Pusher
// protocol 7 WebSocket server and Reverb's HTTP API, configured from the same
// REVERB_* environment (and .env file) as `php artisan reverb:start`.
//
//	reverb start [--host=] [--port=] [--path=] [--hostname=] [--debug] [--config=] [--env-file=]
//	reverb restart [--config=] [--env-file=]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goreverb/reverb/cmd/reverb/config"
	"github.com/goreverb/reverb/hub/webhook"
	"github.com/goreverb/reverb/loop"
	"github.com/goreverb/reverb/pusher"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  reverb start   [--host=0.0.0.0] [--port=8080] [--path=] [--hostname=] [--debug] [--config=FILE] [--env-file=.env]
  reverb restart [--config=FILE] [--env-file=.env]
  reverb version
`)
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "start", "reverb:start":
		return start(args[1:], environ, stdout, stderr)
	case "restart", "reverb:restart":
		return restart(args[1:], environ, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "reverb", version)
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "reverb: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// configure parses a command's flags and loads the merged configuration. On
// failure it has reported the problem and returns nil with the exit code.
func configure(name string, args, environ []string, stderr io.Writer) (*config.Config, int) {
	flags, err := config.ParseFlags(name, args, stderr)
	if err != nil {
		return nil, 2
	}
	cfg, err := config.LoadConfig(flags, environ)
	if err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return nil, 1
	}
	return cfg, 0
}

func start(args, environ []string, stdout, stderr io.Writer) int {
	cfg, rc := configure("start", args, environ, stderr)
	if cfg == nil {
		return rc
	}
	apps, err := pusher.NewAppSet(cfg.Apps)
	if err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}

	var logger *slog.Logger
	if cfg.Debug {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	checkOpenFiles(stderr)
	startProfiler(environ, stderr)

	home, _ := os.UserHomeDir()
	tlsCfg, err := config.ServerTLSConfig(cfg, home)
	if err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}

	lcfg := loop.Config{
		Addr:                  net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		Path:                  cfg.Path,
		Apps:                  apps,
		MaxRequestSize:        cfg.MaxRequestSize,
		TimestampWindow:       cfg.TimestampWindow,
		MaxOutboundBuffer:     cfg.MaxOutboundBuffer,
		MaxNodeBuffer:         cfg.MaxNodeBuffer,
		SocketSendBuffer:      cfg.SocketSendBuffer,
		ReusePort:             cfg.ReusePort,
		Loops:                 cfg.EventLoops,
		HeadTimeout:           cfg.HeadTimeout,
		MaxPendingConnections: cfg.MaxPendingConnections,
		TLS:                   tlsCfg,
		Logger:                logger,
	}
	// The broker logs Redis state changes (once each) even without --debug.
	brokerLog := logger
	if brokerLog == nil {
		brokerLog = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Webhooks, when any app has some. Closed after the broker (defers run
	// last first), so the removals of sockets closed at shutdown still go.
	var hooks *webhook.Sender
	for _, a := range apps.All() {
		if len(a.Webhooks) > 0 {
			hooks = webhook.New(apps, webhook.Options{
				Batch: cfg.Webhooks.Batch, Delay: cfg.Webhooks.Delay,
				QueueSize: cfg.Webhooks.QueueSize, Timeout: cfg.Webhooks.Timeout, Logger: brokerLog,
			})
			lcfg.Hooks = hooks
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				hooks.Close(ctx)
			}()
			break
		}
	}
	broker, err := startScaling(cfg, brokerLog)
	if err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}
	if broker != nil {
		defer broker.Close()
		lcfg.Broker = broker
		if hooks != nil {
			lcfg.Hooks = broker.Webhooks(hooks)
		}
		// Channel queries wait for the other nodes' answers: serve the
		// HTTP API off the event loops.
		lcfg.AsyncAPI = true
	}
	srv, err := loop.Start(lcfg)
	if err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}
	if hooks != nil {
		hooks.Start(srv.Hub().Counters())
	}
	restartCmd := make(chan struct{}, 1)
	if broker != nil {
		broker.Attach(srv.Hub())
		broker.OnRestart(func() {
			select {
			case restartCmd <- struct{}{}:
			default:
			}
		})
	}

	secure := ""
	if tlsCfg != nil {
		secure = "secure "
	}
	line := fmt.Sprintf("Starting %sserver on %s:%d%s", secure, cfg.Host, cfg.Port, cfg.Path)
	if cfg.Hostname != "" && cfg.Hostname != cfg.Host {
		line += " (" + cfg.Hostname + ")"
	}
	fmt.Fprintln(stdout, line)
	if cfg.Dev {
		printDevApp(stdout, stderr, cfg, tlsCfg != nil)
	}
	if cfg.Metrics.Enabled {
		mon, err := startMonitor(cfg, srv, broker)
		if err != nil {
			fmt.Fprintln(stderr, "reverb: metrics:", err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			return 1
		}
		defer mon.Close()
		fmt.Fprintf(stdout, "Metrics and dashboard on http://%s/\n", mon.Addr())
		if w := metricsWarning(cfg); w != "" {
			fmt.Fprintln(stderr, "reverb: warning:", w)
		}
	}

	restartFile := filepath.Join(cfg.StateDir, "restart")
	seen := readRestartStamp(restartFile)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGTSTP)
	poll := time.NewTicker(5 * time.Second)
	defer poll.Stop()
	reason := ""
	for reason == "" {
		select {
		case sig := <-sigs:
			reason = "received " + sig.String()
		case <-poll.C:
			if stamp := readRestartStamp(restartFile); stamp != seen {
				reason = "restart requested"
			}
		case <-restartCmd:
			reason = "restart requested through Redis"
		case err := <-srv.Done():
			fmt.Fprintln(stderr, "reverb: engine stopped:", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "Stopping server (%s)\n", reason)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "reverb: shutdown:", err)
	}
	return 0
}

// printDevApp says that the development app is served, where its
// credentials are kept, and prints the .env block that points a Laravel app
// and Echo at it.
func printDevApp(stdout, stderr io.Writer, cfg *config.Config, secure bool) {
	if cfg.DevFile != "" {
		fmt.Fprintf(stdout, "No app configured: serving the development app kept in %s\n"+
			"(the same at every start; delete the file for new credentials). For your Laravel .env:\n\n", cfg.DevFile)
	} else {
		fmt.Fprintf(stderr, "reverb: warning: %v; the development app below changes at the next start. "+
			"Set REVERB_STATE_DIR to a writable directory to keep it.\n", cfg.DevFileErr)
		fmt.Fprint(stdout, "No app configured: serving a development app. For your Laravel .env:\n\n")
	}
	fmt.Fprintln(stdout, config.DevEnv(cfg, secure))
}

// restart asks every server on this machine to restart (each polls the
// restart stamp in the state directory every 5 s) and, with scaling on,
// every node of the cluster through Redis (§10.6).
func restart(args, environ []string, stdout, stderr io.Writer) int {
	cfg, rc := configure("restart", args, environ, stderr)
	if cfg == nil {
		return rc
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "restart"), []byte(stamp), 0o644); err != nil {
		fmt.Fprintln(stderr, "reverb:", err)
		return 1
	}
	if cfg.Scaling.Enabled {
		// Every node of the cluster, on any machine, listens on Redis.
		if err := restartViaRedis(cfg); err != nil {
			fmt.Fprintln(stderr, "reverb: restart through Redis failed (local servers still get the signal):", err)
		}
	}
	fmt.Fprintln(stdout, "Restart signal sent: running servers stop within 5 seconds.")
	return 0
}

func readRestartStamp(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// checkOpenFiles raises RLIMIT_NOFILE to the hard limit: every socket is a
// file, and the soft default (often 1024) is what stops Reverb near 1,000
// connections.
func checkOpenFiles(stderr io.Writer) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < 65536 {
		fmt.Fprintf(stderr, "reverb: warning: this process may open only %d files, so it holds at most about %d connections. "+
			"Raise the hard limit: `ulimit -n 1048576` in the shell, LimitNOFILE=1048576 in the systemd unit, "+
			"or minfds=1048576 in supervisord.conf (see scripts/).\n", lim.Cur, lim.Cur-32)
	}
}
