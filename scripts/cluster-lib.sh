# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source this
# Shared by scripts/cluster-up.sh, cluster-down.sh and demo.sh (sourced, not run): where the
# local cluster keeps its state, and how to tell that a pid is still a process it started.
#
# var/cluster/
#   pids/NAME.pid, NAME.exe   pid and executable of each process (redis, mock, tollgate-N, nginx)
#   logs/                     one log per process, nginx access and error logs
#   redis/                    redis-server's working directory (nothing persisted)
#   nginx/                    nginx prefix: generated nginx.conf + tollgate.conf, temp dirs
#   cluster.env               the ports in use, for demo.sh and you

cluster_dir=$PWD/var/cluster
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
