#!/usr/bin/env bash
# `make chaos`: the local cluster (scripts/cluster-up.sh: Redis persisted with fsync always, the mock
# provider, 3 replicas, nginx) under mixed load (scripts/chaos_load.py), while this kills, in turn,
# Redis, a replica in the middle of its streams, and the provider, each with SIGKILL, and starts
# it again. Then it waits out the leases of the killed requests, lets a request per client reap
# them, and compares what the provider billed with Redis (scripts/chaos_check.py).
#
# Prints requests served, refused and errored, the overshoot, lost settlements and leases
# reclaimed; exits 1 when a client went over its limit or a settlement was lost.
# Knobs: CHAOS_CLIENTS (8), CHAOS_WORKERS (12), CHAOS_PHASE_SECONDS (8), CHAOS_LEASE_SECONDS (6),
# CHAOS_DAILY_NANO_USD (7000000: each client's daily limit, $0.007, so most run out before the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cluster-lib.sh

clients=${CHAOS_CLIENTS:-8}
workers=${CHAOS_WORKERS:-12}
phase=${CHAOS_PHASE_SECONDS:-8}
lease=${CHAOS_LEASE_SECONDS:-6}
limit=${CHAOS_DAILY_NANO_USD:-7000000}
work=$PWD/var/chaos
step() { printf 'chaos: %s\n' "$*"; }

rm -rf "$work" && mkdir -p "$work"
# The shipped config with short leases, so the drain does not wait ten minutes.
sed -e "s/lease_seconds: [0-9]*/lease_seconds: $lease/" deploy/tollgate.yaml >"$work/tollgate.yaml"
grep -q "lease_seconds: $lease" "$work/tollgate.yaml" || { echo "chaos: deploy/tollgate.yaml has no budget.lease_seconds to shorten" >&2; exit 1; }

step "starting the local cluster (logs in ${cluster_dir#$PWD/}/logs/)"
if ! CLUSTER_REDIS_PERSIST=1 CLUSTER_CONFIG="$work/tollgate.yaml" scripts/cluster-up.sh >"$work/cluster-up.log" 2>&1; then
  cat "$work/cluster-up.log" >&2
  exit 1
fi
trap 'touch "$work/stop"; scripts/cluster-down.sh >/dev/null 2>&1 || true' EXIT
source "$cluster_dir/cluster.env"
day=$(date -u +%F)
if [ "$(date -u -d "+$((4 * phase + lease + 30)) seconds" +%F)" != "$day" ]; then
  echo "chaos: the run would cross midnight UTC; the check reads one day's counters, so try again in a minute" >&2
  exit 1
fi

cli() { redis-cli -p "$CLUSTER_REDIS_PORT" "$@"; }
for ((i = 1; i <= clients; i++)); do
  cli HSET "tollgate:{chaos-$i}:limits" daily "$limit" monthly 900000000000000 >/dev/null
done

# Waits until CHECK succeeds (up to 30 s).
wait_until() {
  local deadline=$((SECONDS + 30))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "chaos: gave up waiting for: $*" >&2; exit 1; }
    sleep 0.2
  done
}
replica_ready() { curl -fsS -m 1 "http://127.0.0.1:$1/readyz"; }
# Kills NAME with SIGKILL, leaves it down for SECONDS, starts it again and waits for CHECK.
kill_and_restart() {
  local name=$1 down=$2; shift 2
  step "kill -9 $name (pid $(cluster_pid "$name")), down for ${down}s"
  kill -KILL "$(cluster_pid "$name")"
  sleep "$down"
  restart "$name"
  wait_until "$@"
  step "$name is back"
}

step "load: $workers workers, $clients clients with a daily limit of $limit nano-USD each, through nginx :$CLUSTER_PORT"
python3 scripts/chaos_load.py 127.0.0.1 "$CLUSTER_PORT" "$clients" "$workers" "$work/stop" >"$work/load.json" &
load_pid=$!
ports=($CLUSTER_REPLICA_PORTS)

sleep "$phase"
kill_and_restart redis 3 cli ping
sleep "$phase"
kill_and_restart tollgate-2 2 replica_ready "${ports[1]}"
sleep "$phase"
kill_and_restart mock 2 curl -fsS -m 1 "$CLUSTER_UPSTREAM/v1/models"
sleep "$phase"
touch "$work/stop"
wait "$load_pid"

step "drain: leases of killed requests expire after ${lease}s; then one request per client reaps them"
sleep $((lease + 2))
for ((i = 1; i <= clients; i++)); do
  curl -s -o /dev/null -m 10 "http://127.0.0.1:$CLUSTER_PORT/v1/chat/completions" -H "X-Client-ID: chaos-$i" -H "X-Mock-Tag: chaos-$i" \
    -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"x"}]}' || true
done
sleep 1

python3 scripts/chaos_check.py "$CLUSTER_REDIS_PORT" "$clients" "$limit" "$day" \
  Sources/TollgateCore/Resources/pricing.yaml "$cluster_dir/usage.jsonl" "$(cat "$work/load.json")"
