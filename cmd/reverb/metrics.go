package main

import (
	"net"
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
