package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// PublishRestart publishes a restart command on cfg's control channel for
// `reverb restart`: every running node's OnRestart callback fires as soon as
// the command arrives. It opens one short-lived connection; while Redis
// cannot be dialled it retries until ctx ends, or for cfg.Timeout when ctx
// has no deadline. Any goroutine.
func PublishRestart(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	opt, err := cfg.redisOptions("restart")
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	c := redis.NewClient(opt)
	defer c.Close()
	msg := appendRestart(nil, cfg.NodeID)
	for {
		err = c.Publish(ctx, cfg.Channel, msg).Err()
		if err == nil || !notSent(err) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: publish restart to %s: %w", cfg.Addr, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: publish restart to %s: %w", cfg.Addr, err)
	}
	return nil
}
