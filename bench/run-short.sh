#!/usr/bin/env bash
# Short load check behind `make bench`: builds the server and reverb-bench,
# starts the server on loopback, runs a connect scenario and a fanout
# comparison against the reference server (ceiling of this machine), and
# stops everything. Takes well under two minutes.
#
# Environment: BENCH_PORT (default 18090), BENCH_CONNS (5000),
# BENCH_FANOUT_CONNS (2000), BENCH_RATE (200 events/s), BENCH_SECONDS (8).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BENCH_PORT:-18090}
conns=${BENCH_CONNS:-5000}
fconns=${BENCH_FANOUT_CONNS:-2000}
rate=${BENCH_RATE:-200}
secs=${BENCH_SECONDS:-8}

tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

go build -o "$tmp/reverb" ./cmd/reverb
go build -o "$tmp/reverb-bench" ./bench/cmd/reverb-bench

REVERB_APP_ID=1 REVERB_APP_KEY=key REVERB_APP_SECRET=secret \
	"$tmp/reverb" start --host 127.0.0.1 --port "$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
	sleep 0.1
done
sleep 0.2
if ! kill -0 "$server_pid" 2>/dev/null; then
	echo "server did not start (port $port busy? set BENCH_PORT):" >&2
	cat "$tmp/server.log" >&2
	server_pid=
	exit 1
fi

common=(--host 127.0.0.1 --port "$port" --app-id 1 --key key --secret secret --server-pid "$server_pid")

echo "== connect: $conns sockets, private channels, held ${secs}s"
timeout 60 "$tmp/reverb-bench" connect "${common[@]}" --conns "$conns" --channels 50 \
	--channel-type private --ramp 5000 --duration "${secs}s"

echo
echo "== fanout: $fconns subscribers over 20 channels at $rate events/s, ours vs ref"
timeout 80 "$tmp/reverb-bench" compare "${common[@]}" --conns "$fconns" --channels 20 \
	--rate "$rate" --duration "${secs}s" --ramp 5000
