#!/usr/bin/env bash
# multi-stop.sh: stop the reverb processes multi-start.sh started, and no
# other process.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: multi-stop.sh [--port P | --pid-file F] [--timeout S]

Sends SIGTERM to each process listed in the pid file multi-start.sh wrote (the
server closes every socket with 4200 and exits), waits, sends SIGKILL to any
still running after the timeout, and removes the pid file. A listed id that now
belongs to another process (same id, different start time) is left alone.

  --port P      the port given to multi-start.sh (default: $REVERB_SERVER_PORT
                or 8080); selects ${TMPDIR:-/tmp}/reverb-multi-P.pid
  --pid-file F  the pid file, when multi-start.sh was given one
  --timeout S   seconds to wait after SIGTERM (default 15; the server gives up
                its graceful shutdown after 10)
  -h, --help    this text

Exit status: 0 when every listed process is gone, 1 otherwise.
EOF
}

die() { echo "multi-stop.sh: $*" >&2; exit 2; }

port=${REVERB_SERVER_PORT:-8080}
pid_file=""
timeout=15
while (($#)); do
  case $1 in
    --port) [[ $# -ge 2 ]] || die "--port needs a number"; port=$2; shift ;;
    --port=*) port=${1#*=} ;;
    --pid-file) [[ $# -ge 2 ]] || die "--pid-file needs a path"; pid_file=$2; shift ;;
    --pid-file=*) pid_file=${1#*=} ;;
    --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout=$2; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "multi-stop.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $port =~ ^[0-9]+$ ]] || die "bad --port: $port"
[[ $timeout =~ ^[0-9]+$ ]] || die "bad --timeout: $timeout"
pid_file=${pid_file:-${TMPDIR:-/tmp}/reverb-multi-$port.pid}
[[ -f $pid_file ]] || die "no pid file at $pid_file (nothing started, or already stopped)"

proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  local -a f
  read -r -a f <<<"$stat"
  echo "${f[19]}"
}

# ours PID START: the process is alive and is the one multi-start.sh started.
# Without /proc (not Linux) only liveness can be checked.
ours() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ -d /proc/$1 ]] || return 0
  [[ $(proc_start "$1" || true) == "$2" ]]
}

pids=()
starts=()
while read -r pid start _; do
  [[ $pid =~ ^[0-9]+$ ]] || continue
  if ours "$pid" "${start:-}"; then
    pids+=("$pid")
    starts+=("${start:-}")
  elif kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid now belongs to another process; left alone"
  else
    echo "pid $pid had already exited"
  fi
done <"$pid_file"

for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done

deadline=$((SECONDS + timeout))
while :; do
  left=()
  for ((i = 0; i < ${#pids[@]}; i++)); do
    ours "${pids[i]}" "${starts[i]}" && left+=("${pids[i]}")
  done
  ((${#left[@]} == 0)) && break
  if ((SECONDS >= deadline)); then
    echo "still running after ${timeout}s, sending SIGKILL: ${left[*]}"
    for ((i = 0; i < ${#pids[@]}; i++)); do
      if ours "${pids[i]}" "${starts[i]}"; then kill -KILL "${pids[i]}" 2>/dev/null || true; fi
    done
    sleep 0.5
    break
  fi
  sleep 0.2
done

status=0
for ((i = 0; i < ${#pids[@]}; i++)); do
  if ours "${pids[i]}" "${starts[i]}"; then
    echo "pid ${pids[i]} is still running"
    status=1
  fi
done
if ((status == 0)); then
  rm -f "$pid_file"
  echo "stopped ${#pids[@]} reverb process(es)${pids[0]+: ${pids[*]}}"
fi
exit "$status"
