package cluster

import (
	"context"
	"fmt"
	"time"
)

// PublishRestart publishes a restart command on cfg's control channel for
// `reverb restart`: every running node's OnRestart callback fires as soon as
// the command arrives. It opens one short-lived connection; while Redis
// cannot be dialled it retries until ctx ends, or for cfg.Timeout when ctx
// has no deadline. Any goroutine.
func PublishRestart(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	c := cfg.newClient("restart", 1)
	defer c.Close()
	n := names{prefix: cfg.Channel, node: cfg.NodeID, sharded: cfg.sharded()}
	msg := appendRestart(nil, cfg.NodeID)
	var err error
	for {
		err = n.publish(ctx, c, n.control(), msg).Err()
		if err == nil || !notSent(err) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: publish restart to %s: %w", cfg.describe(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: publish restart to %s: %w", cfg.describe(), err)
	}
	return nil
}
