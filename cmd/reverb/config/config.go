package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreverb/reverb/pusher"
	"gopkg.in/yaml.v3"
)

// Settings read by LoadConfig. Reverb's own names (PROTOCOL.md §10.2, §10.3)
// keep their meaning; the config file mirrors config/reverb.php, with server
// keys under servers.reverb and app keys under apps.apps[]. String values in
// the file are converted like env values ("60", "true", "null").
//
// Our extensions (not Reverb's), env var / key / default:
//
//	REVERB_CONFIG                    (none)                          path of the JSON/YAML config file
//	REVERB_TLS_CERT                  servers.reverb.options.tls.local_cert
//	REVERB_TLS_KEY                   servers.reverb.options.tls.local_pk
//	REVERB_TLS_PASSPHRASE            servers.reverb.options.tls.passphrase
//	REVERB_AUTH_TIMESTAMP_TOLERANCE  servers.reverb.timestamp_window     600 s; 0 = no check
//	REVERB_MAX_OUTBOUND_BUFFER       servers.reverb.max_outbound_buffer  4194304 bytes
//	REVERB_MAX_NODE_BUFFER           servers.reverb.max_node_buffer      268435456 bytes
//	REVERB_SOCKET_SNDBUF             servers.reverb.socket_sndbuf        131072 bytes; 0 = kernel autotuning
//	REVERB_STATE_DIR                 servers.reverb.state_dir            $TMPDIR/reverb
//	REVERB_DEBUG                     servers.reverb.debug                false
//	REVERB_REUSE_PORT                servers.reverb.reuse_port           false (SO_REUSEPORT)
//	REVERB_EVENT_LOOPS               servers.reverb.event_loops          0 = GOMAXPROCS (CPUs usable)
//	REVERB_HEAD_TIMEOUT              servers.reverb.head_timeout         10 s from a request's first byte
//	REVERB_MAX_PENDING_CONNECTIONS   servers.reverb.max_pending_connections  ulimit -n / 4; 0 = unlimited
//	REVERB_METRICS_ENABLED           servers.reverb.metrics.enabled      false
//	REVERB_METRICS_HOST              servers.reverb.metrics.host         127.0.0.1
//	REVERB_METRICS_PORT              servers.reverb.metrics.port         9601
//	REVERB_METRICS_TOKEN             servers.reverb.metrics.token        (none: no auth)
//	REVERB_SCALING_QUEUE_SIZE        servers.reverb.scaling.queue_size   16384 envelopes waiting for Redis
//	REVERB_SCALING_STATE_QUEUE_SIZE  servers.reverb.scaling.state_queue_size  65536 presence operations waiting
//	(none)                           servers.reverb.scaling.server.scheme  "tls" = TLS to Redis
//	REDIS_LIVENESS                   servers.reverb.scaling.server.liveness  3 s
//	REDIS_CLUSTER_NODES              servers.reverb.scaling.server.cluster_nodes  none (Redis Cluster)
//	REDIS_SENTINEL_NODES             servers.reverb.scaling.server.sentinel_nodes  none (Sentinel)
//	REDIS_SENTINEL_MASTER            servers.reverb.scaling.server.sentinel_master
//	REDIS_SENTINEL_PASSWORD          servers.reverb.scaling.server.sentinel_password
//	REVERB_APP_SIGNIN                apps.apps[].signin                  true
//	REVERB_APP_CACHE_TTL             apps.apps[].cache_ttl               1800 s
//	REVERB_APP_TERMINATE_CODE        apps.apps[].terminate_code          4009
//	REVERB_APP_WEBHOOK_URL           apps.apps[].webhooks[].url          none (all events to this URL)
//	REVERB_APP_WEBHOOK_EVENTS        apps.apps[].webhooks[].event_types  all (comma list for the env var)
//	(none)                           apps.apps[].webhooks[].headers, .filter.channel_name_starts_with/_ends_with
//	REVERB_WEBHOOK_BATCH_WINDOW      servers.reverb.webhooks.batch_window  0.25 s
//	REVERB_WEBHOOK_DELAY             servers.reverb.webhooks.delay         3 s (channel_vacated, member_removed)
//	REVERB_WEBHOOK_QUEUE_SIZE        servers.reverb.webhooks.queue_size    10000 events
//	REVERB_WEBHOOK_TIMEOUT           servers.reverb.webhooks.timeout       5 s per request
//	REVERB_APP_MAX_CHANNELS_PER_CONNECTION  apps.apps[].max_channels_per_connection  100; 0 = unlimited
//
// Anything else in the environment (BROADCAST_CONNECTION, REVERB_PORT,
// REVERB_SCHEME, VITE_*, Pulse/Telescope intervals, ...) is ignored.

// Config is everything `reverb start` needs, after every source has been
// merged. LoadConfig builds it once at startup; it is read-only afterwards
// and safe to read from any goroutine.
type Config struct {
	Host string // bind address; default 0.0.0.0
	Port int    // bind port; default 8080
	// Path is the route prefix P, normalised to "" or "/x" (§1).
	Path string
	// Hostname is the public host (REVERB_HOST / --hostname); when given as a
	// URL or host:port only its host part is kept. Used for the Herd/Valet
	// certificate lookup and the startup line.
	Hostname string
	// MaxRequestSize caps a whole HTTP request (head + body) in bytes (§8.2).
	MaxRequestSize int
	// Debug logs every frame in and out.
	Debug   bool
	TLS     TLSConfig
	Scaling ScalingConfig
	Metrics MetricsConfig
	// Apps are complete (pusher.App.WithDefaults applied), in configuration
	// order, with unique keys and ids.
	Apps []pusher.App
	// DevFile is, when Dev, the file in StateDir that keeps the development
	// app's credentials: generated at the first start, read at later ones,
	// so a frontend configured against them keeps working across restarts.
	// It is empty when they could not be kept; then DevFileErr says why and
	// the next start generates new ones.
	DevFile    string
	DevFileErr error

	// TimestampWindow is the accepted auth_timestamp skew of signed HTTP API
	// requests; 0 disables the check (Reverb's behaviour). Default 600 s.
	TimestampWindow time.Duration
	// MaxOutboundBuffer is how many bytes may wait for a slow consumer before
	// it is disconnected. Default 4 MiB.
	MaxOutboundBuffer int
	// MaxNodeBuffer is the node's budget for frames held for slow
	// consumers; past it the largest backlogs are closed. Default 256 MiB.
	MaxNodeBuffer int
	// SocketSendBuffer is SO_SNDBUF for every connection; 0 = the kernel's
	// autotuning. Default 128 KiB.
	SocketSendBuffer int
	// StateDir holds the state and pid files `reverb restart` uses.
	StateDir string
	// ReusePort sets SO_REUSEPORT so several processes serve one port
	// (scripts/multi-start.sh); useful only with scaling on.
	ReusePort bool
	// EventLoops is the number of event loops; 0 = runtime.GOMAXPROCS(0),
	// the CPUs the process may use. Several processes on one machine each
	// want fewer.
	EventLoops int
	// Webhooks are the node-level webhook settings.
	Webhooks WebhookConfig
	// HeadTimeout is how long an HTTP request may take from its first byte
	// until it is complete. Default 10 s.
	HeadTimeout time.Duration
	// MaxPendingConnections bounds the connections not yet upgraded to
	// WebSocket: 0 (unset) = a quarter of the open-file limit, negative
	// (configured as 0) = unlimited.
	MaxPendingConnections int
	// Dev is true when no app was configured at all and a development app
	// with random credentials was generated (Apps has exactly that app).
	Dev bool
}

// WebhookConfig is servers.reverb.webhooks; zero values mean the
// webhook package's defaults.
type WebhookConfig struct {
	Batch     time.Duration // batch_window
	Delay     time.Duration // delay of channel_vacated and member_removed
	QueueSize int           // events waiting to be delivered
	Timeout   time.Duration // per request
}

// TLSConfig is servers.reverb.options.tls. Cert may also hold the key. All
// empty means plain TCP unless ResolveTLS finds a Herd/Valet certificate.
type TLSConfig struct {
	Cert       string // local_cert: PEM file path
	Key        string // local_pk: PEM file path
	Passphrase string // passphrase of an encrypted key
}

// MetricsConfig is servers.reverb.metrics: the Prometheus endpoint and
// dashboard listener (cmd/reverb/monitor).
type MetricsConfig struct {
	Enabled bool
	Host    string // default 127.0.0.1: not exposed unless asked
	Port    int    // default 9601
	Token   string // bearer token required when set
}

// ScalingConfig is servers.reverb.scaling (§11).
type ScalingConfig struct {
	Enabled bool
	Channel string // Redis pub/sub channel; default "reverb"
	Redis   RedisConfig
	// QueueSize bounds the envelopes waiting for Redis
	// (REVERB_SCALING_QUEUE_SIZE); default 16384.
	QueueSize int
	// StateQueueSize bounds the presence operations waiting for Redis
	// (REVERB_SCALING_STATE_QUEUE_SIZE); default 65536.
	StateQueueSize int
}

// RedisConfig is servers.reverb.scaling.server after REDIS_URL (if any) has
// overridden the separate fields.
type RedisConfig struct {
	Host     string // default 127.0.0.1
	Port     int    // default 6379
	Username string
	Password string
	DB       int
	// Timeout is how long one connection attempt may take (Laravel's
	// connect timeout); default 60 s.
	Timeout time.Duration
	// Liveness is how long a connected Redis may leave a command or PING
	// unanswered (REDIS_LIVENESS); default 3 s.
	Liveness time.Duration
	TLS      bool // rediss:// or tls:// URL, or scheme: tls
	// ClusterNodes selects Redis Cluster mode (REDIS_CLUSTER_NODES).
	ClusterNodes []string
	// SentinelNodes, SentinelMaster and SentinelPassword select Sentinel
	// mode (REDIS_SENTINEL_NODES, _MASTER, _PASSWORD).
	SentinelNodes    []string
	SentinelMaster   string
	SentinelPassword string
}

// Flags are the `reverb start` flags; nil pointers were not given. Empty
// strings count as not given, as Reverb's `--host=` falls back to config.
type Flags struct {
	Host, Path, Hostname, ConfigFile, EnvFile *string
	Port                                      *int
	Debug                                     *bool
}

// Defaults (Reverb's, plus ours for the extensions).
const (
	defaultHost              = "0.0.0.0"
	defaultPort              = 8080
	defaultMaxRequestSize    = 10_000
	defaultScalingChannel    = "reverb"
	defaultRedisHost         = "127.0.0.1"
	defaultRedisPort         = 6379
	defaultRedisTimeout      = 60 * time.Second
	defaultRedisLiveness     = 3 * time.Second
	defaultScalingQueue      = 16384
	defaultScalingStateQueue = 65536
	defaultTimestampWindow   = 600 * time.Second
	defaultMaxOutboundBuffer = 4 << 20
	defaultMaxNodeBuffer     = 256 << 20
	defaultSocketSendBuffer  = 128 << 10
	defaultMetricsHost       = "127.0.0.1"
	defaultMetricsPort       = 9601
	defaultHeadTimeout       = 10 * time.Second
)

// LoadConfig merges, highest first: flags > config file > process environment
// > .env file > defaults (§10.1). environ is os.Environ()-style. The .env path
// is flags.EnvFile or ./.env; a missing ./.env is fine, a missing named file
// is an error. The config file is flags.ConfigFile or $REVERB_CONFIG. When the
// file lists apps they are all the apps; otherwise the REVERB_APP_* variables
// describe one app; with neither, the development app kept in StateDir is
// served (Dev), generated and saved there the first time (see devApp).
// Duplicate app keys or ids are refused. Any goroutine may call it, normally
// once at startup; it reads files (and may create the development app's)
// but keeps nothing open, and the returned Config shares no memory with
// later calls.
func LoadConfig(flags Flags, environ []string) (*Config, error) {
	process := parseEnviron(environ)
	envPath, explicit := ".env", false
	if s := flagString(flags.EnvFile); s != "" {
		envPath, explicit = s, true
	}
	env, err := loadDotenv(envPath, explicit, process)
	if err != nil {
		return nil, err
	}
	for k, v := range process {
		env[k] = v // Laravel's Dotenv never overwrites the process environment.
	}
	src := &sources{env: env}
	path := flagString(flags.ConfigFile)
	if path == "" {
		if v, ok := envValue(env["REVERB_CONFIG"]).(string); ok {
			path = v
		}
	}
	if path != "" {
		if src.file, err = loadConfigFile(path); err != nil {
			return nil, err
		}
		src.fileName = path
	}
	c := &Config{}
	if err := src.server(c, flags); err != nil {
		return nil, err
	}
	if err := src.loadApps(c); err != nil {
		return nil, err
	}
	return c, nil
}

func flagString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// sources are the merged environment and the parsed config file.
type sources struct {
	env      map[string]string // raw strings, process environment over .env
	file     map[string]any    // normalised by normaliseFile; nil without a file
	fileName string
}

// setting is one value as PHP's config array would hold it after env():
// nil (absent or null), bool, string, int64, float64, []any or map[string]any.
type setting struct {
	v   any
	src string // env var or "file: key.path", for error messages
}

func (s *sources) fromEnv(name string) setting {
	raw, ok := s.env[name]
	if !ok {
		return setting{}
	}
	return setting{v: envValue(raw), src: name}
}

// pick returns the config file's value at servers.reverb.<keys> when present
// and not null, else the env var's.
func (s *sources) pick(env string, keys ...string) setting {
	path := append([]string{"servers", "reverb"}, keys...)
	if v := lookup(s.file, path...); v != nil {
		return setting{v: v, src: s.fileName + ": " + strings.Join(path, ".")}
	}
	if env == "" {
		return setting{}
	}
	return s.fromEnv(env)
}

// lookup walks nested maps; it returns nil when any step is missing.
func lookup(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func (st setting) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", st.src, fmt.Sprintf(format, args...))
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// str returns a string setting; numbers are accepted (app_id: 123456).
func (st setting) str(def string) (string, error) {
	switch v := st.v.(type) {
	case nil:
		return def, nil
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", st.errorf("expected a string, got %s", describe(st.v))
}

// nonEmpty is str where an empty value also means the default.
func (st setting) nonEmpty(def string) (string, error) {
	s, err := st.str(def)
	if s == "" {
		s = def
	}
	return s, err
}

// integer accepts integers, integral floats and strings holding an integer;
// "" counts as unset.
func (st setting) integer(def, min int) (int, error) {
	n := def
	switch v := st.v.(type) {
	case nil:
	case int64:
		n = int(v)
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, st.errorf("%s is not an integer", describe(v))
		}
		n = int(v)
	case string:
		t := strings.TrimSpace(v)
		if t == "" {
			break
		}
		i, err := strconv.ParseInt(t, 10, 0)
		if err != nil {
			return 0, st.errorf("%s is not an integer", describe(v))
		}
		n = int(i)
	default:
		return 0, st.errorf("%s is not an integer", describe(st.v))
	}
	if n < min {
		return 0, st.errorf("%d is below the minimum of %d", n, min)
	}
	return n, nil
}

// seconds reads a number of seconds (fractions allowed); "" counts as unset.
func (st setting) seconds(def time.Duration) (time.Duration, error) {
	var f float64
	switch v := st.v.(type) {
	case nil:
		return def, nil
	case int64:
		f = float64(v)
	case float64:
		f = v
	case string:
		t := strings.TrimSpace(v)
		if t == "" {
			return def, nil
		}
		var err error
		if f, err = strconv.ParseFloat(t, 64); err != nil {
			return 0, st.errorf("%s is not a number of seconds", describe(v))
		}
	default:
		return 0, st.errorf("%s is not a number of seconds", describe(st.v))
	}
	if f < 0 || math.IsNaN(f) || f > math.MaxInt64/float64(time.Second) {
		return 0, st.errorf("%s is out of range", describe(st.v))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// truthy applies PHP's (bool) cast: "", "0", 0 and empty lists are false,
// every other value is true.
func (st setting) truthy(def bool) bool {
	switch v := st.v.(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		return v != "" && v != "0"
	case int64:
		return v != 0
	case float64:
		return v != 0
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

func (s *sources) server(c *Config, f Flags) error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	var e error
	c.Host, e = s.pick("REVERB_SERVER_HOST", "host").nonEmpty(defaultHost)
	add(e)
	port := s.pick("REVERB_SERVER_PORT", "port")
	c.Port, e = port.integer(defaultPort, 0)
	add(e)
	if c.Port > 65535 {
		add(port.errorf("port %d is out of range", c.Port))
	}
	path, e := s.pick("REVERB_SERVER_PATH", "path").str("")
	add(e)
	hostname, e := s.pick("REVERB_HOST", "hostname").str("")
	add(e)
	c.MaxRequestSize, e = s.pick("REVERB_MAX_REQUEST_SIZE", "max_request_size").integer(defaultMaxRequestSize, 1)
	add(e)
	c.Debug = s.pick("REVERB_DEBUG", "debug").truthy(false)
	c.ReusePort = s.pick("REVERB_REUSE_PORT", "reuse_port").truthy(false)
	c.EventLoops, e = s.pick("REVERB_EVENT_LOOPS", "event_loops").integer(0, 0)
	add(e)
	c.HeadTimeout, e = s.pick("REVERB_HEAD_TIMEOUT", "head_timeout").seconds(defaultHeadTimeout)
	add(e)
	if c.HeadTimeout < time.Second {
		c.HeadTimeout = time.Second // the server's clock has one-second steps
	}
	// Unset (or -1) leaves 0, the open-file-limit default; 0 means unlimited.
	pending, e := s.pick("REVERB_MAX_PENDING_CONNECTIONS", "max_pending_connections").integer(-1, -1)
	add(e)
	switch pending {
	case -1:
		c.MaxPendingConnections = 0
	case 0:
		c.MaxPendingConnections = -1
	default:
		c.MaxPendingConnections = pending
	}

	c.TLS.Cert, e = s.pick("REVERB_TLS_CERT", "options", "tls", "local_cert").str("")
	add(e)
	c.TLS.Key, e = s.pick("REVERB_TLS_KEY", "options", "tls", "local_pk").str("")
	add(e)
	c.TLS.Passphrase, e = s.pick("REVERB_TLS_PASSPHRASE", "options", "tls", "passphrase").str("")
	add(e)

	c.TimestampWindow, e = s.pick("REVERB_AUTH_TIMESTAMP_TOLERANCE", "timestamp_window").seconds(defaultTimestampWindow)
	add(e)
	c.MaxOutboundBuffer, e = s.pick("REVERB_MAX_OUTBOUND_BUFFER", "max_outbound_buffer").integer(defaultMaxOutboundBuffer, 1)
	add(e)
	c.MaxNodeBuffer, e = s.pick("REVERB_MAX_NODE_BUFFER", "max_node_buffer").integer(defaultMaxNodeBuffer, 1)
	add(e)
	c.SocketSendBuffer, e = s.pick("REVERB_SOCKET_SNDBUF", "socket_sndbuf").integer(defaultSocketSendBuffer, 0)
	add(e)
	c.StateDir, e = s.pick("REVERB_STATE_DIR", "state_dir").nonEmpty(filepath.Join(os.TempDir(), "reverb"))
	add(e)
	add(s.scaling(&c.Scaling))
	add(s.webhooks(&c.Webhooks))
	c.Metrics.Enabled = s.pick("REVERB_METRICS_ENABLED", "metrics", "enabled").truthy(false)
	c.Metrics.Host, e = s.pick("REVERB_METRICS_HOST", "metrics", "host").nonEmpty(defaultMetricsHost)
	add(e)
	c.Metrics.Port, e = s.pick("REVERB_METRICS_PORT", "metrics", "port").integer(defaultMetricsPort, 0)
	add(e)
	c.Metrics.Token, e = s.pick("REVERB_METRICS_TOKEN", "metrics", "token").str("")
	add(e)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	if v := flagString(f.Host); v != "" {
		c.Host = v
	}
	if f.Port != nil {
		if *f.Port < 0 || *f.Port > 65535 {
			return fmt.Errorf("--port %d is out of range", *f.Port)
		}
		c.Port = *f.Port
	}
	if v := flagString(f.Path); v != "" {
		path = v
	}
	if v := flagString(f.Hostname); v != "" {
		hostname = v
	}
	if f.Debug != nil {
		c.Debug = *f.Debug
	}
	c.Path = normalisePath(path)
	c.Hostname = hostPart(hostname)
	return nil
}

// normalisePath turns "ws", "/ws" and "/ws/" into "/ws", and "" or "/" into "".
func normalisePath(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return ""
	}
	return "/" + p
}

// hostPart keeps the host of a hostname given as a URL ("https://ws.test")
// or host:port ("ws.test:443"), like PHP's parse_url in Reverb's Certificate.
func hostPart(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") || strings.HasPrefix(s, "//") {
		if u, err := url.Parse(s); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
		return s
	}
	if h, port, err := net.SplitHostPort(s); err == nil && h != "" && isDigits(port) {
		return h
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (s *sources) scaling(sc *ScalingConfig) error {
	sc.Enabled = s.pick("REVERB_SCALING_ENABLED", "scaling", "enabled").truthy(false)
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	var e error
	sc.Channel, e = s.pick("REVERB_SCALING_CHANNEL", "scaling", "channel").nonEmpty(defaultScalingChannel)
	add(e)
	sc.QueueSize, e = s.pick("REVERB_SCALING_QUEUE_SIZE", "scaling", "queue_size").integer(defaultScalingQueue, 1)
	add(e)
	sc.StateQueueSize, e = s.pick("REVERB_SCALING_STATE_QUEUE_SIZE", "scaling", "state_queue_size").integer(defaultScalingStateQueue, 1)
	add(e)
	server := func(env, key string) setting { return s.pick(env, "scaling", "server", key) }
	r := &sc.Redis
	r.Host, e = server("REDIS_HOST", "host").nonEmpty(defaultRedisHost)
	add(e)
	r.Port, e = server("REDIS_PORT", "port").integer(defaultRedisPort, 1)
	add(e)
	r.Username, e = server("REDIS_USERNAME", "username").str("")
	add(e)
	r.Password, e = server("REDIS_PASSWORD", "password").str("")
	add(e)
	r.DB, e = server("REDIS_DB", "database").integer(0, 0)
	add(e)
	r.Timeout, e = server("REDIS_TIMEOUT", "timeout").seconds(defaultRedisTimeout)
	add(e)
	r.Liveness, e = server("REDIS_LIVENESS", "liveness").seconds(defaultRedisLiveness)
	add(e)
	if r.Liveness <= 0 {
		r.Liveness = defaultRedisLiveness
	}
	r.ClusterNodes, e = server("REDIS_CLUSTER_NODES", "cluster_nodes").addrList()
	add(e)
	r.SentinelNodes, e = server("REDIS_SENTINEL_NODES", "sentinel_nodes").addrList()
	add(e)
	r.SentinelMaster, e = server("REDIS_SENTINEL_MASTER", "sentinel_master").str("")
	add(e)
	r.SentinelPassword, e = server("REDIS_SENTINEL_PASSWORD", "sentinel_password").str("")
	add(e)
	switch {
	case len(r.ClusterNodes) > 0 && len(r.SentinelNodes) > 0:
		add(errors.New("REDIS_CLUSTER_NODES and REDIS_SENTINEL_NODES are both set; choose one Redis mode"))
	case len(r.SentinelNodes) > 0 && r.SentinelMaster == "":
		add(errors.New("REDIS_SENTINEL_NODES is set but REDIS_SENTINEL_MASTER (the master name) is not"))
	}
	scheme, e := server("", "scheme").str("")
	add(e)
	switch strings.ToLower(scheme) {
	case "tls", "rediss":
		r.TLS = true
	}
	u := server("REDIS_URL", "url")
	raw, e := u.str("")
	add(e)
	if raw != "" {
		if e := applyRedisURL(r, raw); e != nil {
			add(u.errorf("%v", e))
		}
	}
	return errors.Join(errs...)
}

// addrList reads "host:port" addresses: a comma-separated string (env) or
// a list of strings (config file).
func (st setting) addrList() ([]string, error) {
	var parts []string
	switch v := st.v.(type) {
	case nil:
		return nil, nil
	case string:
		parts = strings.Split(v, ",")
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, st.errorf("want a list of host:port strings, got %s", describe(v))
			}
			parts = append(parts, s)
		}
	default:
		return nil, st.errorf("want host:port addresses, got %s", describe(v))
	}
	var out []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return nil, st.errorf("%q is not host:port", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// applyRedisURL overrides r with the parts present in a Laravel-style Redis
// URL: scheme redis/tcp (plain) or rediss/tls (TLS), user and password from
// the authority, database from the path; query parameters username,
// password, db and database win over those, as Laravel merges the query last.
func applyRedisURL(r *RedisConfig, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "redis", "tcp":
		r.TLS = false
	case "rediss", "tls":
		r.TLS = true
	default:
		return fmt.Errorf("unsupported scheme %q (use redis://, rediss://, tcp:// or tls://)", u.Scheme)
	}
	if h := u.Hostname(); h != "" {
		r.Host = h
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port %q", p)
		}
		r.Port = n
	}
	if u.User != nil {
		r.Username = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			r.Password = pw
		}
	}
	db := strings.Trim(u.Path, "/")
	q := u.Query()
	if q.Has("username") {
		r.Username = q.Get("username")
	}
	if q.Has("password") {
		r.Password = q.Get("password")
	}
	for _, k := range []string{"database", "db"} {
		if q.Has(k) {
			db = q.Get(k)
		}
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid database %q", db)
		}
		r.DB = n
	}
	return nil
}

// appSource reads one app's settings: from the environment for the env app,
// from one apps.apps[] entry for file apps.
type appSource struct {
	s     *sources
	entry map[string]any    // nil for the env app
	label string            // "file: apps.apps[1]" or "environment"
	ids   map[string]string // generated credentials of the dev app, by env name
}

func (a appSource) get(env string, keys ...string) setting {
	if a.entry == nil {
		if v, ok := a.ids[env]; ok {
			return setting{v: v, src: env}
		}
		if env == "" {
			return setting{}
		}
		return a.s.fromEnv(env)
	}
	v := lookup(a.entry, keys...)
	if v == nil {
		return setting{}
	}
	return setting{v: v, src: a.label + "." + strings.Join(keys, ".")}
}

func (s *sources) loadApps(c *Config) error {
	entries, err := s.fileApps()
	if err != nil {
		return err
	}
	var apps []pusher.App
	if len(entries) > 0 {
		for i, e := range entries {
			a, err := buildApp(appSource{s: s, entry: e, label: fmt.Sprintf("%s: apps.apps[%d]", s.fileName, i)})
			if err != nil {
				return err
			}
			apps = append(apps, a)
		}
	} else {
		env := appSource{s: s, label: "environment"}
		present := 0
		var missing []string
		for _, name := range []string{"REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET"} {
			v, err := env.get(name).str("")
			if err != nil {
				return err
			}
			if v != "" {
				present++
			} else {
				missing = append(missing, name)
			}
		}
		switch present {
		case 0:
			a, err := devApp(env, c)
			if err != nil {
				return err
			}
			apps, c.Dev = []pusher.App{a}, true
		case 3:
			a, err := buildApp(env)
			if err != nil {
				return err
			}
			apps = []pusher.App{a}
		default:
			return fmt.Errorf("app is only partly configured: %s must be set too (set all of REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET, or none for a development app)", strings.Join(missing, " and "))
		}
	}
	set, err := pusher.NewAppSet(apps)
	if err != nil {
		if s.file != nil && len(entries) > 0 {
			return fmt.Errorf("%s: %w", s.fileName, err)
		}
		return err
	}
	for _, a := range set.All() {
		c.Apps = append(c.Apps, *a)
	}
	return nil
}

// fileApps returns the apps.apps entries of the config file (a bare list
// under "apps" is accepted too).
func (s *sources) fileApps() ([]map[string]any, error) {
	if s.file == nil {
		return nil, nil
	}
	if p := lookup(s.file, "apps", "provider"); p != nil && p != "config" {
		return nil, fmt.Errorf("%s: apps.provider %s is not supported; only \"config\" is", s.fileName, describe(p))
	}
	list := lookup(s.file, "apps", "apps")
	if l, ok := s.file["apps"].([]any); ok {
		list = l
	}
	if list == nil {
		return nil, nil
	}
	items, ok := list.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: apps.apps must be a list of apps", s.fileName)
	}
	out := make([]map[string]any, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: apps.apps[%d] must be an object", s.fileName, i)
		}
		out = append(out, m)
	}
	return out, nil
}

// buildApp reads one app. Absent keys take config/reverb.php's defaults for
// the env app and Reverb's fallbacks for absent array keys for file apps
// (§10.3: accept_client_events_from → all, rate_limiting.decay_seconds → 1).
func buildApp(a appSource) (pusher.App, error) {
	var app pusher.App
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	var e error
	fromFile := a.entry != nil

	app.ID, e = a.get("REVERB_APP_ID", "app_id").str("")
	add(e)
	app.Key, e = a.get("REVERB_APP_KEY", "key").str("")
	add(e)
	app.Secret, e = a.get("REVERB_APP_SECRET", "secret").str("")
	add(e)
	if fromFile {
		for _, k := range []struct{ name, v string }{{"app_id", app.ID}, {"key", app.Key}, {"secret", app.Secret}} {
			if k.v == "" {
				add(fmt.Errorf("%s: %s is missing", a.label, k.name))
			}
		}
	}

	app.AllowedOrigins = []string{"*"}
	if o := a.get("", "allowed_origins"); o.v != nil {
		list, ok := o.v.([]any)
		if !ok || len(list) == 0 {
			add(o.errorf("must be a non-empty list of origins (use [\"*\"] to allow all)"))
		} else {
			app.AllowedOrigins = app.AllowedOrigins[:0]
			for _, it := range list {
				s, err := (setting{v: it, src: o.src}).str("")
				add(err)
				app.AllowedOrigins = append(app.AllowedOrigins, s)
			}
		}
	}

	ping, e := a.get("REVERB_APP_PING_INTERVAL", "ping_interval").integer(int(pusher.DefaultPingInterval/time.Second), 1)
	add(e)
	app.PingInterval = time.Duration(ping) * time.Second
	app.ActivityTimeout, e = a.get("REVERB_APP_ACTIVITY_TIMEOUT", "activity_timeout").integer(pusher.DefaultActivityTimeout, 1)
	add(e)
	// Reverb rejects every socket with max_connections 0; pusher.App has no
	// way to say so, and 0 most likely meant "no limit" anyway.
	app.MaxConnections, e = a.get("REVERB_APP_MAX_CONNECTIONS", "max_connections").integer(0, 0)
	add(e)
	app.MaxMessageSize, e = a.get("REVERB_APP_MAX_MESSAGE_SIZE", "max_message_size").integer(pusher.DefaultMaxMessageSize, 1)
	add(e)
	app.MaxChannels, e = a.get("REVERB_APP_MAX_CHANNELS_PER_CONNECTION", "max_channels_per_connection").integer(pusher.DefaultMaxChannels, 0)
	add(e)
	if app.MaxChannels == 0 {
		app.MaxChannels = -1 // 0 = unlimited; pusher.App says so with a negative value
	}

	mode := "members"
	if fromFile {
		mode = "all"
	}
	ce := a.get("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", "accept_client_events_from")
	if ce.v != nil {
		mode, e = ce.str("")
		add(e)
		if mode == "" {
			mode = "none" // a present but empty value is neither members nor all
		}
	}
	app.ClientEvents = pusher.ParseClientEvents(mode)

	// PHP strict comparison: only a real boolean true enables it (§8.3, §14#14).
	app.RateLimit.Enabled = a.get("REVERB_APP_RATE_LIMITING_ENABLED", "rate_limiting", "enabled").v == true
	app.RateLimit.MaxAttempts, e = a.get("REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS", "rate_limiting", "max_attempts").integer(60, 1)
	add(e)
	decayDefault := 60 * time.Second
	if fromFile && lookup(a.entry, "rate_limiting") != nil {
		decayDefault = time.Second
	}
	decay, e := a.get("REVERB_APP_RATE_LIMIT_DECAY_SECONDS", "rate_limiting", "decay_seconds").integer(int(decayDefault/time.Second), 1)
	add(e)
	app.RateLimit.Decay = time.Duration(decay) * time.Second
	app.RateLimit.Terminate = a.get("REVERB_APP_RATE_LIMIT_TERMINATE", "rate_limiting", "terminate_on_limit").truthy(false)

	app.Signin = a.get("REVERB_APP_SIGNIN", "signin").truthy(true)
	app.CacheTTL, e = a.get("REVERB_APP_CACHE_TTL", "cache_ttl").seconds(pusher.DefaultCacheTTL)
	add(e)
	if app.CacheTTL == 0 {
		add(fmt.Errorf("%s: cache_ttl must be positive", a.label))
	}
	tc := a.get("REVERB_APP_TERMINATE_CODE", "terminate_code")
	app.TerminateCode, e = tc.integer(pusher.DefaultTerminateCode, 0)
	add(e)
	if e == nil && (app.TerminateCode < 4000 || app.TerminateCode > 4999) {
		add(tc.errorf("%d is not a Pusher close code (4000-4999)", app.TerminateCode))
	}
	app.Webhooks, e = a.webhooks()
	add(e)
	if err := errors.Join(errs...); err != nil {
		return pusher.App{}, err
	}
	return app.WithDefaults(), nil
}

// loadConfigFile reads a JSON (.json) or YAML (.yaml, .yml) file mirroring
// config/reverb.php.
func loadConfigFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var root any
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err = dec.Decode(&root); err == nil {
			if dec.Decode(new(any)) != io.EOF {
				err = errors.New("unexpected data after the top-level object")
			}
		} else if err == io.EOF {
			err = nil
		}
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &root)
	default:
		return nil, fmt.Errorf("config file %s: unknown format %q (use .json, .yaml or .yml)", path, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	root = normaliseFile(root)
	if root == nil {
		return map[string]any{}, nil
	}
	m, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config file %s: the top level must be an object", path)
	}
	return m, nil
}

// normaliseFile maps decoded JSON/YAML onto the value kinds setting
// understands. Strings go through envValue, so a file may spell values the
// way a .env does ("60", "true", "null").
func normaliseFile(v any) any {
	switch v := v.(type) {
	case string:
		return envValue(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case int:
		return int64(v)
	case int64:
		return v
	case uint64:
		return int64(min(v, math.MaxInt64))
	case float64:
		return v
	case map[string]any:
		for k, x := range v {
			v[k] = normaliseFile(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = normaliseFile(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = normaliseFile(x)
		}
		return v
	case nil, bool:
		return v
	}
	return fmt.Sprint(v)
}

// webhooks reads servers.reverb.webhooks (node-level webhook settings).
func (s *sources) webhooks(w *WebhookConfig) error {
	var errs []error
	var e error
	w.Batch, e = s.pick("REVERB_WEBHOOK_BATCH_WINDOW", "webhooks", "batch_window").seconds(0)
	errs = append(errs, e)
	w.Delay, e = s.pick("REVERB_WEBHOOK_DELAY", "webhooks", "delay").seconds(0)
	errs = append(errs, e)
	w.QueueSize, e = s.pick("REVERB_WEBHOOK_QUEUE_SIZE", "webhooks", "queue_size").integer(0, 0)
	errs = append(errs, e)
	w.Timeout, e = s.pick("REVERB_WEBHOOK_TIMEOUT", "webhooks", "timeout").seconds(0)
	errs = append(errs, e)
	return errors.Join(errs...)
}

// webhooks reads an app's webhook targets: the env app's
// REVERB_APP_WEBHOOK_URL / REVERB_APP_WEBHOOK_EVENTS, or a file app's
// webhooks list in soketi's shape.
func (a appSource) webhooks() ([]pusher.Webhook, error) {
	if a.entry == nil {
		if u, err := a.get("REVERB_APP_WEBHOOK_URL", "").str(""); err != nil || u == "" {
			return nil, err
		}
		ev := a.get("REVERB_APP_WEBHOOK_EVENTS", "")
		list, err := ev.str("")
		if err != nil {
			return nil, err
		}
		var names []any
		for _, n := range strings.Split(list, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		var h pusher.Webhook
		if h.URL, err = webhookURL(a.get("REVERB_APP_WEBHOOK_URL", "")); err != nil {
			return nil, err
		}
		if h.Events, err = hookEvents(ev, names); err != nil {
			return nil, err
		}
		return []pusher.Webhook{h}, nil
	}
	st := a.get("", "webhooks")
	if st.v == nil {
		return nil, nil
	}
	items, ok := st.v.([]any)
	if !ok {
		return nil, st.errorf("must be a list of {url, event_types, headers, filter}")
	}
	var out []pusher.Webhook
	var errs []error
	for i, it := range items {
		m, ok := it.(map[string]any)
		src := fmt.Sprintf("%s[%d]", st.src, i)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: must be an object with a url", src))
			continue
		}
		at := func(keys ...string) setting {
			return setting{v: lookup(m, keys...), src: src + "." + strings.Join(keys, ".")}
		}
		var h pusher.Webhook
		var e error
		h.URL, e = webhookURL(at("url"))
		errs = append(errs, e)
		if et := at("event_types"); et.v != nil {
			names, ok := et.v.([]any)
			if !ok {
				errs = append(errs, et.errorf("must be a list of event names"))
			} else {
				h.Events, e = hookEvents(et, names)
				errs = append(errs, e)
			}
		}
		if hd := at("headers"); hd.v != nil {
			hm, ok := hd.v.(map[string]any)
			if !ok {
				errs = append(errs, hd.errorf("must be an object of header names and values"))
			}
			for k, v := range hm {
				if h.Headers == nil {
					h.Headers = make(map[string]string)
				}
				h.Headers[k], e = setting{v: v, src: hd.src + "." + k}.str("")
				errs = append(errs, e)
			}
		}
		h.Prefix, e = at("filter", "channel_name_starts_with").str("")
		errs = append(errs, e)
		h.Suffix, e = at("filter", "channel_name_ends_with").str("")
		errs = append(errs, e)
		out = append(out, h)
	}
	return out, errors.Join(errs...)
}

// webhookURL requires an absolute http(s) URL.
func webhookURL(st setting) (string, error) {
	s, err := st.str("")
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", st.errorf("%s is not an http:// or https:// URL", describe(st.v))
	}
	return s, nil
}

// hookEvents maps event names to a set; empty means every event.
func hookEvents(st setting, names []any) (pusher.HookMask, error) {
	var m pusher.HookMask
	for _, n := range names {
		s, _ := n.(string)
		k, ok := pusher.ParseHookKind(s)
		if !ok {
			return 0, st.errorf("%s is not a webhook event (channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, subscription_count)", describe(n))
		}
		m = m.With(k)
	}
	return m, nil
}
