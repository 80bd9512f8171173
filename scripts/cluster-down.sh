#!/usr/bin/env bash
# `make cluster-stop`: stops what scripts/cluster-up.sh started, and only that (by the pid files
# in var/cluster/pids/, each checked against the executable it started). Safe to run twice.
#
# Order: nginx first (no new requests), then the replicas (SIGTERM: they finish in-flight
# requests), then the mock provider and Redis. Whatever is still up after
# ${CLUSTER_STOP_TIMEOUT:-20} seconds gets SIGKILL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cluster-lib.sh

timeout=${CLUSTER_STOP_TIMEOUT:-20}

if [ ! -d "$cluster_pids" ]; then
  say "not running"
  exit 0
fi

# Sends SIGNAL to each NAME still running and waits for all of them to exit; escalates to
# SIGKILL at the deadline. nginx's workers are its master's children: a killed master's workers
# are killed by parent pid.
stop() {
  local signal=$1; shift
  local name pid pids=() names=()
  for name in "$@"; do
    if pid=$(cluster_pid "$name"); then
      kill "-$signal" "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$name")
    elif [ -e "$cluster_pids/$name.pid" ]; then
      say "$name was not running"
    fi
  done
  ((${#pids[@]})) || return 0
  say "stopping ${names[*]}"
  local deadline=$((SECONDS + timeout)) alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do
      if [ -e "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; then alive+=("$pid"); fi
    done
    ((${#alive[@]})) || break
    if ((SECONDS >= deadline)); then
      say "still running after ${timeout}s, killing: ${alive[*]}"
      for pid in "${alive[@]}"; do
        if [ "$signal" = QUIT ]; then pkill -KILL -P "$pid" 2>/dev/null || true; fi   # nginx workers
        kill -KILL "$pid" 2>/dev/null || true
      done
      break
    fi
    sleep 0.2
  done
}

mapfile -t names < <(cluster_names)
replicas=()
for name in "${names[@]}"; do [[ $name == tollgate-* ]] && replicas+=("$name"); done

stop QUIT nginx             # graceful: finishes requests in flight
((${#replicas[@]} == 0)) || stop TERM "${replicas[@]}"
stop TERM mock
stop TERM redis

rm -rf "$cluster_pids" "$cluster_dir/cluster.env"
say "stopped"
