package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goreverb/reverb/pusher"
)

// appEnv configures one app through the environment, so tests that are not
// about apps do not get a random development app.
var appEnv = []string{"REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s"}

// load runs LoadConfig; callers t.Chdir into a temporary directory first so
// the default ./.env is absent unless the test writes one there.
func load(t *testing.T, flags Flags, environ ...string) (*Config, error) {
	t.Helper()
	return LoadConfig(flags, environ)
}

func mustLoad(t *testing.T, flags Flags, environ ...string) *Config {
	t.Helper()
	c, err := load(t, flags, environ...)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func TestDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{}, appEnv...)
	want := Config{
		Host:              "0.0.0.0",
		Port:              8080,
		MaxRequestSize:    10_000,
		Scaling:           ScalingConfig{Channel: "reverb", Redis: RedisConfig{Host: "127.0.0.1", Port: 6379, Timeout: 60 * time.Second, Liveness: 3 * time.Second}, QueueSize: 16384, StateQueueSize: 65536},
		Metrics:           MetricsConfig{Host: "127.0.0.1", Port: 9601},
		TimestampWindow:   600 * time.Second,
		MaxOutboundBuffer: 4 << 20,
		HeadTimeout:       10 * time.Second,
		MaxNodeBuffer:     256 << 20,
		SocketSendBuffer:  128 << 10,
		StateDir:          filepath.Join(os.TempDir(), "reverb"),
		Apps: []pusher.App{{
			ID: "1", Key: "k", Secret: "s",
			AllowedOrigins:  []string{"*"},
			PingInterval:    60 * time.Second,
			ActivityTimeout: 30,
			MaxMessageSize:  10_000,
			MaxChannels:     100,
			ClientEvents:    pusher.ClientEventsMembers, // config/reverb.php's default
			RateLimit:       pusher.RateLimit{MaxAttempts: 60, Decay: 60 * time.Second},
			Signin:          true,
			CacheTTL:        30 * time.Minute,
			TerminateCode:   4009,
		}},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", *c, want)
	}
}

// TestPrecedence sets one setting at every level that has it, for every
// combination of levels, and expects the highest present level to win:
// flag > config file > process env > .env > default.
func TestPrecedence(t *testing.T) {
	type level struct {
		name  string
		value string
	}
	settings := []struct {
		env, fileKey string
		hasFlag      bool
		setFlag      func(*Flags, string)
		get          func(*Config) string
		values       [4]string // flag, file, env, .env
		def          string
	}{
		{"REVERB_SERVER_PORT", "port", true, func(f *Flags, v string) { n, _ := strconv.Atoi(v); f.Port = &n },
			func(c *Config) string { return strconv.Itoa(c.Port) }, [4]string{"1001", "1002", "1003", "1004"}, "8080"},
		{"REVERB_SERVER_HOST", "host", true, func(f *Flags, v string) { f.Host = &v },
			func(c *Config) string { return c.Host }, [4]string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, "0.0.0.0"},
		{"REVERB_SERVER_PATH", "path", true, func(f *Flags, v string) { f.Path = &v },
			func(c *Config) string { return c.Path }, [4]string{"flag", "/file/", "env/", "/dotenv"}, ""},
		{"REVERB_HOST", "hostname", true, func(f *Flags, v string) { f.Hostname = &v },
			func(c *Config) string { return c.Hostname }, [4]string{"flag.test", "file.test", "env.test", "dotenv.test"}, ""},
		{"REVERB_MAX_REQUEST_SIZE", "max_request_size", false, nil,
			func(c *Config) string { return strconv.Itoa(c.MaxRequestSize) }, [4]string{"", "2002", "2003", "2004"}, "10000"},
		{"REVERB_DEBUG", "debug", true, func(f *Flags, v string) { b := v == "true"; f.Debug = &b },
			func(c *Config) string { return strconv.FormatBool(c.Debug) }, [4]string{"false", "true", "false", "true"}, "false"},
	}
	for _, s := range settings {
		for mask := 0; mask < 16; mask++ {
			present := func(i int) bool { return mask&(1<<i) != 0 }
			if present(0) && !s.hasFlag {
				continue
			}
			t.Run(fmt.Sprintf("%s/%04b", s.env, mask), func(t *testing.T) {
				dir := t.TempDir()
				t.Chdir(dir)
				var flags Flags
				environ := append([]string(nil), appEnv...)
				if present(0) {
					s.setFlag(&flags, s.values[0])
				}
				if present(1) {
					p := writeFile(t, dir, "reverb.json", fmt.Sprintf(`{"servers":{"reverb":{%q:%q}}}`, s.fileKey, s.values[1]))
					flags.ConfigFile = &p
				}
				if present(2) {
					environ = append(environ, s.env+"="+s.values[2])
				}
				if present(3) {
					writeFile(t, dir, ".env", s.env+"="+s.values[3]+"\n")
				}
				want := s.def
				for i := 3; i >= 0; i-- {
					if present(i) {
						want = s.values[i]
					}
				}
				switch s.fileKey {
				case "path":
					want = normalisePath(want)
				}
				got := s.get(mustLoad(t, flags, environ...))
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			})
		}
	}
}

func TestServerEnvVars(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{}, append([]string{
		"REVERB_SERVER=reverb",
		"REVERB_SERVER_HOST=127.0.0.1",
		"REVERB_SERVER_PORT=\"9090\"",
		"REVERB_SERVER_PATH=/ws/",
		"REVERB_HOST=https://ws.example.com:8443/path",
		"REVERB_MAX_REQUEST_SIZE=50000",
		"REVERB_SCALING_ENABLED=(true)",
		"REVERB_SCALING_CHANNEL=fleet",
		"REDIS_HOST=redis.internal",
		"REDIS_PORT=6380",
		"REDIS_USERNAME=bob",
		"REDIS_PASSWORD='p#ss'",
		"REDIS_DB=3",
		"REDIS_TIMEOUT=2.5",
		"REVERB_TLS_CERT=/c.pem",
		"REVERB_TLS_KEY=/k.pem",
		"REVERB_TLS_PASSPHRASE=pw",
		"REVERB_AUTH_TIMESTAMP_TOLERANCE=0",
		"REVERB_MAX_OUTBOUND_BUFFER=65536",
		"REVERB_MAX_NODE_BUFFER=1048576",
		"REVERB_SOCKET_SNDBUF=0",
		"REVERB_STATE_DIR=/var/run/reverb",
		"REVERB_DEBUG=1",
		"REVERB_REUSE_PORT=true",
		"REVERB_EVENT_LOOPS=3",
		"REVERB_HEAD_TIMEOUT=5",
		"REVERB_MAX_PENDING_CONNECTIONS=0",
		// Laravel's, not ours: accepted and ignored.
		"BROADCAST_CONNECTION=reverb",
		"REVERB_PORT=443",
		"REVERB_SCHEME=https",
		"VITE_REVERB_APP_KEY=${REVERB_APP_KEY}",
		"REVERB_PULSE_INGEST_INTERVAL=15",
		"REVERB_TELESCOPE_INGEST_INTERVAL=null",
	}, appEnv...)...)
	c.Apps = nil
	want := Config{
		Host:           "127.0.0.1",
		Port:           9090,
		Path:           "/ws",
		Hostname:       "ws.example.com",
		MaxRequestSize: 50_000,
		Debug:          true,
		TLS:            TLSConfig{Cert: "/c.pem", Key: "/k.pem", Passphrase: "pw"},
		Scaling: ScalingConfig{Enabled: true, Channel: "fleet", Redis: RedisConfig{
			Host: "redis.internal", Port: 6380, Username: "bob", Password: "p#ss", DB: 3, Timeout: 2500 * time.Millisecond, Liveness: 3 * time.Second,
		}, QueueSize: 16384, StateQueueSize: 65536},
		Metrics:               MetricsConfig{Host: "127.0.0.1", Port: 9601},
		TimestampWindow:       0,
		MaxOutboundBuffer:     65536,
		MaxNodeBuffer:         1 << 20,
		StateDir:              "/var/run/reverb",
		ReusePort:             true,
		EventLoops:            3,
		HeadTimeout:           5 * time.Second,
		MaxPendingConnections: -1,
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("\n got %+v\nwant %+v", *c, want)
	}
}

func TestScalingEnabledTruthiness(t *testing.T) {
	// (bool) cast in ReverbServerProvider: PHP truthiness after env().
	tests := map[string]bool{
		"true": true, "(true)": true, "1": true, "yes": true, "on": true,
		"false": false, "0": false, "": false, "null": false, "(empty)": false,
	}
	t.Chdir(t.TempDir())
	for v, want := range tests {
		c := mustLoad(t, Flags{}, append([]string{"REVERB_SCALING_ENABLED=" + v}, appEnv...)...)
		if c.Scaling.Enabled != want {
			t.Errorf("REVERB_SCALING_ENABLED=%q: enabled = %v, want %v", v, c.Scaling.Enabled, want)
		}
	}
}

func TestRedisURLForms(t *testing.T) {
	base := RedisConfig{Host: "127.0.0.1", Port: 6379, Username: "envuser", Password: "envpass", DB: 1, Timeout: time.Minute}
	tests := []struct {
		url  string
		want RedisConfig
	}{
		{"redis://cache.internal", RedisConfig{Host: "cache.internal", Port: 6379, Username: "envuser", Password: "envpass", DB: 1, Timeout: time.Minute}},
		{"redis://cache:6380/4", RedisConfig{Host: "cache", Port: 6380, Username: "envuser", Password: "envpass", DB: 4, Timeout: time.Minute}},
		{"tcp://u:p@cache:6380", RedisConfig{Host: "cache", Port: 6380, Username: "u", Password: "p", DB: 1, Timeout: time.Minute}},
		{"rediss://:only%40pass@secure:6390/0", RedisConfig{Host: "secure", Port: 6390, Password: "only@pass", Timeout: time.Minute, TLS: true}},
		{"tls://secure", RedisConfig{Host: "secure", Port: 6379, Username: "envuser", Password: "envpass", DB: 1, Timeout: time.Minute, TLS: true}},
		{"REDIS://x?db=7", RedisConfig{Host: "x", Port: 6379, Username: "envuser", Password: "envpass", DB: 7, Timeout: time.Minute}},
		{"redis://x/2?database=5", RedisConfig{Host: "x", Port: 6379, Username: "envuser", Password: "envpass", DB: 5, Timeout: time.Minute}},
		{"redis://a:b@x?username=qu&password=qp", RedisConfig{Host: "x", Port: 6379, Username: "qu", Password: "qp", DB: 1, Timeout: time.Minute}},
		{"redis://[::1]:7000/", RedisConfig{Host: "::1", Port: 7000, Username: "envuser", Password: "envpass", DB: 1, Timeout: time.Minute}},
	}
	for _, tt := range tests {
		got := base
		if err := applyRedisURL(&got, tt.url); err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.url, got, tt.want)
		}
	}
	for _, bad := range []string{"unix:///tmp/redis.sock", "127.0.0.1:6379", "redis://x:notaport", "redis://x/abc", "redis://x?db=-1", "http://x"} {
		got := base
		if err := applyRedisURL(&got, bad); err == nil {
			t.Errorf("%s: want an error, got %+v", bad, got)
		}
	}
}

func TestRedisURLWiring(t *testing.T) {
	t.Chdir(t.TempDir())
	env := append([]string{"REDIS_URL=rediss://u:p@from-env:7001/2", "REDIS_HOST=ignored", "REDIS_DB=9"}, appEnv...)
	c := mustLoad(t, Flags{}, env...)
	want := RedisConfig{Host: "from-env", Port: 7001, Username: "u", Password: "p", DB: 2, Timeout: time.Minute, Liveness: 3 * time.Second, TLS: true}
	if !reflect.DeepEqual(c.Scaling.Redis, want) {
		t.Fatalf("env REDIS_URL:\n got %+v\nwant %+v", c.Scaling.Redis, want)
	}

	// The file's url wins over REDIS_URL, and its parts win over the file's fields.
	p := writeFile(t, t.TempDir(), "r.yaml", "servers:\n  reverb:\n    scaling:\n      queue_size: 50\n      state_queue_size: 60\n      server:\n        url: redis://from-file\n        port: 7100\n        database: 4\n")
	c = mustLoad(t, Flags{ConfigFile: &p}, env...)
	if c.Scaling.QueueSize != 50 || c.Scaling.StateQueueSize != 60 {
		t.Fatalf("file queue sizes: %d, %d", c.Scaling.QueueSize, c.Scaling.StateQueueSize)
	}
	want = RedisConfig{Host: "from-file", Port: 7100, Username: "", Password: "", DB: 4, Timeout: time.Minute, Liveness: 3 * time.Second}
	if !reflect.DeepEqual(c.Scaling.Redis, want) {
		t.Fatalf("file url:\n got %+v\nwant %+v", c.Scaling.Redis, want)
	}

	_, err := load(t, Flags{}, append([]string{"REDIS_URL=unix:///sock"}, appEnv...)...)
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL: unsupported scheme") {
		t.Fatalf("bad REDIS_URL: err = %v", err)
	}
}

func TestAppEnvVars(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{},
		"REVERB_APP_ID=123456",
		"REVERB_APP_KEY=\"app-key\"",
		"REVERB_APP_SECRET=app-secret",
		"REVERB_APP_PING_INTERVAL=15",
		"REVERB_APP_ACTIVITY_TIMEOUT=20",
		"REVERB_APP_MAX_CONNECTIONS=500",
		"REVERB_APP_MAX_MESSAGE_SIZE=2048",
		"REVERB_APP_MAX_CHANNELS_PER_CONNECTION=0",
		"REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM=all",
		"REVERB_APP_RATE_LIMITING_ENABLED=true",
		"REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS=10",
		"REVERB_APP_RATE_LIMIT_DECAY_SECONDS=5",
		"REVERB_APP_RATE_LIMIT_TERMINATE=true",
		"REVERB_APP_SIGNIN=false",
		"REVERB_APP_CACHE_TTL=90",
		"REVERB_APP_TERMINATE_CODE=4201",
	)
	want := []pusher.App{{
		ID: "123456", Key: "app-key", Secret: "app-secret",
		AllowedOrigins:  []string{"*"},
		PingInterval:    15 * time.Second,
		ActivityTimeout: 20,
		MaxConnections:  500,
		MaxMessageSize:  2048,
		MaxChannels:     -1,
		ClientEvents:    pusher.ClientEventsAll,
		RateLimit:       pusher.RateLimit{Enabled: true, MaxAttempts: 10, Decay: 5 * time.Second, Terminate: true},
		Signin:          false,
		CacheTTL:        90 * time.Second,
		TerminateCode:   4201,
	}}
	if !reflect.DeepEqual(c.Apps, want) {
		t.Fatalf("\n got %+v\nwant %+v", c.Apps, want)
	}
	if c.Dev {
		t.Fatal("Dev set although the app was configured")
	}
}

func TestRateLimitingNeedsBooleanTrue(t *testing.T) {
	tests := map[string]bool{
		"true": true, "TRUE": true, "(true)": true,
		"1": false, "yes": false, "on": false, "'true'": false, `"true"`: false, "false": false, "": false,
	}
	t.Chdir(t.TempDir())
	for v, want := range tests {
		c := mustLoad(t, Flags{}, append([]string{"REVERB_APP_RATE_LIMITING_ENABLED=" + v}, appEnv...)...)
		if got := c.Apps[0].RateLimit.Enabled; got != want {
			t.Errorf("REVERB_APP_RATE_LIMITING_ENABLED=%s: enabled = %v, want %v", v, got, want)
		}
	}
}

func TestClientEventsEnv(t *testing.T) {
	tests := map[string]pusher.ClientEvents{
		"members": pusher.ClientEventsMembers,
		"all":     pusher.ClientEventsAll,
		"none":    pusher.ClientEventsNone,
		"nobody":  pusher.ClientEventsNone,
		"":        pusher.ClientEventsNone, // present but neither members nor all
		"null":    pusher.ClientEventsMembers,
	}
	t.Chdir(t.TempDir())
	for v, want := range tests {
		c := mustLoad(t, Flags{}, append([]string{"REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM=" + v}, appEnv...)...)
		if got := c.Apps[0].ClientEvents; got != want {
			t.Errorf("%q: got %v, want %v", v, got, want)
		}
	}
}

func TestDotenvFeedsConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, ".env", strings.Join([]string{
		"# Laravel app",
		"BROADCAST_CONNECTION=reverb",
		"export REVERB_APP_ID=424242",
		`REVERB_APP_KEY="from-dotenv" # comment`,
		"REVERB_APP_SECRET='s3cr3t'",
		"REVERB_SERVER_PORT=9000",
		`VITE_REVERB_APP_KEY="${REVERB_APP_KEY}"`,
		"REVERB_APP_MAX_CONNECTIONS=null",
		"",
	}, "\n"))
	c := mustLoad(t, Flags{}, "REVERB_APP_KEY=from-process")
	if a := c.Apps[0]; a.ID != "424242" || a.Key != "from-process" || a.Secret != "s3cr3t" || a.MaxConnections != 0 {
		t.Fatalf("app = %+v", a)
	}
	if c.Port != 9000 {
		t.Fatalf("port = %d, want 9000 from .env", c.Port)
	}

	other := writeFile(t, t.TempDir(), "custom.env", "REVERB_SERVER_PORT=9100\n")
	if c := mustLoad(t, Flags{EnvFile: &other}, appEnv...); c.Port != 9100 {
		t.Fatalf("--env-file: port = %d, want 9100", c.Port)
	}
	missing := filepath.Join(dir, "missing.env")
	if _, err := load(t, Flags{EnvFile: &missing}, appEnv...); err == nil {
		t.Fatal("missing explicit env file: want an error")
	}
}

const multiAppYAML = `
servers:
  reverb:
    host: 127.0.0.1
    unknown_server_key: whatever
apps:
  provider: config
  apps:
    - app_id: 1001
      key: key-one
      secret: secret-one
      allowed_origins: ["example.com", "*.example.com"]
      ping_interval: "45"
      max_connections: 10
      max_message_size: 5000
      max_channels_per_connection: 20
      accept_client_events_from: members
      rate_limiting:
        enabled: true
        max_attempts: 5
        decay_seconds: 2
        terminate_on_limit: true
      signin: false
      cache_ttl: 60
      terminate_code: 4100
      some_unknown_key: [1, 2]
    - app_id: "1002"
      key: key-two
      secret: secret-two
      max_connections: null
      rate_limiting:
        enabled: "1"
        max_attempts: 7
`

// multiAppJSON is multiAppYAML in JSON.
const multiAppJSON = `{
  "servers": {"reverb": {"host": "127.0.0.1", "unknown_server_key": "whatever"}},
  "apps": {"provider": "config", "apps": [
    {"app_id": 1001, "key": "key-one", "secret": "secret-one",
     "allowed_origins": ["example.com", "*.example.com"], "ping_interval": "45",
     "max_connections": 10, "max_message_size": 5000, "max_channels_per_connection": 20, "accept_client_events_from": "members",
     "rate_limiting": {"enabled": true, "max_attempts": 5, "decay_seconds": 2, "terminate_on_limit": true},
     "signin": false, "cache_ttl": 60, "terminate_code": 4100, "some_unknown_key": [1, 2]},
    {"app_id": "1002", "key": "key-two", "secret": "secret-two", "max_connections": null,
     "rate_limiting": {"enabled": "1", "max_attempts": 7}}
  ]}
}`

func TestMultiAppFile(t *testing.T) {
	want := []pusher.App{
		{
			ID: "1001", Key: "key-one", Secret: "secret-one",
			AllowedOrigins:  []string{"example.com", "*.example.com"},
			PingInterval:    45 * time.Second,
			ActivityTimeout: 30,
			MaxConnections:  10,
			MaxMessageSize:  5000,
			MaxChannels:     20,
			ClientEvents:    pusher.ClientEventsMembers,
			RateLimit:       pusher.RateLimit{Enabled: true, MaxAttempts: 5, Decay: 2 * time.Second, Terminate: true},
			Signin:          false,
			CacheTTL:        time.Minute,
			TerminateCode:   4100,
		},
		{
			// Every absent key takes Reverb's fallback for a missing array key.
			ID: "1002", Key: "key-two", Secret: "secret-two",
			AllowedOrigins:  []string{"*"},
			PingInterval:    60 * time.Second,
			ActivityTimeout: 30,
			MaxMessageSize:  10_000,
			MaxChannels:     100,
			ClientEvents:    pusher.ClientEventsAll,
			RateLimit:       pusher.RateLimit{Enabled: false, MaxAttempts: 7, Decay: time.Second},
			Signin:          true,
			CacheTTL:        30 * time.Minute,
			TerminateCode:   4009,
		},
	}
	t.Chdir(t.TempDir())
	for name, content := range map[string]string{"apps.yaml": multiAppYAML, "apps.yml": multiAppYAML, "apps.json": multiAppJSON} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), name, content)
			// The env app must be ignored once the file has apps.
			c := mustLoad(t, Flags{ConfigFile: &p}, "REVERB_APP_ID=9", "REVERB_APP_KEY=env", "REVERB_APP_SECRET=env", "REVERB_APP_PING_INTERVAL=1")
			if !reflect.DeepEqual(c.Apps, want) {
				t.Fatalf("\n got %+v\nwant %+v", c.Apps, want)
			}
			if c.Host != "127.0.0.1" || c.Dev {
				t.Fatalf("host %q dev %v", c.Host, c.Dev)
			}
			// REVERB_CONFIG names the file too.
			c2 := mustLoad(t, Flags{}, "REVERB_CONFIG="+p)
			if !reflect.DeepEqual(c2.Apps, want) {
				t.Fatalf("via REVERB_CONFIG:\n got %+v\nwant %+v", c2.Apps, want)
			}
		})
	}
}

func TestFileWithoutAppsUsesEnvApp(t *testing.T) {
	t.Chdir(t.TempDir())
	p := writeFile(t, t.TempDir(), "r.json", `{"servers":{"reverb":{"port":null,"max_request_size":"20000"}},"apps":{"apps":[]}}`)
	c := mustLoad(t, Flags{ConfigFile: &p}, append([]string{"REVERB_SERVER_PORT=7000"}, appEnv...)...)
	if len(c.Apps) != 1 || c.Apps[0].Key != "k" {
		t.Fatalf("apps = %+v, want the env app", c.Apps)
	}
	if c.Port != 7000 || c.MaxRequestSize != 20000 {
		t.Fatalf("port %d (null in file falls through to env), max_request_size %d", c.Port, c.MaxRequestSize)
	}
}

func TestDuplicateApps(t *testing.T) {
	tests := []struct {
		name, apps, wantErr string
	}{
		{"duplicate key", `[{"app_id":"1","key":"same","secret":"a"},{"app_id":"2","key":"same","secret":"b"}]`,
			`dup.json: pusher: key "same" is used by apps "1" and "2"; keys must be unique`},
		{"duplicate id", `[{"app_id":"7","key":"a","secret":"a"},{"app_id":7,"key":"b","secret":"b"}]`,
			`dup.json: pusher: app_id "7" is configured twice; app ids must be unique`},
	}
	t.Chdir(t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "dup.json", `{"apps":{"apps":`+tt.apps+`}}`)
			_, err := load(t, Flags{ConfigFile: &p})
			if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v\nwant suffix %q", err, tt.wantErr)
			}
		})
	}
}

func TestDevApp(t *testing.T) {
	t.Chdir(t.TempDir())
	state := "REVERB_STATE_DIR=" + t.TempDir()
	a := mustLoad(t, Flags{}, state, "REVERB_APP_MAX_CONNECTIONS=3", "BROADCAST_CONNECTION=reverb")
	b := mustLoad(t, Flags{}, state, "REVERB_APP_KEY=", "REVERB_APP_SECRET=null")
	other := mustLoad(t, Flags{}, "REVERB_STATE_DIR="+t.TempDir())
	for _, c := range []*Config{a, b, other} {
		if !c.Dev || len(c.Apps) != 1 {
			t.Fatalf("Dev %v apps %d, want a single dev app", c.Dev, len(c.Apps))
		}
		if c.Host != "0.0.0.0" || c.Port != 8080 {
			t.Fatalf("dev server on %s:%d", c.Host, c.Port)
		}
		if c.DevFile != filepath.Join(c.StateDir, DevAppFileName) || c.DevFileErr != nil {
			t.Fatalf("DevFile %q, DevFileErr %v", c.DevFile, c.DevFileErr)
		}
		app := c.Apps[0]
		if !regexp.MustCompile(`^[1-9][0-9]{5}$`).MatchString(app.ID) {
			t.Errorf("id %q", app.ID)
		}
		for _, s := range []string{app.Key, app.Secret} {
			if !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(s) {
				t.Errorf("key/secret %q", s)
			}
		}
	}
	if a.Apps[0].MaxConnections != 3 {
		t.Errorf("dev app ignores REVERB_APP_* settings: %+v", a.Apps[0])
	}
	if a.Apps[0].ID != b.Apps[0].ID || a.Apps[0].Key != b.Apps[0].Key || a.Apps[0].Secret != b.Apps[0].Secret {
		t.Errorf("dev credentials changed across starts on one state dir: %+v then %+v", a.Apps[0], b.Apps[0])
	}
	if other.Apps[0].Key == a.Apps[0].Key || other.Apps[0].Secret == a.Apps[0].Secret {
		t.Error("two state dirs got the same dev credentials")
	}
	fi, err := os.Stat(a.DevFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; it holds the secret, want 0600", a.DevFile, fi.Mode().Perm())
	}
}

// TestDevAppFileProblems: a damaged credentials file stops the start with
// the remedy (replacing it would break the frontends configured against
// it); an unreadable file or a state dir that cannot be written still
// serves, with DevFileErr.
func TestDevAppFileProblems(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	for _, content := range []string{"not json", `{"app_id":"1","key":"k"}`} {
		if err := os.WriteFile(filepath.Join(dir, DevAppFileName), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := load(t, Flags{}, "REVERB_STATE_DIR="+dir)
		if err == nil || !strings.Contains(err.Error(), "delete it to generate a new development app") {
			t.Fatalf("%q: err = %v", content, err)
		}
	}
	// Unreadable (a directory here; another user's 0600 file in a shared
	// /tmp/reverb in life): fresh credentials, and DevFileErr says why.
	unreadable := t.TempDir()
	if err := os.Mkdir(filepath.Join(unreadable, DevAppFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	u := mustLoad(t, Flags{}, "REVERB_STATE_DIR="+unreadable)
	if !u.Dev || len(u.Apps) != 1 || u.Apps[0].Key == "" || u.DevFile != "" || u.DevFileErr == nil {
		t.Fatalf("unreadable file: Dev %v apps %d DevFile %q DevFileErr %v", u.Dev, len(u.Apps), u.DevFile, u.DevFileErr)
	}
	// A file where the state directory should be: nothing can be created in it.
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, Flags{}, "REVERB_STATE_DIR="+blocked)
	if !c.Dev || len(c.Apps) != 1 || c.Apps[0].Key == "" || c.DevFile != "" || c.DevFileErr == nil {
		t.Fatalf("unwritable state dir: Dev %v apps %d DevFile %q DevFileErr %v", c.Dev, len(c.Apps), c.DevFile, c.DevFileErr)
	}
}

// TestDevAppConcurrentStarts: servers started at once on one state dir
// (scripts/multi-start.sh) all serve the one app that was saved first.
func TestDevAppConcurrentStarts(t *testing.T) {
	t.Chdir(t.TempDir())
	state := "REVERB_STATE_DIR=" + t.TempDir()
	const n = 8
	keys := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := LoadConfig(Flags{}, []string{state})
			if err != nil {
				t.Error(err)
				keys <- ""
				return
			}
			keys <- c.Apps[0].ID + "/" + c.Apps[0].Key + "/" + c.Apps[0].Secret
		}()
	}
	wg.Wait()
	close(keys)
	first := <-keys
	for k := range keys {
		if k != first {
			t.Fatalf("concurrent starts serve different dev apps: %q and %q", first, k)
		}
	}
}

// TestDevEnvBlockConfiguresTheSameApp: the printed block, pasted into a
// .env, makes the next start serve the same app as a configured one, and
// holds what Laravel and Echo read.
func TestDevEnvBlockConfiguresTheSameApp(t *testing.T) {
	t.Chdir(t.TempDir())
	dev := mustLoad(t, Flags{Port: ptr(6001), Path: ptr("ws"), Hostname: ptr("https://reverb.test")}, "REVERB_STATE_DIR="+t.TempDir())
	block := DevEnv(dev, true)
	for _, line := range []string{
		"BROADCAST_CONNECTION=reverb", `REVERB_HOST="reverb.test"`, "REVERB_PORT=6001", "REVERB_SCHEME=https",
		`VITE_REVERB_APP_KEY="${REVERB_APP_KEY}"`, `VITE_REVERB_HOST="${REVERB_HOST}"`,
		`VITE_REVERB_PORT="${REVERB_PORT}"`, `VITE_REVERB_SCHEME="${REVERB_SCHEME}"`,
	} {
		if !strings.Contains(block, line+"\n") {
			t.Errorf("block lacks %s:\n%s", line, block)
		}
	}
	if plain := DevEnv(dev, false); !strings.Contains(plain, "REVERB_SCHEME=http\n") {
		t.Errorf("plain block:\n%s", plain)
	}
	envFile := writeFile(t, t.TempDir(), ".env", block)
	vars, err := loadDotenv(envFile, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vars["VITE_REVERB_APP_KEY"] != dev.Apps[0].Key {
		t.Errorf("VITE_REVERB_APP_KEY = %q, want the key %q", vars["VITE_REVERB_APP_KEY"], dev.Apps[0].Key)
	}
	// A fresh state dir: the app must now come from the .env alone.
	c := mustLoad(t, Flags{EnvFile: &envFile}, "REVERB_STATE_DIR="+t.TempDir())
	if c.Dev || c.Apps[0].ID != dev.Apps[0].ID || c.Apps[0].Key != dev.Apps[0].Key || c.Apps[0].Secret != dev.Apps[0].Secret {
		t.Fatalf("after pasting: Dev %v app %+v, want %+v", c.Dev, c.Apps[0], dev.Apps[0])
	}
	if c.Path != "/ws" {
		t.Errorf("path %q, want /ws", c.Path)
	}
}

func TestPartialApp(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := load(t, Flags{}, "REVERB_APP_KEY=abc")
	want := "REVERB_APP_ID and REVERB_APP_SECRET must be set too"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	p := writeFile(t, t.TempDir(), "r.yaml", "apps:\n  apps:\n    - app_id: 1\n      key: k\n")
	_, err = load(t, Flags{ConfigFile: &p})
	if err == nil || !strings.Contains(err.Error(), "r.yaml: apps.apps[0]: secret is missing") {
		t.Fatalf("file: err = %v", err)
	}
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		env     string
		file    string
		wantErr string
	}{
		{env: "REVERB_SERVER_PORT=http", wantErr: `REVERB_SERVER_PORT: "http" is not an integer`},
		{env: "REVERB_SERVER_PORT=70000", wantErr: "REVERB_SERVER_PORT: port 70000 is out of range"},
		{env: "REVERB_MAX_REQUEST_SIZE=0", wantErr: "REVERB_MAX_REQUEST_SIZE: 0 is below the minimum of 1"},
		{env: "REVERB_APP_ACTIVITY_TIMEOUT=0", wantErr: "REVERB_APP_ACTIVITY_TIMEOUT: 0 is below the minimum of 1"},
		{env: "REVERB_APP_PING_INTERVAL=1.5", wantErr: `REVERB_APP_PING_INTERVAL: "1.5" is not an integer`},
		{env: "REDIS_TIMEOUT=soon", wantErr: `REDIS_TIMEOUT: "soon" is not a number of seconds`},
		{env: "REVERB_AUTH_TIMESTAMP_TOLERANCE=-1", wantErr: "REVERB_AUTH_TIMESTAMP_TOLERANCE: \"-1\" is out of range"},
		{env: "REVERB_APP_TERMINATE_CODE=1000", wantErr: "REVERB_APP_TERMINATE_CODE: 1000 is not a Pusher close code"},
		{env: "REVERB_APP_KEY=true", wantErr: "REVERB_APP_KEY: expected a string, got true"},
		{file: `{"servers":{"reverb":{"port":80.5}}}`, wantErr: "f.json: servers.reverb.port: 80.5 is not an integer"},
		{file: `{"apps":{"apps":[{"app_id":1,"key":"k","secret":"s","allowed_origins":"*"}]}}`, wantErr: "f.json: apps.apps[0].allowed_origins: must be a non-empty list"},
		{file: `{"apps":{"apps":[{"app_id":1,"key":"k","secret":"s","allowed_origins":[]}]}}`, wantErr: "must be a non-empty list"},
		{file: `{"apps":{"provider":"database"}}`, wantErr: `apps.provider "database" is not supported`},
		{file: `{"apps":{"apps":{"app_id":1}}}`, wantErr: "apps.apps must be a list"},
		{file: `[1,2]`, wantErr: "the top level must be an object"},
		{file: `{"a":1} {"b":2}`, wantErr: "unexpected data after the top-level object"},
		{file: `{"a":`, wantErr: "config file"},
	}
	t.Chdir(t.TempDir())
	for _, tt := range tests {
		environ := append([]string(nil), appEnv...)
		var flags Flags
		if tt.env != "" {
			environ = append(environ, tt.env)
		}
		if tt.file != "" {
			p := writeFile(t, t.TempDir(), "f.json", tt.file)
			flags.ConfigFile = &p
		}
		_, err := load(t, flags, environ...)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s%s: err = %v, want %q", tt.env, tt.file, err, tt.wantErr)
		}
	}
}

func TestConfigFileFormats(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	for _, name := range []string{"r.toml", "r.php", "r"} {
		p := writeFile(t, dir, name, "")
		if _, err := load(t, Flags{ConfigFile: &p}, appEnv...); err == nil || !strings.Contains(err.Error(), "use .json, .yaml or .yml") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := load(t, Flags{ConfigFile: &missing}, appEnv...); err == nil {
		t.Error("missing config file: want an error")
	}
	empty := writeFile(t, dir, "empty.yaml", "# nothing yet\n")
	if c := mustLoad(t, Flags{ConfigFile: &empty}, appEnv...); c.Port != 8080 {
		t.Errorf("empty file: port %d", c.Port)
	}
}

func TestFlagsEmptyStringsFallBack(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{Host: ptr(""), Path: ptr(""), Hostname: ptr(""), Port: ptr(0), Debug: ptr(false)},
		append([]string{"REVERB_SERVER_HOST=10.1.1.1", "REVERB_SERVER_PATH=ws", "REVERB_HOST=h.test", "REVERB_DEBUG=true"}, appEnv...)...)
	// Empty strings mean "not given" (Reverb's `?:`); a given port 0 or debug=false is honoured.
	if c.Host != "10.1.1.1" || c.Path != "/ws" || c.Hostname != "h.test" || c.Port != 0 || c.Debug {
		t.Fatalf("got %+v", c)
	}
	if _, err := load(t, Flags{Port: ptr(-1)}, appEnv...); err == nil {
		t.Fatal("--port -1: want an error")
	}
}

func TestNormalisePath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "//": "", "ws": "/ws", "/ws": "/ws", "/ws/": "/ws", "a/b/": "/a/b", " /x ": "/x",
	} {
		if got := normalisePath(in); got != want {
			t.Errorf("normalisePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostPart(t *testing.T) {
	for in, want := range map[string]string{
		"ws.example.com":                  "ws.example.com",
		"https://ws.example.com":          "ws.example.com",
		"https://ws.example.com:8443/x?y": "ws.example.com",
		"//ws.example.com":                "ws.example.com",
		"ws.example.com:443":              "ws.example.com",
		"[::1]:8080":                      "::1",
		"localhost":                       "localhost",
		"":                                "",
	} {
		if got := hostPart(in); got != want {
			t.Errorf("hostPart(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExampleFiles keeps the README's examples loadable and in sync.
func TestExampleFiles(t *testing.T) {
	t.Chdir(t.TempDir())
	yamlPath, jsonPath := filepath.Join(testdataAbs, "reverb.example.yaml"), filepath.Join(testdataAbs, "reverb.example.json")
	y := mustLoad(t, Flags{ConfigFile: &yamlPath})
	j := mustLoad(t, Flags{ConfigFile: &jsonPath})
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML and JSON examples differ:\nyaml %+v\njson %+v", y, j)
	}
	if len(y.Apps) != 2 || y.Dev || y.Hostname != "ws.example.test" || y.StateDir != "/tmp/reverb" {
		t.Fatalf("example: %+v", y)
	}
	chat, dash := y.Apps[0], y.Apps[1]
	if y.Scaling.QueueSize != 16384 || y.Scaling.StateQueueSize != 65536 {
		t.Errorf("example scaling queues: %+v", y.Scaling)
	}
	if y.HeadTimeout != 10*time.Second || y.MaxPendingConnections != 0 {
		t.Errorf("example limits: head %v pending %d", y.HeadTimeout, y.MaxPendingConnections)
	}
	if !chat.RateLimit.Enabled || chat.ClientEvents != pusher.ClientEventsMembers || chat.MaxConnections != 1000 || chat.MaxChannels != 100 {
		t.Errorf("chat app: %+v", chat)
	}
	if hs := chat.Webhooks; len(hs) != 1 || hs[0].Prefix != "presence-" || hs[0].Headers["X-Source"] != "reverb" ||
		y.Webhooks.Delay != 3*time.Second || y.Webhooks.QueueSize != 10000 {
		t.Errorf("example webhooks: %+v, node %+v", hs, y.Webhooks)
	}
	if dash.ID != "100002" || dash.MaxMessageSize != 20000 || dash.ClientEvents != pusher.ClientEventsNone || dash.MaxConnections != 0 {
		t.Errorf("dashboard app: %+v", dash)
	}
}

// testdataAbs is cmd/reverb/config/testdata, resolved before any test changes directory.
var testdataAbs = func() string {
	p, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return p
}()

func TestWebhookSettings(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{}, "REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s",
		"REVERB_APP_WEBHOOK_URL=https://app.test/pusher/webhook", "REVERB_APP_WEBHOOK_EVENTS=member_added, member_removed",
		"REVERB_WEBHOOK_BATCH_WINDOW=0.5", "REVERB_WEBHOOK_DELAY=2", "REVERB_WEBHOOK_QUEUE_SIZE=99", "REVERB_WEBHOOK_TIMEOUT=1.5")
	hs := c.Apps[0].Webhooks
	want := pusher.HookMask(0).With(pusher.HookMemberAdded).With(pusher.HookMemberRemoved)
	if len(hs) != 1 || hs[0].URL != "https://app.test/pusher/webhook" || hs[0].Events != want {
		t.Fatalf("env webhooks %+v", hs)
	}
	if w := c.Webhooks; w.Batch != 500*time.Millisecond || w.Delay != 2*time.Second || w.QueueSize != 99 || w.Timeout != 1500*time.Millisecond {
		t.Fatalf("node settings %+v", w)
	}
	// Without REVERB_APP_WEBHOOK_EVENTS: every event.
	c = mustLoad(t, Flags{}, "REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s", "REVERB_APP_WEBHOOK_URL=http://127.0.0.1:9/h")
	if hs := c.Apps[0].Webhooks; len(hs) != 1 || hs[0].Events != pusher.AllHooks || c.Apps[0].HookMask() != pusher.AllHooks {
		t.Fatalf("env webhook without events %+v", hs)
	}
	if len(mustLoad(t, Flags{}, "REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s").Apps[0].Webhooks) != 0 {
		t.Fatal("webhooks without REVERB_APP_WEBHOOK_URL")
	}

	p := writeFile(t, t.TempDir(), "apps.json", `{"servers":{"reverb":{"webhooks":{"delay":1}}},"apps":{"apps":[{"app_id":"1","key":"k","secret":"s",
		"webhooks":[{"url":"https://a.test/h","event_types":["channel_occupied","client_event"],"headers":{"X-Token":"t"},
		"filter":{"channel_name_starts_with":"private-","channel_name_ends_with":".log"}},{"url":"http://b.test/"}]}]}}`)
	c = mustLoad(t, Flags{ConfigFile: &p})
	hs = c.Apps[0].Webhooks
	if len(hs) != 2 || hs[0].URL != "https://a.test/h" || hs[0].Headers["X-Token"] != "t" || hs[0].Prefix != "private-" ||
		hs[0].Suffix != ".log" || hs[0].Events != pusher.HookMask(0).With(pusher.HookChannelOccupied).With(pusher.HookClientEvent) ||
		hs[1].Events != pusher.AllHooks || c.Webhooks.Delay != time.Second {
		t.Fatalf("file webhooks %+v, node %+v", hs, c.Webhooks)
	}

	for _, env := range [][]string{
		{"REVERB_APP_WEBHOOK_URL=ftp://x/"},
		{"REVERB_APP_WEBHOOK_URL=http://x/", "REVERB_APP_WEBHOOK_EVENTS=channel_occupied,user_joined"},
		{"REVERB_WEBHOOK_DELAY=soon"},
	} {
		if _, err := load(t, Flags{}, append([]string{"REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s"}, env...)...); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
	bad := writeFile(t, t.TempDir(), "bad.json", `{"apps":{"apps":[{"app_id":"1","key":"k","secret":"s","webhooks":[{"event_types":["member_added"]}]}]}}`)
	if _, err := load(t, Flags{ConfigFile: &bad}); err == nil || !strings.Contains(err.Error(), "webhooks[0].url") {
		t.Errorf("webhook without url: %v", err)
	}
}

func TestMetricsSettings(t *testing.T) {
	t.Chdir(t.TempDir())
	c := mustLoad(t, Flags{}, appEnv...)
	if want := (MetricsConfig{Enabled: false, Host: "127.0.0.1", Port: 9601}); c.Metrics != want {
		t.Fatalf("defaults %+v, want %+v", c.Metrics, want)
	}
	c = mustLoad(t, Flags{}, append([]string{"REVERB_METRICS_ENABLED=true", "REVERB_METRICS_HOST=0.0.0.0",
		"REVERB_METRICS_PORT=9700", "REVERB_METRICS_TOKEN=tok"}, appEnv...)...)
	if want := (MetricsConfig{Enabled: true, Host: "0.0.0.0", Port: 9700, Token: "tok"}); c.Metrics != want {
		t.Fatalf("env %+v, want %+v", c.Metrics, want)
	}
	p := writeFile(t, t.TempDir(), "r.yaml", "servers:\n  reverb:\n    metrics:\n      enabled: true\n      port: 9800\n      token: file-tok\n")
	c = mustLoad(t, Flags{ConfigFile: &p}, append([]string{"REVERB_METRICS_PORT=9700"}, appEnv...)...)
	if want := (MetricsConfig{Enabled: true, Host: "127.0.0.1", Port: 9800, Token: "file-tok"}); c.Metrics != want {
		t.Fatalf("file %+v, want %+v", c.Metrics, want)
	}
	if _, err := load(t, Flags{}, append([]string{"REVERB_METRICS_PORT=abc"}, appEnv...)...); err == nil {
		t.Fatal("a non-numeric REVERB_METRICS_PORT was accepted")
	}
}

// TestEnvAndFileAppAreTheSame: an app configured by REVERB_APP_* and the
// same app in a config file (Laravel's published config/reverb.php shape,
// every key spelled out) load as identical pusher.App values, so the
// server runs the same code for both: a difference in cost between them
// can only be noise (README, Benchmarks).
func TestEnvAndFileAppAreTheSame(t *testing.T) {
	t.Chdir(t.TempDir())
	env := mustLoad(t, Flags{}, "REVERB_APP_ID=1", "REVERB_APP_KEY=key", "REVERB_APP_SECRET=secret")
	p := writeFile(t, t.TempDir(), "reverb.json", `{"apps":{"apps":[{"app_id":"1","key":"key","secret":"secret",
		"allowed_origins":["*"],"ping_interval":60,"activity_timeout":30,"max_message_size":10000,"max_connections":null,
		"accept_client_events_from":"members",
		"rate_limiting":{"enabled":false,"max_attempts":60,"decay_seconds":60,"terminate_on_limit":false}}]}}`)
	file := mustLoad(t, Flags{ConfigFile: &p})
	if !reflect.DeepEqual(env.Apps, file.Apps) {
		t.Fatalf("env app  %+v\nfile app %+v", env.Apps, file.Apps)
	}
}
