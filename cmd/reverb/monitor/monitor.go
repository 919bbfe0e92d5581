package monitor

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/loop"
)

// Config configures the metrics listener.
type Config struct {
	// Addr is "host:port" (REVERB_METRICS_HOST, REVERB_METRICS_PORT).
	Addr string
	// Token, when set, must come as "Authorization: Bearer <token>" (or
	// ?token=<token>) on every request for data: /metrics and /api/stats.
	Token string
	// Version is shown by the dashboard and in reverb_build_info.
	Version string
}

// Monitor is a running metrics listener.
type Monitor struct {
	cfg    Config
	srv    *loop.Server
	broker *cluster.Broker // nil on a single node
	node   string

	ln   net.Listener
	http *http.Server
	hist *history

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start listens on cfg.Addr and serves until Close. broker is nil on a
// single node.
func Start(cfg Config, srv *loop.Server, broker *cluster.Broker) (*Monitor, error) {
	if srv == nil {
		return nil, errors.New("monitor: no server")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, srv: srv, broker: broker, ln: ln, stop: make(chan struct{})}
	if broker != nil {
		m.node = broker.NodeID()
	} else if h, err := os.Hostname(); err == nil {
		m.node = h
	}
	m.hist = newHistory(srv)
	if broker != nil {
		// The other nodes' dashboards show this node's figures too.
		broker.SetStatsExtra(m.appendNodeApps)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(m),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.auth(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	})))
	mux.Handle("GET /api/stats", m.auth(http.HandlerFunc(m.serveStats)))
	// The page and its script hold no data: a browser loads them without
	// the token (it cannot send a header for a <script>), and the page then
	// sends the token with its data requests.
	mux.Handle("GET /", dashboard())
	m.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		_ = m.http.Serve(ln)
	}()
	go func() {
		defer m.wg.Done()
		m.hist.run(m.stop)
	}()
	return m, nil
}

// Addr is the address the listener is bound to.
func (m *Monitor) Addr() string { return m.ln.Addr().String() }

// Close stops the listener and the sampler.
func (m *Monitor) Close() error {
	close(m.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := m.http.Shutdown(ctx)
	if err != nil {
		_ = m.http.Close()
	}
	m.wg.Wait()
	return err
}

// auth enforces the bearer token, when one is configured.
func (m *Monitor) auth(next http.Handler) http.Handler {
	if m.cfg.Token == "" {
		return next
	}
	want := []byte(m.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get("token")
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, tok, _ := strings.Cut(h, " ")
			if strings.EqualFold(scheme, "Bearer") {
				got = strings.TrimSpace(tok)
			}
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reverb metrics"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
