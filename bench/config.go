//go:build linux

package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// MaxSocketsPerWorker keeps a worker under the 20,000 open files one
// process may hold here, with room for the poller, pipes and stdio.
const MaxSocketsPerWorker = 18000

// Config is one run of the harness. The zero value is not usable: build it
// with ParseFlags or fill it and let Run apply the defaults.
type Config struct {
	Scenario string
	// Host and Port locate the server; Path is its route prefix (§1).
	Host string
	Port int
	Path string
	// AppID, Key and Secret are the app's credentials; Secret signs the
	// HTTP API and private/presence subscriptions locally.
	AppID  string
	Key    string
	Secret string
	Origin string
	// Conns is the number of WebSocket connections (fanout: subscribers,
	// whisper: group members); Channels the channels they spread over.
	Conns    int
	Channels int
	// Rate is events per second (fanout, http; 0 = closed loop for http),
	// client events per second (whisper) or cycles per second (churn).
	Rate float64
	// Duration is the measured phase (hold, publish, whisper, churn).
	Duration time.Duration
	// Ramp is new connections per second while connecting; 0 = no pacing.
	Ramp        float64
	ChannelType string // public, private or presence
	Group       int    // whisper group size
	// Workers is the number of worker processes (0 = enough for
	// MaxSocketsPerWorker); Loops the epoll loops in each (0 = CPUs/workers).
	Workers int
	Loops   int
	// SrcIPs is how many source addresses 127.0.0.2... to rotate over for a
	// loopback target; 0 = enough for the run, -1 = none.
	SrcIPs     int
	ServerPIDs []int
	// Size is the event data size in bytes; HTTPConns the publisher pool.
	Size      int
	HTTPConns int
	Prefix    string
	// ConnectTimeout bounds one connection's dial-to-subscribed time.
	ConnectTimeout time.Duration
	// PollGap makes each worker loop sleep this long after a poll that
	// returned events, so a burst is read in batches rather than with one
	// thread wake-up per socket. Every client on this machine shares its
	// cores with the server, and on a 100,000-socket broadcast those
	// wake-ups cost more CPU than the reads. Each measured latency may grow
	// by up to PollGap (never shrink). 0 = poll again at once.
	PollGap time.Duration
	// Settle is how long churn waits after the last cycle before reading
	// the server's RSS (0 = 2 s).
	Settle time.Duration
	// Hold (fanout) keeps every subscribed socket idle this long, answering
	// the server's pings, before the measured phase: what holding the
	// sockets costs the server (Result.Hold).
	Hold time.Duration
	JSON bool
	// NoProgress silences the once-a-second progress line.
	NoProgress bool
	// InProcess runs workers as goroutines over pipes instead of child
	// processes (tests; limited to one process's open files).
	InProcess bool
	// RefLoops is the reference server's loop count in compare (0 = CPUs).
	RefLoops int
	// WorkerNice, when set, is the nice value worker processes run at
	// (nice(1) starts them): on a machine shared with the server, a
	// positive value keeps the simulated browsers from taking the cores
	// the server and the publisher (the Laravel app) need, as if the
	// browsers were elsewhere. Nil = inherit this process's.
	WorkerNice *int
}

// Defaults per scenario for flags the user did not set.
var scenarioDefaults = map[string]struct {
	conns, channels int
	rate            float64
	typ             string
}{
	ScenarioConnect: {1000, 10, 0, "public"},
	ScenarioFanout:  {1000, 10, 100, "public"},
	ScenarioWhisper: {100, 0, 100, "presence"},
	ScenarioChurn:   {0, 10, 100, "public"},
	ScenarioHTTP:    {1, 1, 0, "public"},
	"compare":       {1000, 10, 100, "public"},
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ParseFlags parses the flags of a scenario (or compare) command. Unset
// flags take the scenario's defaults; the app credentials default to the
// REVERB_APP_ID/KEY/SECRET environment.
func ParseFlags(scenario string, args []string, stderr io.Writer) (Config, error) {
	d, ok := scenarioDefaults[scenario]
	if !ok {
		return Config{}, fmt.Errorf("bench: unknown scenario %q", scenario)
	}
	c := Config{Scenario: scenario}
	fs := flag.NewFlagSet(scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Host, "host", "127.0.0.1", "server host (IPv4 address or name)")
	fs.IntVar(&c.Port, "port", 8080, "server port")
	fs.StringVar(&c.Path, "path", "", "server path prefix, e.g. /ws")
	fs.StringVar(&c.AppID, "app-id", envOr("REVERB_APP_ID", "app-id"), "app id (HTTP API)")
	fs.StringVar(&c.Key, "key", envOr("REVERB_APP_KEY", "app-key"), "app key (WebSocket path)")
	fs.StringVar(&c.Secret, "secret", envOr("REVERB_APP_SECRET", "app-secret"), "app secret (signs API calls and channel auth)")
	fs.StringVar(&c.Origin, "origin", "", "Origin header for WebSocket upgrades")
	fs.IntVar(&c.Conns, "conns", d.conns, "WebSocket connections")
	fs.IntVar(&c.Channels, "channels", d.channels, "channels (whisper: derived from --group)")
	fs.Float64Var(&c.Rate, "rate", d.rate, "events/s (fanout, http; http 0 = closed loop), client events/s (whisper), cycles/s (churn)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured phase")
	fs.Float64Var(&c.Ramp, "ramp", 2000, "new connections per second (0 = unpaced)")
	fs.StringVar(&c.ChannelType, "channel-type", d.typ, "public, private or presence")
	fs.IntVar(&c.Group, "group", 10, "presence group size (whisper)")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes (0 = auto)")
	fs.IntVar(&c.Loops, "loops", 0, "epoll loops per worker (0 = auto)")
	fs.IntVar(&c.SrcIPs, "src-ips", 0, "source addresses 127.0.0.2.. for loopback targets (0 = auto, -1 = none)")
	pids := fs.String("server-pid", "", "server PID(s), comma separated, for CPU and RSS")
	fs.BoolVar(&c.JSON, "json", false, "print only the JSON result line on stdout")
	fs.IntVar(&c.Size, "size", 100, "event data size in bytes")
	fs.IntVar(&c.HTTPConns, "http-conns", 4, "publisher keep-alive connections")
	fs.StringVar(&c.Prefix, "prefix", "bench-", "channel name prefix")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 15*time.Second, "per-connection handshake timeout")
	fs.DurationVar(&c.PollGap, "poll-gap", 0, "worker loops sleep this long after a poll that returned events (batches reads; adds up to this much to latencies)")
	fs.BoolVar(&c.NoProgress, "no-progress", false, "no progress line on stderr")
	fs.DurationVar(&c.Hold, "hold", 0, "fanout: hold the subscribed sockets idle this long (answering pings) before publishing")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "churn: wait before the final server RSS reading")
	fs.IntVar(&c.RefLoops, "ref-loops", 0, "compare: reference server loops (0 = CPUs)")
	fs.Func("worker-nice", "run worker processes at this nice value (default: inherit)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < -20 || n > 19 {
			return errors.New("a nice value from -20 to 19")
		}
		c.WorkerNice = &n
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("bench: bad --server-pid %q", p)
		}
		c.ServerPIDs = append(c.ServerPIDs, n)
	}
	return c, nil
}

// normalize fills defaults and checks limits.
func (c *Config) normalize() error {
	switch c.ChannelType {
	case "":
		c.ChannelType = "public"
	case "public", "private", "presence":
	default:
		return fmt.Errorf("bench: --channel-type must be public, private or presence, not %q", c.ChannelType)
	}
	if c.Scenario == ScenarioWhisper && c.ChannelType == "public" {
		return errors.New("bench: whisper needs private or presence channels (client events)")
	}
	if c.Path != "" {
		c.Path = "/" + strings.Trim(c.Path, "/")
		if c.Path == "/" {
			c.Path = ""
		}
	}
	c.Group = max(c.Group, 2)
	switch c.Scenario {
	case ScenarioWhisper:
		c.Channels = (c.Conns + c.Group - 1) / c.Group
	case ScenarioHTTP:
		c.Conns, c.Channels = 1, 1
	case ScenarioChurn:
		c.Conns = 0
	}
	c.Channels = max(c.Channels, 1)
	if c.Conns < 0 || c.Rate < 0 || c.Ramp < 0 || c.PollGap < 0 || c.Duration <= 0 {
		return errors.New("bench: --conns, --rate, --ramp, --poll-gap must be >= 0 and --duration > 0")
	}
	if c.Scenario == ScenarioChurn && c.Rate <= 0 {
		return errors.New("bench: churn needs --rate > 0")
	}
	if c.Scenario == ScenarioFanout && c.Rate <= 0 {
		return errors.New("bench: fanout needs --rate > 0")
	}
	if c.Size <= 0 {
		c.Size = 100
	}
	c.HTTPConns = max(c.HTTPConns, 1)
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 15 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	need := max(1, (c.Conns+MaxSocketsPerWorker-1)/MaxSocketsPerWorker)
	if c.Workers == 0 {
		c.Workers = need
	}
	if c.Workers < need {
		return fmt.Errorf("bench: %d connections need at least %d workers (%d sockets each at most)", c.Conns, need, MaxSocketsPerWorker)
	}
	if c.InProcess {
		c.Workers = 1
		if c.Conns > MaxSocketsPerWorker/2 {
			return errors.New("bench: in-process runs are limited to 9000 connections")
		}
	}
	if c.Loops <= 0 {
		c.Loops = max(1, runtime.NumCPU()/c.Workers)
	}
	return nil
}

// resolveIPv4 turns the host into the IPv4 address workers dial.
func resolveIPv4(host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return a, errors.New("bench: only IPv4 targets are supported")
		}
		return a, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			return netip.AddrFrom4([4]byte(v4)), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("bench: %s has no IPv4 address", host)
}

// sourceIPs returns the addresses sockets bind to: for a loopback target,
// 127.0.0.2 upwards, enough that each carries at most ~16,000 sockets
// (including churn cycles in TIME_WAIT) of the ~28,000 ephemeral ports.
func sourceIPs(c *Config, target netip.Addr) []string {
	if c.SrcIPs < 0 || !target.IsLoopback() {
		return nil
	}
	n := c.SrcIPs
	if n == 0 {
		sockets := float64(c.Conns) + c.Rate*math.Min(c.Duration.Seconds(), 60)*boolf(c.Scenario == ScenarioChurn)
		n = int(math.Ceil(sockets / 16000))
	}
	n = min(max(n, 1), 250)
	out := make([]string, n)
	for i := range n {
		out[i] = "127.0.0." + strconv.Itoa(i+2)
	}
	return out
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
