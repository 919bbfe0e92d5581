# lib.sh: sourced by the load scripts (bench/run-short.sh,
# scripts/bench-100k.sh) from the repository root. It makes a private
# temporary directory $tmp, stops every PID the script appends to `pids`
# when it exits (Ctrl-C included), and offers:
#   build_binaries        reverb and reverb-bench into $tmp
#   wait_port HOST PORT   until something accepts there (at most 10 s)
#   all_alive PID...      whether every PID still runs
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

build_binaries() {
	go build -o "$tmp/reverb" ./cmd/reverb
	go build -o "$tmp/reverb-bench" ./bench/cmd/reverb-bench
}

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

all_alive() {
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null || return 1
	done
}
