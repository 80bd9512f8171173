#!/usr/bin/env bash
# `make run`: Tollgate on :8080 in the foreground, with a local redis-server (data in var/redis)
# unless TOLLGATE_REDIS_URL points elsewhere, and its settle journal in var/journal.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TOLLGATE_REDIS_URL:-}" ]; then
  port=${TOLLGATE_LOCAL_REDIS_PORT:-6379}
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    mkdir -p var/redis
    redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/var/redis" --daemonize yes \
      --pidfile "$PWD/var/redis/redis.pid" --logfile "$PWD/var/redis/redis.log"
    trap 'kill "$(cat var/redis/redis.pid 2>/dev/null)" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export TOLLGATE_REDIS_URL="redis://127.0.0.1:$port/0"
fi
# A settle Redis cannot take (an outage) waits in a journal on disk until Redis is back.
export TOLLGATE_REDIS_JOURNAL_DIR=${TOLLGATE_REDIS_JOURNAL_DIR:-$PWD/var/journal}
.build/release/tollgate serve --config "${TOLLGATE_CONFIG:-deploy/tollgate.yaml}" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; kill "$(cat var/redis/redis.pid 2>/dev/null)" 2>/dev/null || true' EXIT INT TERM
wait $pid
