#!/usr/bin/env bash
# tune-host.sh: check, and when asked set, the kernel and process limits a
# Linux host needs to hold many WebSocket connections with reverb.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tune-host.sh [--check | --apply [--persist]] [--conns N] [--port P] [--user U] [--pid PID]...

Compares this host's limits with what N concurrent WebSocket connections need
and prints, per item, the current value, what N needs, the recommended value and
the command that sets it. Nothing is changed unless --apply is given.

Modes:
  (none)      report only; exit 0
  --check     report only; exit 1 when any item is below what N needs
  --apply     set every item that is below what N needs with `sysctl -w` (and
              `prlimit` for running reverb processes), read each value back and
              print OK or FAILED; exit 1 when anything FAILED. Needs root.
  --persist   with --apply: also write /etc/sysctl.d/90-reverb.conf and
              /etc/security/limits.d/90-reverb.conf so the values survive a reboot
              (--persist alone implies --apply)

Options:
  --conns N   connections to size for (default 100000; 50k and 1m also work)
  --port P    the port reverb listens on, for the port-range note (default 8080)
  --user U    user in the limits.d lines (default: every user and root)
  --pid PID   the running reverb process to check and, with --apply, raise with
              prlimit; repeatable (default: every process named reverb)
  -h, --help  this text

Items: open files per process (nofile: ulimit, limits.d, systemd LimitNOFILE,
supervisord minfds), fs.nr_open, fs.file-max, net.ipv4.ip_local_port_range,
net.core.somaxconn, net.ipv4.tcp_max_syn_backlog, net.core.netdev_max_backlog,
net.ipv4.tcp_mem, net.ipv4.tcp_wmem, net.ipv4.tcp_rmem and, when conntrack is
loaded, net.netfilter.nf_conntrack_max. Values already better than the
recommendation are kept; the only values lowered are the per-socket buffer
sizes of tcp_wmem/tcp_rmem, because with many sockets smaller is better.
The sizes assume a host dedicated to reverb with nginx in front of it.

In a container most of these keys are read-only: the script says so and goes
on. net.* keys belong to the container's network namespace (docker run
--sysctl, Kubernetes securityContext.sysctls); fs.* and tcp_mem to the host.
EOF
}

mode=report
persist=0
conns=100000
port=8080
limits_user=""
pid_list=""

die() { echo "tune-host.sh: $*" >&2; exit 2; }

# parse_count accepts 100000, 100k or 1m.
parse_count() {
  local v=${1,,}
  case $v in
    *k) v=${v%k}; [[ $v =~ ^[0-9]+$ ]] || return 1; echo $((v * 1000)) ;;
    *m) v=${v%m}; [[ $v =~ ^[0-9]+$ ]] || return 1; echo $((v * 1000000)) ;;
    *) [[ $v =~ ^[0-9]+$ ]] || return 1; echo $((10#$v)) ;;
  esac
}

while (($#)); do
  case $1 in
    --check) mode=check ;;
    --apply) mode=apply ;;
    --persist) persist=1; mode=apply ;;
    --conns) [[ $# -ge 2 ]] || die "--conns needs a number"; conns=$(parse_count "$2") || die "bad --conns: $2"; shift ;;
    --conns=*) conns=$(parse_count "${1#*=}") || die "bad --conns: ${1#*=}" ;;
    --port) [[ $# -ge 2 ]] || die "--port needs a number"; port=$2; shift ;;
    --port=*) port=${1#*=} ;;
    --user) [[ $# -ge 2 ]] || die "--user needs a name"; limits_user=$2; shift ;;
    --user=*) limits_user=${1#*=} ;;
    --pid) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--pid needs a process id"; pid_list+=" $2"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "tune-host.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
((conns >= 1)) || die "--conns must be at least 1"
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
  die "bad --port: $port"
fi

if [[ $(uname -s) != Linux ]]; then
  echo "tune-host.sh: only Linux is supported (found $(uname -s))" >&2
  exit 2
fi

page=$(getconf PAGESIZE 2>/dev/null || echo 4096)
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
mem_pages=$((mem_kib * 1024 / page))
is_root=0
[[ $(id -u) == 0 ]] && is_root=1
in_container=0
if [[ -f /.dockerenv || -f /run/.containerenv ]] ||
  grep -qE '(docker|kubepods|containerd|lxc)' /proc/1/cgroup 2>/dev/null ||
  { command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --container --quiet; }; then
  in_container=1
fi

# Sizing. One connection is one socket (one file) in reverb and, with nginx in
# front, two sockets in nginx plus one connection nginx opens to reverb.
fds_need=$((conns + conns / 4 + 4096)) # sockets, plus room for API calls, Redis, logs
pow2() { local n=1; while ((n < $1)); do n=$((n * 2)); done; echo "$n"; }
nofile_rec=$(pow2 "$fds_need")
((nofile_rec < 1048576)) && nofile_rec=1048576
buf_default=16384      # tcp_wmem/tcp_rmem default per socket
buf_max=4194304        # one stalled socket pins at most this much in the kernel
port_lo=10000          # below it: Redis, MySQL, php-fpm, reverb's 8080
port_hi=65535

# Output of evaluate(): the current value, what N needs (text), the value to
# set, and whether the current value is good enough.
cur="" need="" target="" ok=0

sysctl_file() { echo "/proc/sys/${1//.//}"; }

# read_key prints a sysctl value with its fields separated by one space.
read_key() {
  local f
  f=$(sysctl_file "$1")
  [[ -r $f ]] || return 1
  local v
  v=$(<"$f") || return 1
  # shellcheck disable=SC2086 # splitting on purpose: one space between fields
  echo $v
}

max() { if (($1 > $2)); then echo "$1"; else echo "$2"; fi; }
min() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }

# evaluate KEY sets cur, need, target and ok for one sysctl; returns 1 when
# the key cannot be read here.
evaluate() {
  local key=$1 a b c n
  cur=$(read_key "$key") || return 1
  ok=0
  case $key in
    fs.nr_open)
      # The hard nofile limit cannot be set above fs.nr_open.
      need=">= $fds_need (caps the hard nofile limit)"
      ((cur >= fds_need)) && ok=1
      target=$(max "$cur" "$nofile_rec") ;;
    fs.file-max)
      n=$((3 * conns + 65536))
      need=">= $n (reverb's sockets and nginx's two per client, host-wide)"
      ((cur >= n)) && ok=1
      target=$(max "$cur" "$n") ;;
    net.netfilter.nf_conntrack_max)
      n=$((2 * conns + 65536))
      need=">= $n (client->nginx and nginx->reverb are both tracked)"
      ((cur >= n)) && ok=1
      target=$(max "$cur" "$n") ;;
    net.core.somaxconn | net.ipv4.tcp_max_syn_backlog)
      # `reverb restart` makes every client reconnect at once.
      n=$(min "$conns" 65535)
      need=">= $n (a restart reconnects every client at once)"
      ((cur >= n)) && ok=1
      target=$(max "$cur" 65535) ;;
    net.core.netdev_max_backlog)
      n=1000
      ((conns >= 10000)) && n=16384
      need=">= $n (packets queued per CPU during fan-out bursts)"
      ((cur >= n)) && ok=1
      target=$(max "$cur" 16384) ;;
    net.ipv4.ip_local_port_range)
      read -r a b <<<"$cur"
      n=$(min "$conns" $((port_hi - port_lo + 1)))
      need="range of >= $n ports (only connections this host opens use it)"
      (((b - a + 1) >= n)) && ok=1
      target="$(min "$a" "$port_lo") $(max "$b" "$port_hi")" ;;
    net.ipv4.tcp_mem)
      # Pages. max lets every socket hold its default send and receive buffers
      # at once; pressure (where the kernel starts shrinking buffers) is half.
      read -r a b c <<<"$cur"
      local nmin=$((conns * 4096 / page)) npress=$((conns * buf_default / page))
      local nmax=$((conns * 2 * buf_default / page)) cap=$((mem_pages * 3 / 4))
      need="(4 KiB, 16 KiB, 32 KiB a socket)"
      if ((cap > 0 && nmax > cap)); then
        nmax=$cap
        npress=$(min "$npress" $((cap * 2 / 3)))
        nmin=$(min "$nmin" $((cap / 3)))
        need="(capped at 3/4 of RAM)"
      fi
      need=">= $nmin $npress $nmax pages $need"
      ((a >= nmin && b >= npress && c >= nmax)) && ok=1
      target="$(max "$a" "$nmin") $(max "$b" "$npress") $(max "$c" "$nmax")" ;;
    net.ipv4.tcp_wmem | net.ipv4.tcp_rmem)
      read -r a b c <<<"$cur"
      need="default <= $buf_default, max <= $buf_max bytes (memory per idle or stalled socket)"
      ((b <= buf_default && c <= buf_max)) && ok=1
      target="$(min "$a" 4096) $(min "$b" "$buf_default") $(min "$c" "$buf_max")" ;;
    *) return 1 ;;
  esac
  return 0
}

why_cant() {
  local err=$1
  case $err in
    *"Read-only"* | *"read-only"*) echo "read-only here" ;;
    *"ermission denied"* | *"not permitted"*) echo "permission denied" ;;
    *"cannot stat"* | *"No such file"* | *"unknown key"*) echo "no such key in this kernel or namespace" ;;
    *"nvalid argument"*) echo "the kernel rejected the value" ;;
    *) echo "${err:-the value did not change}" ;;
  esac
}

# set_key KEY VALUE; prints why it failed on stdout and returns 1 on failure.
set_key() {
  local out
  if command -v sysctl >/dev/null 2>&1; then
    out=$(sysctl -q -w "$1=$2" 2>&1 >/dev/null) && return 0
  else
    out=$({ echo "$2" >"$(sysctl_file "$1")"; } 2>&1) && return 0
  fi
  why_cant "$out"
  return 1
}

keys=(
  fs.nr_open
  fs.file-max
  net.ipv4.ip_local_port_range
  net.core.somaxconn
  net.ipv4.tcp_max_syn_backlog
  net.core.netdev_max_backlog
  net.ipv4.tcp_mem
  net.ipv4.tcp_wmem
  net.ipv4.tcp_rmem
)
[[ -e $(sysctl_file net.netfilter.nf_conntrack_max) ]] && keys+=(net.netfilter.nf_conntrack_max)

low=0       # items below what N needs (check mode)
failed=0    # items that could not be set (apply mode)
cant_set=0  # failures that look like a container or missing root
backlog_raised=0
declare -A final=() # key -> value to persist

echo "reverb host limits for $conns connections (tune-host.sh --conns $conns, mode: $mode)"
echo "RAM $((mem_kib / 1024)) MiB, page $page bytes, $(nproc 2>/dev/null || echo '?') CPUs$([[ $in_container == 1 ]] && echo ', running in a container')"
if ((conns * 2 * buf_default / 1024 > mem_kib / 2 && mem_kib > 0)); then
  echo "warning: at 32 KiB of socket buffers per connection, $conns connections may need $((conns * 32 / 1024)) MiB of kernel memory, more than half of this host's RAM"
fi
echo

for key in "${keys[@]}"; do
  if ! evaluate "$key"; then
    printf '%-34s SKIPPED (cannot be read here)\n' "$key"
    [[ $mode == apply ]] || echo
    continue
  fi
  if [[ $mode != apply ]]; then
    if ((ok)); then
      printf '%-34s OK\n' "$key"
    else
      printf '%-34s LOW\n' "$key"
      low=$((low + 1))
    fi
    printf '  current      %s\n  need         %s\n  recommended  %s\n' "$cur" "$need" "$target"
    ((ok)) || printf '  command      sysctl -w %s="%s"\n' "$key" "$target"
    echo
    continue
  fi
  if ((ok)); then
    printf '%-34s OK (unchanged: %s)\n' "$key" "$cur"
    final[$key]=$cur
    continue
  fi
  was=$cur
  want=$target
  if reason=$(set_key "$key" "$want"); then
    evaluate "$key" || true
    if ((ok)); then
      printf '%-34s OK (was %s, now %s)\n' "$key" "$was" "$cur"
      final[$key]=$cur
      [[ $key == net.core.somaxconn ]] && backlog_raised=1
      continue
    fi
    reason="the kernel kept its value (owned by the host or a parent namespace)"
    cant_set=1
  else
    cur=$was
  fi
  printf '%-34s FAILED: %s (wanted %s, is %s)\n' "$key" "$reason" "$want" "$cur"
  failed=$((failed + 1))
  case $reason in "read-only here" | "permission denied") cant_set=1 ;; esac
  final[$key]="#$want"
done

if [[ $mode == apply ]] && ((cant_set)); then
  echo
  if ((!is_root)); then
    echo "note: run as root (sudo) to change kernel settings."
  fi
  if ((in_container)) || ((is_root)); then
    echo "note: these keys cannot be changed from here, which is normal in a container: set"
    echo "  net.* with docker run --sysctl KEY=VALUE (or the pod's securityContext.sysctls)"
    echo "  and fs.* / net.ipv4.tcp_mem on the host, whose kernel the container shares."
  fi
fi

# Port-range note: inbound clients use no local ports; only connections this
# host opens do, and they are unique per (source addr, destination addr:port).
if range=$(read_key net.ipv4.ip_local_port_range); then
  read -r lo hi <<<"$range"
  size=$((hi - lo + 1))
  echo
  echo "about ports: clients connecting in use no local port. The range limits what this host"
  echo "  opens itself: nginx -> reverb (one local port per proxied client) and load generators."
  echo "  One upstream address carries at most $size proxied clients with the current range."
  if ((conns > size)); then
    echo "  For $conns behind nginx on this host, list $(((conns + size - 1) / size)) or more upstream"
    echo "  addresses (127.0.0.1:$port, 127.0.0.2:$port, ...; reverb on 0.0.0.0 answers on all of"
    echo "  127/8): see examples/nginx.conf."
  fi
  if ((port >= lo && port <= hi)); then
    echo "  Port $port is inside the range: reserve it so no outgoing connection takes it before"
    echo "  reverb starts: sysctl -w net.ipv4.ip_local_reserved_ports=$port"
  fi
fi

# nofile: the per-process open-file limit. The server raises its soft limit
# to the hard one at start, so the hard limit of whatever starts it counts.
echo
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
as_num() { if [[ $1 == unlimited ]]; then echo 9223372036854775807; else echo "$1"; fi; }
printf '%-34s' "nofile (open files per process)"
pids=${pid_list:-$(pgrep -x reverb 2>/dev/null || true)}
nofile_low=0
if [[ -n $pids ]]; then
  echo
  for pid in $pids; do
    if ! line=$(grep '^Max open files' "/proc/$pid/limits" 2>/dev/null); then
      printf '  pid %-15s not running or not readable\n' "$pid"
      continue
    fi
    read -r _ _ _ psoft phard _ <<<"$line"
    status=OK
    if (($(as_num "$psoft") < fds_need)); then
      status=LOW
      if [[ $mode == apply ]]; then
        # Raising the hard limit needs CAP_SYS_RESOURCE; without it the soft
        # limit can still go up to the hard one.
        out=$(prlimit --pid "$pid" --nofile="$nofile_rec:$nofile_rec" 2>&1) ||
          { [[ $phard != unlimited ]] && (($(as_num "$phard") >= fds_need)) &&
            prlimit --pid "$pid" --nofile="$phard:$phard" 2>/dev/null; } || true
        read -r _ _ _ psoft phard _ <<<"$(grep '^Max open files' "/proc/$pid/limits" 2>/dev/null || echo x x x 0 0)"
        if (($(as_num "$psoft") >= fds_need)); then
          status="OK (raised until it restarts; make it permanent as shown below)"
        else
          status="FAILED: $(why_cant "$out") (raising a hard limit needs root with CAP_SYS_RESOURCE)"
          failed=$((failed + 1))
        fi
      else
        low=$((low + 1))
      fi
    fi
    printf '  pid %-15s soft %s, hard %s, need >= %s: %s\n' "$pid" "$psoft" "$phard" "$fds_need" "$status"
  done
  printf '  %-19s soft %s, hard %s\n' 'this shell' "$soft" "$hard"
else
  if (($(as_num "$hard") >= fds_need)); then
    echo " OK"
  else
    nofile_low=1
    if [[ $mode == apply ]]; then
      echo " PENDING (a script cannot raise the limit of the shell or service that starts reverb)"
    else
      echo " LOW"
      low=$((low + 1))
    fi
  fi
  printf '  this shell   soft %s, hard %s (reverb started here raises soft to hard)\n' "$soft" "$hard"
  printf '  need         hard >= %s\n' "$fds_need"
fi
u=${limits_user:-*}
printf '  recommended  %s, set where reverb is started:\n' "$nofile_rec"
printf '    shell, root:  ulimit -Hn %s; ulimit -Sn %s   (this session only)\n' "$nofile_rec" "$nofile_rec"
printf '    PAM logins:   /etc/security/limits.d/90-reverb.conf\n'
printf '                    %s soft nofile %s\n                    %s hard nofile %s\n' "$u" "$nofile_rec" "$u" "$nofile_rec"
[[ -z $limits_user ]] && printf '                    root soft nofile %s\n                    root hard nofile %s\n' "$nofile_rec" "$nofile_rec"
printf '                  (new login sessions only; systemd services and supervisord ignore it)\n'
printf '    systemd:      LimitNOFILE=%s in [Service]   (examples/reverb.service)\n' "$nofile_rec"
printf '    supervisord:  minfds=%s in [supervisord], then restart the supervisor service;\n' "$nofile_rec"
printf '                  it raises its own limit at start and its programs inherit it\n'
printf '    nginx:        worker_rlimit_nofile and worker_connections above 2 x clients per worker\n'
printf '                  (examples/nginx.conf)\n'

# write_file PATH: stdin to PATH through a temporary file, so a failed write
# leaves any previous file intact.
write_file() {
  local tmp="$1.tmp.$$"
  if cat >"$tmp" 2>/dev/null && mv "$tmp" "$1" 2>/dev/null; then
    return 0
  fi
  rm -f "$tmp" 2>/dev/null || true
  return 1
}

if ((persist)); then
  echo
  conf=/etc/sysctl.d/90-reverb.conf
  if {
    echo "# Written by reverb scripts/tune-host.sh --conns $conns on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo "# Lines starting with # could not be set on this host when it ran."
    for key in "${keys[@]}"; do
      v=${final[$key]-}
      [[ -z $v ]] && continue
      if [[ $v == \#* ]]; then
        echo "# $key = ${v#\#}"
      else
        echo "$key = $v"
      fi
    done
  } | write_file "$conf"; then
    echo "wrote $conf (read at boot by systemd-sysctl, or now with: sysctl --system)"
  else
    echo "FAILED to write $conf (not root, or /etc is read-only)"
    failed=$((failed + 1))
  fi
  lconf=/etc/security/limits.d/90-reverb.conf
  if {
    echo "# Written by reverb scripts/tune-host.sh: open files for login sessions."
    echo "# Services need LimitNOFILE= (systemd) or minfds= (supervisord) instead."
    printf '%s soft nofile %s\n%s hard nofile %s\n' "$u" "$nofile_rec" "$u" "$nofile_rec"
    if [[ -z $limits_user ]]; then
      printf 'root soft nofile %s\nroot hard nofile %s\n' "$nofile_rec" "$nofile_rec"
    fi
  } | write_file "$lconf"; then
    echo "wrote $lconf (applies from the next login)"
  else
    echo "FAILED to write $lconf (not root, or /etc is read-only)"
    failed=$((failed + 1))
  fi
fi

echo
case $mode in
  report)
    echo "$low item(s) below what $conns connections need. Nothing was changed; --apply sets them."
    ;;
  check)
    echo "$low item(s) below what $conns connections need."
    ((low == 0)) || exit 1
    ;;
  apply)
    ((nofile_low)) && echo "nofile still needs one of the lines above where reverb is started."
    ((backlog_raised)) && echo "reverb reads somaxconn when it starts: restart it to use the new value."
    if ((failed)); then
      echo "$failed item(s) FAILED."
      exit 1
    fi
    echo "all items OK."
    ;;
esac
