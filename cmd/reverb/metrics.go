package main

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/cmd/reverb/config"
	"github.com/goreverb/reverb/cmd/reverb/monitor"
	"github.com/goreverb/reverb/loop"
)

// startMonitor starts the metrics and dashboard listener
// (REVERB_METRICS_*). broker is nil on a single node.
func startMonitor(cfg *config.Config, srv *loop.Server, broker *cluster.Broker) (*monitor.Monitor, error) {
	return monitor.Start(monitor.Config{
		Addr:    net.JoinHostPort(cfg.Metrics.Host, strconv.Itoa(cfg.Metrics.Port)),
		Token:   cfg.Metrics.Token,
		Version: version,
	}, srv, broker)
}

// metricsWarning says why the metrics settings are risky, or "": a
// listener reachable beyond loopback without REVERB_METRICS_TOKEN shows
// every app's ids and traffic to anyone who can reach it.
func metricsWarning(cfg *config.Config) string {
	m := cfg.Metrics
	if m.Token != "" || m.Host == "localhost" {
		return ""
	}
	if ip, err := netip.ParseAddr(m.Host); err == nil && ip.IsLoopback() {
		return ""
	}
	return "the metrics listener on " + net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) +
		" is reachable beyond loopback and REVERB_METRICS_TOKEN is not set: anyone who can reach it reads the metrics"
}
