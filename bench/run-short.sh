#!/usr/bin/env bash
# Short load check behind `make bench`: builds the server and reverb-bench,
# starts the server on loopback, runs a connect scenario and a fanout
# comparison against the reference server (ceiling of this machine), and
# stops everything. Takes well under two minutes.
#
# Environment: BENCH_PORT (default 18090), BENCH_CONNS (5000),
# BENCH_FANOUT_CONNS (2000), BENCH_RATE (200 events/s), BENCH_SECONDS (8),
# BENCH_METRICS (1: the metrics listener on at BENCH_PORT+1 and scraped
# once a second for the whole run, as a dashboard would; 0: off),
# BENCH_WEBHOOKS (1: the app sends every webhook event to a sink at
# BENCH_PORT+2 that answers 200; 0: no webhooks).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BENCH_PORT:-18090}
conns=${BENCH_CONNS:-5000}
fconns=${BENCH_FANOUT_CONNS:-2000}
rate=${BENCH_RATE:-200}
secs=${BENCH_SECONDS:-8}
metrics=${BENCH_METRICS:-1}
webhooks=${BENCH_WEBHOOKS:-1}

source scripts/lib.sh
build_binaries

extra_env=(REVERB_METRICS_ENABLED=false)
if [ "$metrics" = 1 ]; then
	extra_env=(REVERB_METRICS_ENABLED=true REVERB_METRICS_PORT=$((port + 1)))
fi
if [ "$webhooks" = 1 ]; then
	go build -o "$tmp/webhook-sink" ./bench/cmd/webhook-sink
	"$tmp/webhook-sink" -addr "127.0.0.1:$((port + 2))" &
	sink_pid=$!
	pids+=("$sink_pid")
	wait_port 127.0.0.1 $((port + 2)) || true
	extra_env+=(REVERB_APP_WEBHOOK_URL="http://127.0.0.1:$((port + 2))/webhook")
	echo "webhooks on: every event to http://127.0.0.1:$((port + 2))/webhook"
fi
env REVERB_APP_ID=1 REVERB_APP_KEY=key REVERB_APP_SECRET=secret "${extra_env[@]}" \
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

if [ "$webhooks" = 1 ]; then
	sleep 4 # channel_vacated waits 3 s after the last socket leaves
	kill "$sink_pid"
	wait "$sink_pid" 2>/dev/null || true
fi
