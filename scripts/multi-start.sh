#!/usr/bin/env bash
# multi-start.sh: start several reverb processes that share one port through
# SO_REUSEPORT, for load runs bigger than one process can hold on this host.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: multi-start.sh -n K [--bin PATH] [--port P] [--pid-file F] [--log-dir D]
                      [--up-url URL] [--timeout S] [-- extra `reverb start` args]

Starts K `reverb start` processes on ONE port. Each gets REVERB_REUSE_PORT=true
(our extension: the kernel then spreads new connections over all of them), its
own log file, and the same extra arguments. The script writes their process ids
to the pid file, waits until every one has bound the port and /up answers, and
exits. scripts/multi-stop.sh with the same --port (or --pid-file) stops exactly
those processes.

  -n K          number of processes (required)
  --bin PATH    the reverb binary (default: $REVERB_BIN, `reverb` in PATH, or
                bin/reverb of this repository; `make build` writes it)
  --port P      the shared port (default: $REVERB_SERVER_PORT or 8080); give the
                port here, not in the extra arguments
  --pid-file F  default: ${TMPDIR:-/tmp}/reverb-multi-P.pid
  --log-dir D   one log per process, reverb-1.log ... (default: ${TMPDIR:-/tmp}/reverb-multi-P)
  --up-url URL  health check (default: http://127.0.0.1:P/up; change it for a
                --path prefix or TLS)
  --timeout S   seconds to wait for all of them (default 15)
  -h, --help    this text

With scaling on (REVERB_SCALING_ENABLED=true and a Redis server, in the
environment or the .env) the processes behave as one server: an event
published through any of them reaches subscribers on all of them. Without it
each process is a separate server that shares only the port: a socket sees only
events triggered through the process it landed on, an HTTP API call lands on a
random process, and presence, counts and limits are per process. That is fine
for connection-count and memory runs, wrong for anything that checks delivery.

`reverb restart` stops all of them (they share the restart stamp in
REVERB_STATE_DIR) and nothing here starts them again. For production, let a
supervisor start the processes (examples/reverb.supervisor.conf, numprocs).

Example:
  scripts/multi-start.sh -n 4 --port 8080 -- --env-file=/var/www/app/.env
  scripts/multi-stop.sh --port 8080
EOF
}

die() { echo "multi-start.sh: $*" >&2; exit 2; }

count=""
bin=${REVERB_BIN:-}
port=${REVERB_SERVER_PORT:-8080}
pid_file=""
log_dir=""
up_url=""
timeout=15
extra=()

while (($#)); do
  case $1 in
    -n) [[ $# -ge 2 ]] || die "-n needs a number"; count=$2; shift ;;
    -n*) count=${1#-n} ;;
    --bin) [[ $# -ge 2 ]] || die "--bin needs a path"; bin=$2; shift ;;
    --bin=*) bin=${1#*=} ;;
    --port) [[ $# -ge 2 ]] || die "--port needs a number"; port=$2; shift ;;
    --port=*) port=${1#*=} ;;
    --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; pid_file=$2; shift ;;
    --pid-file=*) pid_file=${1#*=} ;;
    --log-dir) [[ $# -ge 2 ]] || die "--log-dir needs a path"; log_dir=$2; shift ;;
    --log-dir=*) log_dir=${1#*=} ;;
    --up-url) [[ $# -ge 2 ]] || die "--up-url needs a URL"; up_url=$2; shift ;;
    --up-url=*) up_url=${1#*=} ;;
    --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout=$2; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "multi-start.sh: unknown argument: $1 (extra reverb arguments go after --)" >&2; exit 2 ;;
  esac
  shift
done

[[ -n $count ]] || { usage >&2; exit 2; }
posint() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= $2)); }
posint "$count" 100000 || die "-n must be a positive number, not $count"
posint "$port" 65535 || die "bad --port: $port"
posint "$timeout" 86400 || die "bad --timeout: $timeout"
for a in ${extra[@]+"${extra[@]}"}; do
  case $a in --port | --port=*) die "give the port with multi-start.sh --port, not after --" ;; esac
done

if [[ -z $bin ]]; then
  if command -v reverb >/dev/null 2>&1; then
    bin=$(command -v reverb)
  else
    bin="$(cd "$(dirname "$0")/.." && pwd)/bin/reverb"
  fi
fi
[[ -x $bin ]] || die "no reverb binary at $bin (build one with \`make build\` or give --bin)"

tmp=${TMPDIR:-/tmp}
pid_file=${pid_file:-$tmp/reverb-multi-$port.pid}
log_dir=${log_dir:-$tmp/reverb-multi-$port}
up_url=${up_url:-http://127.0.0.1:$port/up}

# proc_start prints a process's start time (field 22 of /proc/PID/stat), which
# tells a live process from a later one that reused its id.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the command name may hold spaces and parentheses
  local -a f
  read -r -a f <<<"$stat"
  echo "${f[19]}"
}

alive() { kill -0 "$1" 2>/dev/null; }

# Refuse to start over a running group: with SO_REUSEPORT the new processes
# would silently join it.
if [[ -f $pid_file ]]; then
  while read -r pid start _; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if alive "$pid" && [[ $(proc_start "$pid" || true) == "${start:-}" ]]; then
      die "processes from $pid_file are still running (pid $pid); stop them with: scripts/multi-stop.sh --pid-file $pid_file"
    fi
  done <"$pid_file"
fi
if command -v ss >/dev/null 2>&1; then
  if listeners=$(ss -Hltnp "sport = :$port" 2>/dev/null) && [[ -n $listeners ]]; then
    echo "$listeners" >&2
    die "port $port is already in use: a process without SO_REUSEPORT makes every start fail, one with it would share the port"
  fi
fi

mkdir -p "$log_dir"
pids=()
starts=()

# stop_started ends the processes this run started, and only those.
stop_started() {
  local pid i
  for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    local any=0
    for pid in ${pids[@]+"${pids[@]}"}; do alive "$pid" && any=1; done
    ((any)) || break
    sleep 0.2
  done
  for pid in ${pids[@]+"${pids[@]}"}; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$pid_file"
}

fail() {
  echo "multi-start.sh: $*" >&2
  local i
  for ((i = 1; i <= count; i++)); do
    [[ -s $log_dir/reverb-$i.log ]] || continue
    echo "--- $log_dir/reverb-$i.log (last lines)" >&2
    tail -n 5 "$log_dir/reverb-$i.log" >&2
  done
  stop_started
  exit 1
}
trap 'fail "interrupted"' INT TERM

for ((i = 1; i <= count; i++)); do
  # The background job execs the binary, so $! is reverb's own pid.
  REVERB_REUSE_PORT=true nohup "$bin" start --port "$port" ${extra[@]+"${extra[@]}"} \
    >"$log_dir/reverb-$i.log" 2>&1 </dev/null &
  pids+=("$!")
  starts+=("$(proc_start "$!" || echo 0)")
done
{
  echo "# reverb processes started by multi-start.sh on port $port: pid start-time"
  for ((i = 0; i < count; i++)); do echo "${pids[i]} ${starts[i]}"; done
} >"$pid_file"

# Ready = every process printed its startup line (it has bound the port) and
# is still alive, and /up answers on the shared port.
deadline=$((SECONDS + timeout))
while :; do
  ready=0
  for ((i = 0; i < count; i++)); do
    alive "${pids[i]}" || fail "process $((i + 1)) (pid ${pids[i]}) exited during start"
    grep -q '^Starting ' "$log_dir/reverb-$((i + 1)).log" 2>/dev/null && ready=$((ready + 1))
  done
  if ((ready == count)); then
    if ! command -v curl >/dev/null 2>&1; then
      echo "note: curl is missing, /up was not checked"
      break
    fi
    if curl -fsS -k -m 2 "$up_url" 2>/dev/null | grep -q '"health"'; then
      break
    fi
  fi
  ((SECONDS < deadline)) || fail "not ready after ${timeout}s ($ready of $count started, $up_url not answering)"
  sleep 0.2
done
trap - INT TERM

# A process that bound the port without SO_REUSEPORT would have made all the
# others fail; check that each one really holds a listener.
if command -v ss >/dev/null 2>&1 && listeners=$(ss -Hltnp "sport = :$port" 2>/dev/null) && [[ $listeners == *pid=* ]]; then
  for pid in "${pids[@]}"; do
    [[ $listeners == *"pid=$pid,"* ]] || fail "pid $pid is running but holds no listener on port $port"
  done
fi

echo "started $count reverb processes on port $port: ${pids[*]}"
echo "pid file: $pid_file"
echo "logs:     $log_dir/reverb-{1..$count}.log"
echo "stop:     $(dirname "$0")/multi-stop.sh --pid-file $pid_file"
if grep -q '^No app configured' "$log_dir"/reverb-*.log 2>/dev/null; then
  echo "warning: no app is configured, so the processes serve the development app kept in the"
  echo "         state directory (REVERB_STATE_DIR, printed in the logs). For your own app:"
  echo "         -- --env-file=PATH, or REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET."
fi
if [[ ${REVERB_SCALING_ENABLED:-} != true ]]; then
  echo "note: unless scaling is on in the .env or config (REVERB_SCALING_ENABLED=true with Redis),"
  echo "      each process is a separate server sharing only the port (see --help)."
fi
