# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source this
# Shared by scripts/cluster-up.sh, cluster-down.sh and demo.sh (sourced, not run): where the
# local cluster keeps its state, and how to tell that a pid is still a process it started.
#
# var/cluster/
#   pids/NAME.pid, NAME.exe   pid and executable of each process (redis, mock, tollgate-N, nginx)
#   run/NAME.sh               how NAME was started (command and TOLLGATE_* environment), so
#                             scripts/chaos.sh can start it again after killing it
#   logs/                     one log per process, nginx access and error logs
#   redis/                    redis-server's working directory (persisted only with CLUSTER_REDIS_PERSIST=1)
#   usage.jsonl               what the mock provider billed, one line per reply (--usage-log)
#   nginx/                    nginx prefix: generated nginx.conf + tollgate.conf, temp dirs
#   cluster.env               the ports in use, for demo.sh and you

cluster_dir=${CLUSTER_DIR:-$PWD/var/cluster}   # CLUSTER_DIR: another cluster beside it (the chaos smoke in make test)
cluster_pids=$cluster_dir/pids
cluster_logs=$cluster_dir/logs

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# Prints the pid of NAME when that process is alive and still runs the executable recorded when
# it started (a stale pid file whose pid was reused by another program is never signalled).
cluster_pid() {
  local pid exe
  pid=$(cat "$cluster_pids/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}   # the binary was rebuilt while it ran
  [ "$exe" = "$(cat "$cluster_pids/$1.exe" 2>/dev/null)" ] || return 1
  echo "$pid"
}

# Names of the processes with a pid file, in start order.
cluster_names() {
  local f
  for name in redis mock; do [ -e "$cluster_pids/$name.pid" ] && echo "$name"; done
  for f in "$cluster_pids"/tollgate-*.pid; do [ -e "$f" ] && basename "$f" .pid; done | sort -t- -k2 -n
  [ -e "$cluster_pids/nginx.pid" ] && echo nginx
  return 0
}

# True when something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts "$@" in the background in its own session (so a Ctrl-C in this terminal does not reach
# it), its output appended to logs/NAME.log, and records its pid and executable. The command and
# the TOLLGATE_* environment go to run/NAME.sh, which `restart NAME` runs again.
start() {
  local name=$1; shift
  mkdir -p "$cluster_dir/run"
  {
    echo '#!/usr/bin/env bash'
    export -p | grep -E '^declare -x TOLLGATE_[A-Z0-9_]*=' || true
    printf 'exec'; printf ' %q' "$@"; echo
  } >"$cluster_dir/run/$name.sh"
  readlink -f "$(command -v "$1")" >"$cluster_pids/$name.exe"
  restart "$name"
}

# Starts NAME again exactly as `start` first did (after a crash or a deliberate kill).
restart() {
  setsid bash "$cluster_dir/run/$1.sh" >>"$cluster_logs/$1.log" 2>&1 </dev/null &
  echo $! >"$cluster_pids/$1.pid"
}
