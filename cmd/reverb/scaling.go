package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/goreverb/reverb/cluster"
	"github.com/goreverb/reverb/cmd/reverb/config"
)

// maxRestartWait caps how long `reverb restart` waits for Redis, whatever
// REDIS_TIMEOUT says (Reverb's default of 60 s is far too long for a CLI).
const maxRestartWait = 10 * time.Second

// clusterConfig maps servers.reverb.scaling onto the broker's settings.
// REDIS_TIMEOUT bounds each dial (Laravel's connect timeout) and
// REDIS_LIVENESS how long a connected Redis may stay silent; unlike Reverb,
// a node never gives up on Redis and never exits because of it.
// REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES choose the Redis mode.
func clusterConfig(cfg *config.Config) cluster.Config {
	r := cfg.Scaling.Redis
	return cluster.Config{
		Channel:          cfg.Scaling.Channel,
		Addr:             net.JoinHostPort(r.Host, strconv.Itoa(r.Port)),
		ClusterNodes:     r.ClusterNodes,
		SentinelNodes:    r.SentinelNodes,
		SentinelMaster:   r.SentinelMaster,
		SentinelPassword: r.SentinelPassword,
		Username:         r.Username,
		Password:         r.Password,
		DB:               r.DB,
		TLS:              r.TLS,
		Timeout:          r.Timeout,
		Liveness:         r.Liveness,
		QueueSize:        cfg.Scaling.QueueSize,
		StateQueueSize:   cfg.Scaling.StateQueueSize,
	}
}

// startScaling returns a started broker when scaling is enabled, and nil,
// nil when it is not: then no Redis connection is ever attempted. The
// broker connects in the background, so a Redis that is away does not stop
// the node from serving its own sockets. The caller passes it to
// loop.Config.Broker only when non-nil (a nil *Broker in the interface
// would not be a single node), Attaches the server's hub, sets OnRestart,
// and Closes it after the server has shut down. Called once, from main.
func startScaling(cfg *config.Config, logger *slog.Logger) (*cluster.Broker, error) {
	if !cfg.Scaling.Enabled {
		return nil, nil
	}
	b, err := cluster.New(clusterConfig(cfg), logger)
	if err != nil {
		return nil, err
	}
	b.Start(context.Background())
	return b, nil
}

// restartViaRedis publishes the restart command on the scaling channel for
// `reverb restart`; every node's OnRestart callback fires within about a
// second. It waits for Redis at most REDIS_TIMEOUT, capped at 10 s. It is
// an error to call it with scaling disabled.
func restartViaRedis(cfg *config.Config) error {
	if !cfg.Scaling.Enabled {
		return errors.New("scaling is not enabled")
	}
	c := clusterConfig(cfg)
	wait := maxRestartWait
	if c.Timeout > 0 {
		wait = min(c.Timeout, maxRestartWait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return cluster.PublishRestart(ctx, c)
}
