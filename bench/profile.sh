#!/usr/bin/env bash
# Where Tollgate's CPU goes under load: Redis + the fixed nginx upstream + a release Tollgate,
# wrk at BENCH_PROFILE_CONNS (32) for BENCH_PROFILE_SECONDS (15) while `perf record` samples
# Tollgate (software cpu-clock: works where hardware counters are "not supported").
# Prints the top symbols (self time) and the share per library; the full report stays in
# bench/results/tmp/profile-*/. BENCH_PROFILE_KIND=stream profiles the SSE path instead.
# BENCH_PROFILE_MALLOCS=1 counts libc mallocs per request instead (a perf uprobe: exact counts,
# no timing noise, but the probe slows Tollgate several-fold) and names the Tollgate functions
# they come from. BENCH_PROFILE_THREADS=1 splits Tollgate's CPU per request by thread instead
# (event loops, curl, Swift's executor, log writer), from /proc/PID/task/*/stat.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)"; exit 1; }
PY=$(python3 -c 'import sys; print(sys.executable)')
LIB="$PY bench/lib/benchlib.py"
CONNS=${BENCH_PROFILE_CONNS:-32}
SECONDS_TO_RUN=${BENCH_PROFILE_SECONDS:-15}
KIND=${BENCH_PROFILE_KIND:-json}
[ "${BENCH_NO_BUILD:-0}" = 1 ] || swift build -c release --product tollgate >&2

{ ls -1dt bench/results/tmp/profile-* 2>/dev/null || true; } | tail -n +3 | xargs -r rm -rf
TMP=$PWD/bench/results/tmp/profile-$(date -u +%Y%m%dT%H%M%S)-$$
mkdir -p "$TMP"
read -r P_REDIS P_UP P_TG P_X P_Y P_Z <<<"$($LIB ports 6)"
$LIB prepare --tmp "$TMP" --ports "redis=$P_REDIS,upstream=$P_UP,proxy=$P_X,tollgate=$P_TG,streams=$P_Y,mock=$P_Z"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
nginx -p "$TMP/nginx-upstream" -c "$TMP/nginx-upstream/nginx.conf" -e "$TMP/nginx-upstream/error.log" -g 'daemon off;' &
PIDS+=("$!")
TOLLGATE_HOST=127.0.0.1 TOLLGATE_PORT=$P_TG TOLLGATE_ADMIN_PORT=$P_X TOLLGATE_REDIS_URL="redis://127.0.0.1:$P_REDIS/0" TOLLGATE_LOG_LEVEL=warning \
  TOLLGATE_OPENAI_BASE_URL="http://127.0.0.1:$P_UP" TOLLGATE_ANTHROPIC_BASE_URL="http://127.0.0.1:$P_UP" \
  .build/release/tollgate serve --config "$TMP/tollgate.yaml" >"$TMP/tollgate.log" 2>&1 &
TG=$!
PIDS+=("$TG")
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$P_TG/readyz" && break; sleep 0.05; done
$LIB limits --redis-port "$P_REDIS" bench-profile

body=bench/fixtures/chat-request.json stream=0
[ "$KIND" = stream ] && body=bench/fixtures/chat-request-stream.json stream=1
export BENCH_BODY=$body BENCH_CLIENT=bench-profile BENCH_RUN=profile BENCH_STREAM=$stream
THREADS=$((CONNS < 2 ? 1 : 2))
wrk -t$THREADS -c"$CONNS" -d3s -s bench/wrk/chat.lua "http://127.0.0.1:$P_TG/v1/chat/completions" >/dev/null # warm-up
wrk -t$THREADS -c"$CONNS" -d"${SECONDS_TO_RUN}s" -s bench/wrk/chat.lua "http://127.0.0.1:$P_TG/v1/chat/completions" >"$TMP/wrk.txt" &
WRK=$!
sleep 1
if [ "${BENCH_PROFILE_MALLOCS:-0}" = 1 ]; then
  wait "$WRK" # the first run only warmed up further; this one is counted from its start to its end
  LIBC=$(ldd .build/release/tollgate | awk '$1 ~ /^libc\.so/ {print $3}') # the libc Tollgate loads (not libswiftGlibc)
  perf probe -l 2>/dev/null | grep -q "probe_libc:malloc" || perf probe -q -x "$LIBC" malloc \
    || { echo "perf probe could not put a uprobe on malloc in $LIBC"; exit 1; }
  perf record -e probe_libc:malloc -g -p "$TG" -o "$TMP/mallocs.data" >"$TMP/perf-record.log" 2>&1 &
  PERF=$!
  sleep 1
  wrk -t$THREADS -c"$CONNS" -d"${SECONDS_TO_RUN}s" -s bench/wrk/chat.lua "http://127.0.0.1:$P_TG/v1/chat/completions" >"$TMP/wrk.txt"
  sleep 1
  kill -INT "$PERF"; wait "$PERF" || true
  requests=$(grep -oE "^ *[0-9]+ requests in" "$TMP/wrk.txt" | grep -oE "[0-9]+" || echo 0)
  [ "$requests" -gt 0 ] || { cat "$TMP/wrk.txt"; echo "wrk completed no request"; exit 1; }
  perf script -i "$TMP/mallocs.data" -F comm,ip,sym,dso 2>/dev/null | $PY bench/lib/malloc_sites.py --requests "$requests" | tee "$TMP/mallocs.txt"
  echo "full report: $TMP/mallocs.txt"
  exit 0
fi
if [ "${BENCH_PROFILE_THREADS:-0}" = 1 ]; then
  wait "$WRK" # the first run only warmed up further; this one is counted from its start to its end
  $PY bench/lib/thread_cpu.py snapshot "$TG" >"$TMP/threads-before.json"
  wrk -t$THREADS -c"$CONNS" -d"${SECONDS_TO_RUN}s" -s bench/wrk/chat.lua "http://127.0.0.1:$P_TG/v1/chat/completions" >"$TMP/wrk.txt"
  $PY bench/lib/thread_cpu.py snapshot "$TG" >"$TMP/threads-after.json"
  requests=$(grep -oE "^ *[0-9]+ requests in" "$TMP/wrk.txt" | grep -oE "[0-9]+" || echo 0)
  [ "$requests" -gt 0 ] || { cat "$TMP/wrk.txt"; echo "wrk completed no request"; exit 1; }
  grep -E "Requests/sec|Latency " "$TMP/wrk.txt"
  $PY bench/lib/thread_cpu.py report "$TMP/threads-before.json" "$TMP/threads-after.json" --requests "$requests" | tee "$TMP/threads.txt"
  exit 0
fi
perf record -e cpu-clock -F 1999 -g -p "$TG" -o "$TMP/perf.data" -- sleep $((SECONDS_TO_RUN - 2)) >"$TMP/perf-record.log" 2>&1 || { cat "$TMP/perf-record.log"; echo "perf record failed"; }
wait "$WRK"
grep -E "Requests/sec|Latency " "$TMP/wrk.txt"
perf report -i "$TMP/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | grep '%' | head -15 | tee "$TMP/by-dso.txt"
echo
perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45 | tee "$TMP/by-symbol.txt"
perf report -i "$TMP/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -80 >"$TMP/inclusive.txt"
echo "full reports: $TMP (perf report -i $TMP/perf.data)"
