#!/usr/bin/env bash
# Short load check behind `make bench`: builds the server and reverb-bench,
# starts the server on loopback, runs a connect scenario and a fanout
# comparison against the reference server (ceiling of this machine), and
# stops everything. Takes well under two minutes.
#
# Environment: BENCH_PORT (default 18090), BENCH_CONNS (5000),
# BENCH_FANOUT_CONNS (2000), BENCH_RATE (200 events/s), BENCH_SECONDS (8),
# BENCH_METRICS (1: the metrics listener on at BENCH_PORT+1 and scraped
# once a second for the whole run, as a dashboard would; 0: off).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BENCH_PORT:-18090}
conns=${BENCH_CONNS:-5000}
fconns=${BENCH_FANOUT_CONNS:-2000}
rate=${BENCH_RATE:-200}
secs=${BENCH_SECONDS:-8}
metrics=${BENCH_METRICS:-1}

source scripts/lib.sh
build_binaries

metrics_env=(REVERB_METRICS_ENABLED=false)
if [ "$metrics" = 1 ]; then
	metrics_env=(REVERB_METRICS_ENABLED=true REVERB_METRICS_PORT=$((port + 1)))
fi
env REVERB_APP_ID=1 REVERB_APP_KEY=key REVERB_APP_SECRET=secret "${metrics_env[@]}" \
	"$tmp/reverb" start --host 127.0.0.1 --port "$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_port 127.0.0.1 "$port" || true
sleep 0.2
if ! all_alive "$server_pid"; then
	echo "server did not start (port $port busy? set BENCH_PORT):" >&2
	cat "$tmp/server.log" >&2
	exit 1
fi

if [ "$metrics" = 1 ]; then
	(while sleep 1; do
		curl -sf "http://127.0.0.1:$((port + 1))/metrics" >/dev/null || true
		curl -sf "http://127.0.0.1:$((port + 1))/api/stats" >/dev/null || true
	done) &
	pids+=($!)
	echo "metrics on: http://127.0.0.1:$((port + 1))/ (scraped once a second)"
fi

common=(--host 127.0.0.1 --port "$port" --app-id 1 --key key --secret secret --server-pid "$server_pid")

echo "== connect: $conns sockets, private channels, held ${secs}s"
timeout 60 "$tmp/reverb-bench" connect "${common[@]}" --conns "$conns" --channels 50 \
	--channel-type private --ramp 5000 --duration "${secs}s"

echo
echo "== fanout: $fconns subscribers over 20 channels at $rate events/s, ours vs ref"
timeout 80 "$tmp/reverb-bench" compare "${common[@]}" --conns "$fconns" --channels 20 \
	--rate "$rate" --duration "${secs}s" --ramp 5000
