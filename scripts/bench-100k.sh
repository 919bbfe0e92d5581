#!/usr/bin/env bash
# bench-100k.sh: hold 100,000 subscribed connections on this machine and
# time one broadcast to all of them. One process may hold at most 20,000
# open files here, so the server runs as several processes on one port
# (SO_REUSEPORT) bridged by a private redis-server, and reverb-bench spreads
# its sockets over several worker processes bound to 127.0.0.2… source
# addresses. Every process started here is stopped by PID at the end.
#
# Environment: CONNS (100000), NODES (6), LOOPS (event loops per node, 1),
# PORT (18300), RATE (0.5 broadcasts/s), SECONDS_MEASURED (8), RAMP (10000/s),
# POLL_GAP (1ms): the harness's workers read each burst in batches instead of
# waking once per socket on the two cores the servers use; every measured
# latency may grow by up to this much, never shrink.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${CONNS:-100000}
nodes=${NODES:-6}
loops=${LOOPS:-1}
port=${PORT:-18300}
rate=${RATE:-0.5}
secs=${SECONDS_MEASURED:-8}
gap=${POLL_GAP:-1ms}
ramp=${RAMP:-10000}

command -v redis-server >/dev/null || { echo "bench-100k: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }

source scripts/lib.sh
build_binaries

redis_port=$((port + 1))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)

export REVERB_APP_ID=1 REVERB_APP_KEY=key REVERB_APP_SECRET=secret
export REVERB_SCALING_ENABLED=true REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port
export REVERB_REUSE_PORT=true REVERB_STATE_DIR=$tmp/state REVERB_EVENT_LOOPS=$loops
server_pids=()
for i in $(seq "$nodes"); do
  "$tmp/reverb" start --host 127.0.0.1 --port "$port" >"$tmp/node-$i.log" 2>&1 &
  pids+=($!)
  server_pids+=($!)
done
wait_port 127.0.0.1 "$port" || true
sleep 1
all_alive "${server_pids[@]}" || { echo "bench-100k: a server process died:" >&2; cat "$tmp"/node-*.log >&2; exit 1; }
pidlist=$(IFS=,; echo "${server_pids[*]}")

echo "== $conns connections over $nodes server processes on :$port (Redis :$redis_port), one public channel"
timeout 300 "$tmp/reverb-bench" fanout --host 127.0.0.1 --port "$port" --app-id 1 --key key --secret secret \
  --server-pid "$pidlist" --conns "$conns" --channels 1 --rate "$rate" --duration "${secs}s" \
  --ramp "$ramp" --connect-timeout 60s --poll-gap "$gap" "$@"
