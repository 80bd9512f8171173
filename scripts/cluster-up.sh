#!/usr/bin/env bash
# `make cluster`: a local Tollgate cluster on 127.0.0.1, left running in the background.
#
#   redis-server    :${CLUSTER_REDIS_PORT:-6380}   throw-away (nothing persisted), noeviction;
#                                                  CLUSTER_REDIS_PERSIST=1: appendonly, fsync always
#   mock provider   :${CLUSTER_MOCK_PORT:-9090}    unless CLUSTER_UPSTREAM=URL (both providers go there);
#                                                  bills each reply in var/cluster/usage.jsonl
#   N replicas      :8091, :8092, ...              N = ${CLUSTER_REPLICAS:-3}, first port ${CLUSTER_REPLICA_PORT:-8091}
#                   admin API :8191, :8192, ...    first port ${CLUSTER_ADMIN_PORT:-8191} (each replica has its own)
#   nginx           :${CLUSTER_PORT:-8090}         config derived from deploy/nginx/tollgate.conf
#
# Replicas run the release binaries (built when missing) with ${CLUSTER_CONFIG:-deploy/tollgate.yaml}
# and TOLLGATE_* overrides. Pids, logs and state go to var/cluster/; scripts/cluster-down.sh
# stops exactly what this started. If anything fails to come up, what was started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cluster-lib.sh

repo=$PWD
replicas=${CLUSTER_REPLICAS:-3}
lb_port=${CLUSTER_PORT:-8090}
redis_port=${CLUSTER_REDIS_PORT:-6380}
mock_port=${CLUSTER_MOCK_PORT:-9090}
first_port=${CLUSTER_REPLICA_PORT:-8091}
first_admin_port=${CLUSTER_ADMIN_PORT:-8191}
upstream=${CLUSTER_UPSTREAM:-}
config=${CLUSTER_CONFIG:-deploy/tollgate.yaml}
ready_timeout=${CLUSTER_READY_TIMEOUT:-30}

[[ $replicas =~ ^[1-9][0-9]*$ ]] || die "CLUSTER_REPLICAS must be a positive number (got '$replicas')"
[ -r "$config" ] || die "no config file $config (CLUSTER_CONFIG)"
for tool in redis-server redis-cli nginx curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done

# ---- one cluster at a time -------------------------------------------------------------------
for name in $(cluster_names); do
  if pid=$(cluster_pid "$name"); then
    die "already running ($name is pid $pid); stop it first: make cluster-stop"
  fi
done
rm -rf "$cluster_pids" "$cluster_logs" "$cluster_dir/run" "$cluster_dir/redis" "$cluster_dir/cluster.env" \
  "$cluster_dir/alerts.jsonl" "$cluster_dir/usage.jsonl"   # what a previous run left

# ---- every port free before anything starts --------------------------------------------------
replica_ports=() admin_ports=()
for ((i = 0; i < replicas; i++)); do
  replica_ports+=($((first_port + i)))
  admin_ports+=($((first_admin_port + i)))
done
check_port() { ! port_in_use "$1" || die "port $1 is already in use: choose another with $2"; }
check_port "$lb_port" CLUSTER_PORT=PORT
check_port "$redis_port" CLUSTER_REDIS_PORT=PORT
[ -n "$upstream" ] || check_port "$mock_port" "CLUSTER_MOCK_PORT=PORT (or CLUSTER_UPSTREAM=URL for a provider already running)"
for port in "${replica_ports[@]}"; do check_port "$port" "CLUSTER_REPLICA_PORT=FIRST"; done
for port in "${admin_ports[@]}"; do check_port "$port" "CLUSTER_ADMIN_PORT=FIRST"; done

# ---- binaries --------------------------------------------------------------------------------
products=(tollgate)
[ -n "$upstream" ] || products+=(tollgate-mock-provider)
# Always asked for: a no-op when the binary is current, and a stale one would run old code.
for product in "${products[@]}"; do
  say "building $product (release; quick when up to date)"
  swift build -c release --product "$product" >/dev/null
done

.build/release/tollgate check-config "$config" >/dev/null || die "$config is not a valid Tollgate config (above)"

# ---- from here on, a failure stops whatever was started --------------------------------------
started=false
trap '$started || { say "start-up failed: stopping what was started"; scripts/cluster-down.sh >/dev/null || true; }' EXIT
mkdir -p "$cluster_pids" "$cluster_logs" "$cluster_dir/redis" "$cluster_dir/nginx/temp"

# Waits until `"$@"` succeeds; fails naming NAME (and showing its log) if NAME dies or time runs out.
wait_for() {
  local name=$1 log=$2; shift 2
  local deadline=$((SECONDS + ready_timeout))
  until "$@" >/dev/null 2>&1; do
    if ! cluster_pid "$name" >/dev/null || ((SECONDS >= deadline)); then
      say "$name did not come up; last lines of $log:"
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

say "redis-server on 127.0.0.1:$redis_port"
persistence=(--save '' --appendonly no)
# A Redis that is killed and restarted keeps every reservation only if each write was fsync'd.
[ "${CLUSTER_REDIS_PERSIST:-0}" = 1 ] && persistence=(--save '' --appendonly yes --appendfsync always)
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$cluster_dir/redis" "${persistence[@]}" \
  --maxmemory-policy noeviction --daemonize no --logfile "$cluster_logs/redis.log"
wait_for redis "$cluster_logs/redis.log" redis-cli -p "$redis_port" ping

if [ -z "$upstream" ]; then
  say "mock provider on 127.0.0.1:$mock_port"
  # The mock also receives alert webhooks (POST /hooks/alerts), kept in var/cluster/alerts.jsonl.
  start mock "$repo/.build/release/tollgate-mock-provider" --host 127.0.0.1 --port "$mock_port" \
    --alerts-file "$cluster_dir/alerts.jsonl" --usage-log "$cluster_dir/usage.jsonl"
  wait_for mock "$cluster_logs/mock.log" curl -fsS -m 2 "http://127.0.0.1:$mock_port/v1/models"
  upstream=http://127.0.0.1:$mock_port
  provider="mock provider http://127.0.0.1:$mock_port"
else
  provider="$upstream (CLUSTER_UPSTREAM)"
fi

say "$replicas Tollgate replicas on 127.0.0.1:${replica_ports[0]}..${replica_ports[-1]}"
for ((i = 0; i < replicas; i++)); do
  (
    export TOLLGATE_HOST=127.0.0.1 TOLLGATE_PORT=${replica_ports[i]}
    # The admin API listens on one port per process: replicas on one host need one each.
    export TOLLGATE_ADMIN_HOST=127.0.0.1 TOLLGATE_ADMIN_PORT=${admin_ports[i]}
    export TOLLGATE_REDIS_URL=redis://127.0.0.1:$redis_port/0 TOLLGATE_LUA_DIR=$repo/lua
    export TOLLGATE_OPENAI_BASE_URL=$upstream TOLLGATE_ANTHROPIC_BASE_URL=$upstream
    # Real provider keys never go to the mock.
    [ -n "${CLUSTER_UPSTREAM:-}" ] || unset OPENAI_API_KEY ANTHROPIC_API_KEY
    start "tollgate-$((i + 1))" "$repo/.build/release/tollgate" serve --config "$config"
  )
done
for ((i = 0; i < replicas; i++)); do
  wait_for "tollgate-$((i + 1))" "$cluster_logs/tollgate-$((i + 1)).log" \
    curl -fsS -m 2 "http://127.0.0.1:${replica_ports[i]}/readyz"
done

# nginx: deploy/nginx/tollgate.conf with this cluster's replicas, listen address and log directory.
say "nginx on 127.0.0.1:$lb_port"
servers=""
for port in "${replica_ports[@]}"; do servers+="    server 127.0.0.1:$port max_fails=3 fail_timeout=10s;\n"; done
awk -v servers="$servers" -v listen="127.0.0.1:$lb_port" -v logs="$cluster_logs/" '
  /# replicas:begin/ { print; printf "%s", servers; skipping = 1; next }
  /# replicas:end/   { skipping = 0 }
  skipping           { next }
  { sub(/listen 80;/, "listen " listen ";"); gsub("/var/log/nginx/", logs); print }
' deploy/nginx/tollgate.conf >"$cluster_dir/nginx/tollgate.conf"
if ! grep -q "listen 127.0.0.1:$lb_port;" "$cluster_dir/nginx/tollgate.conf" ||
  [ "$(grep -c 'server 127.0.0.1:' "$cluster_dir/nginx/tollgate.conf")" -ne "$replicas" ]; then
  die "deploy/nginx/tollgate.conf no longer has 'listen 80;' and the '# replicas:begin/end' markers this script rewrites"
fi
temp=$cluster_dir/nginx/temp
cat >"$cluster_dir/nginx/nginx.conf" <<CONF
# Generated by scripts/cluster-up.sh; edit deploy/nginx/tollgate.conf instead.
worker_processes 2;
error_log $cluster_logs/nginx.error.log notice;
events { worker_connections 1024; }
http {
    client_body_temp_path $temp/body;
    proxy_temp_path $temp/proxy;
    fastcgi_temp_path $temp/fastcgi;
    uwsgi_temp_path $temp/uwsgi;
    scgi_temp_path $temp/scgi;
    include $cluster_dir/nginx/tollgate.conf;
}
CONF
nginx_args=(-p "$cluster_dir/nginx/" -c "$cluster_dir/nginx/nginx.conf" -e "$cluster_logs/nginx.error.log")
nginx "${nginx_args[@]}" -g "pid $cluster_pids/nginx.pid;" -t -q
nginx "${nginx_args[@]}" -g "daemon on; pid $cluster_pids/nginx.pid;"
readlink -f "$(command -v nginx)" >"$cluster_pids/nginx.exe"
for _ in $(seq 50); do [ -s "$cluster_pids/nginx.pid" ] && break; sleep 0.1; done
wait_for nginx "$cluster_logs/nginx.error.log" curl -fsS -m 2 "http://127.0.0.1:$lb_port/healthz"

cat >"$cluster_dir/cluster.env" <<ENV
CLUSTER_PORT=$lb_port
CLUSTER_REDIS_PORT=$redis_port
CLUSTER_REPLICA_PORTS="${replica_ports[*]}"
CLUSTER_ADMIN_PORTS="${admin_ports[*]}"
CLUSTER_UPSTREAM=$upstream
ENV
started=true

cat <<DONE

Tollgate cluster is up (all on 127.0.0.1):
  load balancer  http://127.0.0.1:$lb_port          nginx, least_conn over $replicas replicas
  replicas       ${replica_ports[*]/#/:}   (admin API ${admin_ports[*]/#/:})
  redis          redis://127.0.0.1:$redis_port/0   redis-cli -p $redis_port
  provider       $provider
  logs           var/cluster/logs/   (nginx access log names the replica of each request)

Try it:
  curl -s http://127.0.0.1:$lb_port/v1/chat/completions -H 'X-Client-ID: alice' \\
       -H 'Content-Type: application/json' \\
       -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'
  redis-cli -p $redis_port HSET 'tollgate:{alice}:limits' daily 1000000    # \$0.001 a day
  curl -s http://127.0.0.1:${admin_ports[0]}/v1/spend/alice                      # admin API, any replica

Stop it: make cluster-stop   (or scripts/cluster-down.sh)
DONE
