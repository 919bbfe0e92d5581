#!/usr/bin/env bash
# bench-1m.sh: hold 1,000,000 subscribed connections on this machine for a
# minute while they answer the server's pings, then time one broadcast to
# all of them.
#
# Built like bench-100k.sh. One process may hold at most 20,000 open files
# here, so the server runs as as many `reverb start` processes on one port
# (SO_REUSEPORT) as it takes, bridged by one private redis-server (plain
# Redis: one event reaches every node through one PUBLISH; README, "A
# million connections", says why not a Redis Cluster), and reverb-bench
# spreads its sockets over worker processes bound to 127.0.0.2... source
# addresses.
#
# Phases: the connection storm (RAMP sockets/s), the hold (HOLD s idle; the
# nodes ping every socket that stays silent for PING s and the harness
# answers), one broadcast. Progress goes to stderr; a sampler records the
# kernel's slab and TCP memory once a second, and the summary before the
# harness's fanout JSON line (last, same fields as `make bench-100k`, plus
# its "hold" section) gives the peaks. Every process started here is
# stopped by PID at the end.
#
# Run scripts/tune-host.sh --apply --conns 1m first (file limits, port
# range, somaxconn, TCP memory, conntrack). A million takes about 15 GiB
# here: do not run it beside other heavy work.
#
# Environment: CONNS (1000000), PER_NODE (18500 sockets planned per server
# process: SO_REUSEPORT spreads by hash, so a few processes get ~2 % more,
# and each must stay under 20,000 files), NODES (CONNS/PER_NODE), LOOPS
# (event loops per node, 1), PORT (18400), HOLD (70), PING (60, Reverb's
# default ping_interval: every socket answers a ping in a 70 s hold),
# RAMP (8000/s), POLL_GAP (1ms), CONNECT_TIMEOUT (600 s beyond the ramp: on
# a slow day the storm here has needed more than 7 minutes, and its real
# length is the figure wanted, not a timeout), LOG_DIR (keep the server
# and Redis logs there), NETNS (1: run in a fresh network namespace, see
# below). Extra arguments go to reverb-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${CONNS:-1000000}
per_node=${PER_NODE:-18500}
nodes=${NODES:-$(((conns + per_node - 1) / per_node))}
loops=${LOOPS:-1}
port=${PORT:-18400}
hold=${HOLD:-70}
ping=${PING:-60}
ramp=${RAMP:-8000}
gap=${POLL_GAP:-1ms}
connect_timeout=${CONNECT_TIMEOUT:-600}

command -v redis-server >/dev/null || { echo "bench-1m: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
need_files=$((2 * conns + 100000))
if (($(cat /proc/sys/fs/file-max) < need_files)); then
  echo "bench-1m: fs.file-max is below $need_files: run scripts/tune-host.sh --apply --conns $conns first" >&2
  exit 1
fi
read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
if ((port >= lo && port <= hi)); then
  # A harness socket could take the listening port between runs.
  echo "bench-1m: note: port $port is inside the ephemeral range $lo-$hi; it is bound before any client connects"
fi

# The kernel's table of established TCP sockets is sized at boot (262,144
# buckets on this 24 GiB VM): two million loopback sockets make chains of
# eight, and the lookup every packet does took 8 % of all CPU in the storm.
# A network namespace created after setting tcp_child_ehash_entries gets a
# table of its own: the run moves into a fresh one (root only; NETNS=0
# keeps the host's), with the net.* limits of tune-host.sh applied there.
if [ "${NETNS:-1}" = 1 ] && [ -z "${BENCH_1M_NETNS:-}" ] && [ "$(id -u)" = 0 ] &&
  [ -w /proc/sys/net/ipv4/tcp_child_ehash_entries ] && command -v ip >/dev/null; then
  buckets=1
  while ((buckets < 2 * conns)); do buckets=$((buckets * 2)); done
  ns=reverb-bench-1m-$$
  was=$(cat /proc/sys/net/ipv4/tcp_child_ehash_entries)
  echo "$buckets" >/proc/sys/net/ipv4/tcp_child_ehash_entries
  ip netns add "$ns"
  echo "$was" >/proc/sys/net/ipv4/tcp_child_ehash_entries
  trap 'ip netns del "$ns"' EXIT
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" bash scripts/tune-host.sh --apply --conns "$conns" >/dev/null 2>&1 || true
  echo "== network namespace $ns: $(ip netns exec "$ns" cat /proc/sys/net/ipv4/tcp_ehash_entries) established-hash buckets"
  status=0
  BENCH_1M_NETNS=1 ip netns exec "$ns" bash "$0" "$@" || status=$?
  exit "$status"
fi

source scripts/lib.sh
build_binaries

ulimit -n 20000 2>/dev/null || true
echo "== $conns connections: $nodes server processes x ~$(((conns + nodes - 1) / nodes)) sockets, open-file limit $(ulimit -n) each"

redis_port=$((port + 1))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
  --maxclients 10000 >"$tmp/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
wait_port 127.0.0.1 "$redis_port" || { echo "bench-1m: redis-server did not start" >&2; cat "$tmp/redis.log" >&2; exit 1; }

# One loop per node, and one P per Go process (servers and workers): with
# ~110 processes on two cores, an idle second P only spins (measured at
# 300,000 sockets: storm 7,876/s with GOMAXPROCS=1 vs 6,958/s with 2).
export GOMAXPROCS=${GOMAXPROCS:-1}
export REVERB_APP_ID=1 REVERB_APP_KEY=key REVERB_APP_SECRET=secret
export REVERB_APP_PING_INTERVAL=$ping
export REVERB_SCALING_ENABLED=true REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port
export REVERB_REUSE_PORT=true REVERB_STATE_DIR=$tmp/state REVERB_EVENT_LOOPS=$loops
server_pids=()
for i in $(seq "$nodes"); do
  "$tmp/reverb" start --host 127.0.0.1 --port "$port" >"$tmp/node-$i.log" 2>&1 &
  pids+=($!)
  server_pids+=($!)
done
wait_port 127.0.0.1 "$port" || true
sleep 2
all_alive "${server_pids[@]}" || { echo "bench-1m: a server process died:" >&2; tail -n 5 "$tmp"/node-*.log >&2; exit 1; }
pidlist=$(IFS=,; echo "${server_pids[*]}")

# Sampler: unix time, Slab kB, TCP sockets in use, TCP memory (pages),
# MemAvailable kB; one line a second.
(
  while :; do
    slab=$(awk '/^Slab:/ {print $2}' /proc/meminfo)
    avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    read -r inuse tcpmem < <(awk '/^TCP:/ {print $3, $NF}' /proc/net/sockstat)
    echo "$(date +%s) $slab $inuse $tcpmem $avail"
    sleep 1
  done
) >"$tmp/samples" &
pids+=($!)

# TCP trouble that costs time without costing CPU: a full accept queue
# drops a SYN and its client waits a second before it tries again. nstat
# keeps the counters' values at the start in its history file and prints
# the increase since then at the end.
export NSTAT_HISTORY=$tmp/nstat.history
nstat -n 2>/dev/null || true

redis_ticks() { awk '{print $14 + $15}' "/proc/$redis_pid/stat"; }
r0=$(redis_ticks)
echo "== storm at $ramp/s, hold ${hold} s (ping interval ${ping} s), then one broadcast to all"
# The coordinator (the measuring instrument and the publisher) runs at a
# higher priority than the ~110 busy processes, so its clock and progress
# stay on time; its workers go back to nice 0 like the servers.
coord_nice=()
[ "$(id -u)" = 0 ] && coord_nice=(nice -n -5)
status=0
# The harness bounds itself (connect, hold, drain and report, each at its
# limit: bench/coord.go runBudget); this outer bound only catches a hung
# harness. conns / 5000 is the drain's 200 µs a socket (drainLimit).
timeout $((hold + conns / ramp + connect_timeout + conns / 5000 + 300)) "${coord_nice[@]}" "$tmp/reverb-bench" fanout --worker-nice 0 --host 127.0.0.1 --port "$port" \
  --app-id 1 --key key --secret secret --server-pid "$pidlist" --conns "$conns" --channels 1 \
  --hold "${hold}s" --rate 1 --duration 1s --ramp "$ramp" --connect-timeout "${connect_timeout}s" --poll-gap "$gap" "$@" \
  >"$tmp/result.json" || status=$?
r1=$(redis_ticks)

hz=$(getconf CLK_TCK)
page=$(getconf PAGESIZE)
awk -v hz="$hz" -v page="$page" -v rt=$((r1 - r0)) '
  NR == 1 { slab0 = $2; avail0 = $5; t0 = $1 }
  { if ($2 > slab) slab = $2; if ($3 > inuse) inuse = $3; if ($4 > mem) mem = $4
    if (min == "" || $5 < min) min = $5; t1 = $1 }
  END {
    printf "kernel: slab %.0f MiB at the start, %.0f MiB at the peak; TCP buffers peak %.0f MiB; %d TCP sockets at the peak\n",
      slab0 / 1024, slab / 1024, mem * page / 1048576, inuse
    printf "memory: %.1f GiB in use at the peak (MemAvailable fell from %.1f to %.1f GiB)\n",
      (avail0 - min) / 1048576, avail0 / 1048576, min / 1048576
    if (t1 > t0) printf "redis-server: %.1f s CPU over the %d s run\n", rt / hz, t1 - t0
  }' "$tmp/samples"
nstat -z TcpExtListenOverflows TcpExtListenDrops TcpExtTCPSynRetrans TcpExtTCPTimeouts TcpExtTCPBacklogDrop 2>/dev/null |
  awk '/^TcpExt/ { sub(/^TcpExt/, "", $1); line = line " " $1 " " $2 } END { if (line != "") print "tcp:" line }' || true
for i in $(seq "$nodes"); do
  if grep -qiE 'panic|fatal' "$tmp/node-$i.log"; then
    echo "bench-1m: server process $i logged:" >&2
    grep -iE 'panic|fatal' "$tmp/node-$i.log" | head -5 >&2
  fi
done
all_alive "${server_pids[@]}" || echo "bench-1m: a server process died during the run" >&2
if [ -n "${LOG_DIR:-}" ]; then
  mkdir -p "$LOG_DIR" && cp "$tmp"/*.log "$tmp/samples" "$LOG_DIR"/ && echo "logs kept in $LOG_DIR"
fi
cat "$tmp/result.json"
exit "$status"
