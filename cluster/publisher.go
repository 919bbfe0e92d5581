package cluster

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxNames bounds the publisher's cache of Redis channel names.
const maxNames = 8192

// runPublisher is the only goroutine that PUBLISHes. It takes envelopes in
// queue order and sends up to maxBatch of them per pipelined round trip on
// one connection, so Redis sees them in the order Publish was called.
func (b *Broker) runPublisher() {
	defer close(b.pubDone)
	pipe := b.pub.Pipeline()
	batch := make([]outMsg, 0, maxBatch)
	names := make(map[chanKey]string)
	for {
		select {
		case m := <-b.queue:
			batch = append(batch, m)
		case <-b.quit:
			b.flush(pipe, batch, names)
			return
		}
		batch = fill(b.queue, batch)
		b.send(pipe, batch, names, true)
		batch = b.release(batch)
	}
}

// fill adds what is already queued on q, without waiting, up to maxBatch.
func fill[T any](q <-chan T, batch []T) []T {
	for len(batch) < maxBatch {
		select {
		case m := <-q:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func (b *Broker) release(batch []outMsg) []outMsg {
	for i := range batch {
		b.putBuf(batch[i].buf)
		batch[i] = outMsg{}
	}
	return batch[:0]
}

// flush sends what is still queued at Close, one attempt per batch.
func (b *Broker) flush(pipe redis.Pipeliner, batch []outMsg, names map[chanKey]string) {
	for {
		batch = fill(b.queue, batch)
		if len(batch) == 0 {
			return
		}
		b.send(pipe, batch, names, false)
		batch = b.release(batch)
	}
}

// send PUBLISHes batch in one round trip. While nothing could be written
// (no connection: Redis away, refusing, or not answering the handshake) it
// retries with backoff and holds the queue, which fills and then drops new
// publishes. A failure after the commands were written may come after Redis
// executed some of them; resending could deliver twice, so the unconfirmed
// rest is dropped and counted.
func (b *Broker) send(pipe redis.Pipeliner, batch []outMsg, names map[chanKey]string, retry bool) {
	delay := backoffMin
	redirects := 0
	for {
		for i := range batch {
			if m := &batch[i]; m.cache > 0 {
				b.cacheStore(b.ctx, pipe, m.key, (*m.buf)[m.cache:len(*m.buf)-1])
			}
			name := batch[i].to
			if name == "" {
				name = b.cachedName(names, batch[i].key)
			}
			_ = b.names.publish(b.ctx, pipe, name, *batch[i].buf)
		}
		cmds, err := pipe.Exec(b.ctx)
		if err != nil && b.shards != nil {
			b.reloadSlots()
			if redirected(cmds) && redirects < 3 {
				// Refused with MOVED/ASK: nothing of the batch ran on
				// the slots that moved. Send again what was refused, in
				// order, once the slot map is read again.
				redirects++
				b.published.Add(uint64(countOK(cmds)))
				batch = refused(batch, cmds)
				if !b.sleep(100 * time.Millisecond) {
					b.dropped.Add(uint64(len(batch)))
					return
				}
				continue
			}
		}
		if err == nil {
			b.published.Add(uint64(len(batch)))
			b.pubState.restored(b.log, "publisher")
			return
		}
		// go-redis sets an error on every command it wrote (or tried to);
		// when getting a connection fails, none has one.
		var ok uint64
		var connErr error
		written := false
		for _, c := range cmds {
			_, publish := c.(*redis.IntCmd)
			switch e := c.Err(); {
			case e == nil:
				if publish {
					ok++
				}
			case !isReply(e):
				written = true
				if connErr == nil {
					connErr = e
				}
			default:
				written = true
			}
		}
		if !written {
			b.pubState.lost(b.log, "publisher", err)
			if retry && b.sleep(delay) {
				delay = min(2*delay, backoffMax)
				continue
			}
			b.dropped.Add(uint64(len(batch)))
			return
		}
		b.published.Add(ok)
		b.dropped.Add(uint64(len(batch)) - ok)
		switch {
		case connErr != nil:
			b.pubState.lost(b.log, "publisher", connErr)
		case ok == 0:
			// Everything refused (e.g. ACL): say so once.
			b.pubState.lost(b.log, "publisher", err)
		default:
			b.log.Debug("cluster: Redis refused a publish", "err", err)
		}
		return
	}
}

// redirected reports whether Redis Cluster refused some publish of cmds
// with MOVED or ASK (the slot is served elsewhere) and nothing failed
// otherwise.
func redirected(cmds []redis.Cmder) bool {
	some := false
	for _, c := range cmds {
		switch e := c.Err(); {
		case e == nil:
		case isRedirect(e):
			some = true
		default:
			return false
		}
	}
	return some
}

func isRedirect(err error) bool {
	if !isReply(err) {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "MOVED ") || strings.HasPrefix(s, "ASK ")
}

// countOK counts the publishes of cmds that succeeded.
func countOK(cmds []redis.Cmder) int {
	n := 0
	for _, c := range cmds {
		if _, publish := c.(*redis.IntCmd); publish && c.Err() == nil {
			n++
		}
	}
	return n
}

// refused keeps the messages of batch whose PUBLISH was redirected. cmds
// holds, per message, an optional cache SET and then its PUBLISH. It
// returns a new slice: the caller still releases every buffer of batch once.
func refused(batch []outMsg, cmds []redis.Cmder) []outMsg {
	var out []outMsg
	i := 0
	for _, m := range batch {
		if m.cache > 0 && i < len(cmds) {
			if _, isSet := cmds[i].(*redis.StatusCmd); isSet {
				i++
			}
		}
		if i < len(cmds) && isRedirect(cmds[i].Err()) {
			out = append(out, m)
		}
		i++
	}
	return out
}

// reloadSlots asks the cluster clients to read the slot map again (in the
// background; go-redis throttles it).
func (b *Broker) reloadSlots() {
	for _, c := range []redis.UniversalClient{b.pub, b.stats, b.statec, b.query} {
		if cc, ok := c.(*redis.ClusterClient); ok {
			cc.ReloadState(b.ctx)
		}
	}
}

func (b *Broker) cachedName(names map[chanKey]string, k chanKey) string {
	if n, ok := names[k]; ok {
		return n
	}
	if len(names) >= maxNames {
		clear(names)
	}
	n := b.redisName(k)
	names[k] = n
	return n
}

// notSent reports whether err proves that a command never reached Redis:
// the connection could not even be dialled.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isReply reports whether err is Redis's own answer (the command was
// refused) rather than a connection failure.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
