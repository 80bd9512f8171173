#!/usr/bin/env bash
# Tollgate end-to-end benchmark: Tollgate against a bare nginx proxy_pass and against the upstream
# itself, on loopback, in one run. `make bench` = full run, `make bench-smoke` = BENCH_SMOKE=1
# (about a minute; no timing assertions: exit 0 when everything started and answered with zero
# errors and zero budget drift). What each number means: bench/README.md.
#
# Knobs (environment): BENCH_SMOKE=1, BENCH_SECONDS (per wrk run), BENCH_WARMUP_SECONDS,
# BENCH_CONNS ("1 32 256"), BENCH_TTFB_SECONDS, BENCH_EXACT_PER_KIND, BENCH_STREAMS ("1000 10000"),
# BENCH_HOLD_SECONDS, BENCH_SOAK_SECONDS (300; 0 = no soak), BENCH_NGINX_WORKERS (auto),
# BENCH_NO_BUILD=1 (use the binaries in .build/release as they are), BENCH_PHASES (any of
# "wrk ttfb exact soak hold"), BENCH_STREAM_MAX_CONNECTIONS (20000: upstream.max_connections of the
# stream Tollgate), BENCH_TOLLGATE_LOG_LEVEL (warning), TG_BIN (the Tollgate binary of the wrk, TTFB
# and exact runs, for A/B of two builds; default .build/release/tollgate).
set -euo pipefail
# The whole script is one block, read before it runs: editing this file during a run cannot
# change what the run executes.
{
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=${BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  MODE=smoke
  SECONDS_PER_RUN=${BENCH_SECONDS:-1}; WARMUP=${BENCH_WARMUP_SECONDS:-1}; CONNS=${BENCH_CONNS:-1 32}
  TTFB_SECONDS=${BENCH_TTFB_SECONDS:-1}; EXACT_PER_KIND=${BENCH_EXACT_PER_KIND:-100}
  STREAMS=${BENCH_STREAMS:-50}; HOLD_SECONDS=${BENCH_HOLD_SECONDS:-2}; SOAK_SECONDS=${BENCH_SOAK_SECONDS:-0}
else
  MODE=full
  SECONDS_PER_RUN=${BENCH_SECONDS:-10}; WARMUP=${BENCH_WARMUP_SECONDS:-2}; CONNS=${BENCH_CONNS:-1 32 256}
  TTFB_SECONDS=${BENCH_TTFB_SECONDS:-5}; EXACT_PER_KIND=${BENCH_EXACT_PER_KIND:-2000}
  STREAMS=${BENCH_STREAMS:-1000 10000}; HOLD_SECONDS=${BENCH_HOLD_SECONDS:-10}; SOAK_SECONDS=${BENCH_SOAK_SECONDS:-300}
fi
WORKERS=${BENCH_NGINX_WORKERS:-auto}

log() { printf '\033[1m[bench %s]\033[0m %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "FAILED: $*"
  # What was measured before the failure is still worth reading.
  if [ -s "${RECORDS:-}" ] && [ -s "$TMP/meta.json" ]; then $LIB report --tmp "$TMP" --out "$TMP/partial" || true; fi
  exit 1
}
# BENCH_PHASES selects parts of the run (default: all of them).
PHASES=${BENCH_PHASES:-wrk ttfb exact soak hold}
phase() { [[ " $PHASES " == *" $1 "* ]]; }

for tool in nginx wrk redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
# The interpreter itself, not a version-manager shim that costs a process per call.
PY=$(python3 -c 'import sys; print(sys.executable)')
LIB="$PY bench/lib/benchlib.py"

# --- binaries ------------------------------------------------------------------------------
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building release binaries (SwiftPM waits if another build holds .build)"
  swift build -c release --product tollgate >&2
  swift build -c release --product tollgate-mock-provider >&2
fi
[ -x .build/release/tollgate ] && [ -x .build/release/tollgate-mock-provider ] || die "release binaries missing"

# --- temp state, ports, limits -------------------------------------------------------------
mkdir -p bench/results/tmp
# Keep the last runs' logs (Tollgate's access log alone is ~150 MB after a full run); older ones
# go once they are an hour old, so a run someone else started meanwhile is never touched.
{ ls -1dt bench/results/tmp/run-* 2>/dev/null || true; } | tail -n +3 |
  while read -r old; do [ -n "$(find "$old" -maxdepth 0 -mmin +60)" ] && rm -rf "$old"; done || true
TMP=$ROOT/bench/results/tmp/run-$(date -u +%Y%m%dT%H%M%S)-$$
mkdir -p "$TMP"
RECORDS=$TMP/records.jsonl
: >"$RECORDS"
log "temp state and logs: $TMP"

# 10k open streams need 2 descriptors each in Tollgate (client + upstream).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# Eight free ports below the ephemeral range (see cmd_ports in lib/benchlib.py).
read -r P_REDIS P_UP P_PROXY P_TG P_STREAMS P_MOCK P_ADMIN P_ADMIN2 <<<"$($LIB ports 8)"
log "ports: redis $P_REDIS, upstream $P_UP, nginx proxy $P_PROXY, tollgate $P_TG (admin $P_ADMIN), tollgate-streams $P_STREAMS (admin $P_ADMIN2), mock $P_MOCK; nofile $NOFILE"

# --- processes: every one started here is stopped by the trap --------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: runs it in the background, logs to $TMP/NAME.log, sets PID_NAME.
start() {
  local name=$1; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=("$!")
  printf -v "PID_${name//-/_}" '%s' "$!"
}

# wait_ready NAME URL: polls until URL answers 2xx (or the process died).
wait_ready() {
  local name=$1 url=$2 var="PID_${1//-/_}"
  for _ in $(seq 200); do
    curl -sf -o /dev/null "$url" && return 0
    kill -0 "${!var}" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited at start"; }
    sleep 0.05
  done
  cat "$TMP/$name.log" >&2
  die "$name did not answer $url"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
$LIB prepare --tmp "$TMP" --workers "$WORKERS" --stream-max-connections "${BENCH_STREAM_MAX_CONNECTIONS:-20000}" \
  --ports "redis=$P_REDIS,upstream=$P_UP,proxy=$P_PROXY,tollgate=$P_TG,streams=$P_STREAMS,mock=$P_MOCK"
COSTS=$TMP/costs.json
ACCESS_LOG=$TMP/nginx-upstream/access.log

start redis redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" --maxclients 1000
for _ in $(seq 100); do redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
start upstream nginx -p "$TMP/nginx-upstream" -c "$TMP/nginx-upstream/nginx.conf" -e "$TMP/nginx-upstream/error.log" -g 'daemon off;'
start proxy nginx -p "$TMP/nginx-proxy" -c "$TMP/nginx-proxy/nginx.conf" -e "$TMP/nginx-proxy/error.log" -g 'daemon off;'
tollgate_env=(env TOLLGATE_HOST=127.0.0.1 TOLLGATE_REDIS_URL="redis://127.0.0.1:$P_REDIS/0" TOLLGATE_LOG_LEVEL="${BENCH_TOLLGATE_LOG_LEVEL:-warning}")
start tollgate "${tollgate_env[@]}" TOLLGATE_PORT="$P_TG" TOLLGATE_ADMIN_PORT="$P_ADMIN" \
  TOLLGATE_OPENAI_BASE_URL="http://127.0.0.1:$P_UP" TOLLGATE_ANTHROPIC_BASE_URL="http://127.0.0.1:$P_UP" \
  ${TG_BIN:-.build/release/tollgate} serve --config "$TMP/tollgate.yaml"
wait_ready upstream "http://127.0.0.1:$P_UP/healthz"
wait_ready proxy "http://127.0.0.1:$P_PROXY/healthz"
wait_ready tollgate "http://127.0.0.1:$P_TG/readyz"

# --- a look at each path before loading it -------------------------------------------------
# Every bench client gets a budget that never refuses (9 million USD, the documented maximum).
$LIB limits --redis-port "$P_REDIS" bench-check bench-warm
check() { # check NAME URL BODY PATTERN [extra curl args]: 200 and PATTERN in the body
  local name=$1 url=$2 body=$3 pattern=$4; shift 4
  local out
  out=$(curl -sS -D "$TMP/check-$name.headers" -o "$TMP/check-$name.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' -H 'X-Client-ID: bench-check' \
    -H 'X-Bench-Run: check' "$@" --data-binary "@$body" "$url") || die "$name: curl failed"
  [ "$out" = 200 ] || { cat "$TMP/check-$name.body" >&2; die "$name answered $out"; }
  grep -q "$pattern" "$TMP/check-$name.body" || die "$name: no $pattern in the reply"
}
F=bench/fixtures
for target in "direct $P_UP" "nginx $P_PROXY" "tollgate $P_TG"; do
  set -- $target
  check "$1-chat" "http://127.0.0.1:$2/v1/chat/completions" $F/chat-request.json '"usage"'
  # Tollgate drops the usage chunk it asked for when the client did not: the stream ends with [DONE].
  check "$1-chat-sse" "http://127.0.0.1:$2/v1/chat/completions" $F/chat-request-stream.json 'data: \[DONE\]' -H 'X-Bench-Stream: 1'
done
grep -qi '^x-budget-remaining-usd' "$TMP/check-tollgate-chat.headers" || die "tollgate: no X-Budget headers"
log "all three paths answer (direct, nginx, tollgate)"

# --- meta ----------------------------------------------------------------------------------
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false; [ -n "$(git status --porcelain -- Sources Package.swift lua 2>/dev/null)" ] && DIRTY=true
$PY - "$TMP/meta.json" <<EOF
import json, os, platform, re, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
run = lambda *c: subprocess.run(c, capture_output=True, text=True).stdout + subprocess.run(c, capture_output=True, text=True).stderr
json.dump({"date": "$DATE", "commit": "$COMMIT", "dirty": $( [ "$DIRTY" = true ] && echo True || echo False ),
           "mode": "$MODE", "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 1048576, 1),
           "kernel": platform.release(), "nginx": run("nginx", "-v").strip().split("/")[-1],
           "wrk": (re.search(r"wrk (\S+)", run("wrk", "-v")) or [None, "?"])[1],
           "swift": run("swift", "--version").splitlines()[0].strip(),
           "load_start": "$LOAD_START", "seconds": $SECONDS_PER_RUN, "warmup": $WARMUP, "workers": "$WORKERS", "nofile": $NOFILE,
           "ports": {"redis": $P_REDIS, "upstream": $P_UP, "proxy": $P_PROXY, "tollgate": $P_TG}}, open(sys.argv[1], "w"))
EOF

# --- non-streaming: wrk against direct, nginx, tollgate at each concurrency --------------------
declare -A URL=([direct]="http://127.0.0.1:$P_UP" [nginx]="http://127.0.0.1:$P_PROXY" [tollgate]="http://127.0.0.1:$P_TG")
declare -A WATCH=([direct]="$PID_upstream" [nginx]="$PID_proxy" [tollgate]="$PID_tollgate")

run_wrk() { # run_wrk TARGET CONNS SECONDS RUN_ID CLIENT → $TMP/wrk-RUN_ID.txt
  local target=$1 conns=$2 seconds=$3 run=$4 client=$5
  local threads=$((conns < 2 ? 1 : 2))
  BENCH_BODY=$F/chat-request.json BENCH_CLIENT=$client BENCH_RUN=$run \
    wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency -s bench/wrk/chat.lua "${URL[$target]}/v1/chat/completions" \
    >"$TMP/wrk-$run.txt" 2>&1 || { cat "$TMP/wrk-$run.txt" >&2; die "wrk failed ($target c=$conns)"; }
}

record() { echo "$1" >>"$RECORDS"; log "$($LIB line "$1")"; }
reconcile() { # reconcile LABEL CLIENT RUN_ID COMPLETED
  record "$($LIB reconcile --redis-port "$P_REDIS" --label "$1" --client "$2" --run-id "$3" \
    --access-log "$ACCESS_LOG" --costs "$COSTS" --client-completed "$4")"
}
field() { $PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

phase wrk || CONNS=""
for c in $CONNS; do
  for target in direct nginx tollgate; do
    run=$target-c$c
    client=bench-$run
    $LIB limits --redis-port "$P_REDIS" "$client"
    run_wrk "$target" "$c" "$WARMUP" "warm-$run" bench-warm
    [ "$target" = tollgate ] && $LIB settled --redis-port "$P_REDIS" --client bench-warm >/dev/null
    # Redis's own account (INFO commandstats) of what the run cost it, reset here.
    [ "$target" = tollgate ] && $LIB commandstats --redis-port "$P_REDIS" --reset
    before=$($LIB proc "${WATCH[$target]}"); redis_before=$($LIB proc "$PID_redis")
    run_wrk "$target" "$c" "$SECONDS_PER_RUN" "$run" "$client"
    after=$($LIB proc "${WATCH[$target]}"); redis_after=$($LIB proc "$PID_redis")
    redis_args=()
    [ "$target" = tollgate ] && redis_args=(--redis-before "$redis_before" --redis-after "$redis_after"
                                            --redis-stats "$($LIB commandstats --redis-port "$P_REDIS")")
    rec=$($LIB wrk-record --output "$TMP/wrk-$run.txt" --target "$target" --conns "$c" \
      --before "$before" --after "$after" "${redis_args[@]}")
    record "$rec"
    [ "$target" = tollgate ] && reconcile "wrk c=$c" "$client" "$run" "$(field "$rec" requests)"
  done
done

# --- streaming: time to first byte over the fixed SSE body ----------------------------------
TTFB_CONNS="1 32"
phase ttfb || TTFB_CONNS=""
for c in $TTFB_CONNS; do
  for target in direct nginx tollgate; do
    run=ttfb-$target-c$c
    client=bench-$run
    $LIB limits --redis-port "$P_REDIS" "$client"
    $PY bench/sse_load.py ttfb --url "${URL[$target]}/v1/chat/completions" --body $F/chat-request-stream.json \
      --header 'X-Bench-Stream: 1' --client "$client" --run "$run" --concurrency "$c" --duration "$TTFB_SECONDS" \
      --min-bytes 1000 >"$TMP/$run.txt" 2>&1 || { cat "$TMP/$run.txt" >&2; die "sse_load ttfb failed ($target c=$c)"; }
    rec=$($LIB sse-record --output "$TMP/$run.txt" --target "$target")
    record "$rec"
    [ "$target" = tollgate ] && reconcile "SSE c=$c" "$client" "$run" "$(field "$rec" completed)"
  done
done

# --- exact budget check: a fixed number of each kind, every reply awaited -------------------------
if phase exact; then
$LIB limits --redis-port "$P_REDIS" bench-exact
$PY bench/sse_load.py exact --client bench-exact --run exact --per-kind "$EXACT_PER_KIND" --concurrency 32 \
  --kind "chat=http://127.0.0.1:$P_TG/v1/chat/completions|$F/chat-request.json" \
  --kind "chat-sse=http://127.0.0.1:$P_TG/v1/chat/completions|$F/chat-request-stream.json|stream" \
  --kind "messages=http://127.0.0.1:$P_TG/v1/messages|$F/messages-request.json" \
  --kind "messages-sse=http://127.0.0.1:$P_TG/v1/messages|$F/messages-request-stream.json|stream" \
  >"$TMP/exact.txt" 2>&1 || { cat "$TMP/exact.txt" >&2; die "exact run had errors"; }
echo "$($LIB sse-record --output "$TMP/exact.txt")" >>"$RECORDS"
reconcile "exact ${EXACT_PER_KIND}×4 kinds" bench-exact exact $((EXACT_PER_KIND * 4))
fi

# --- soak: mixed traffic at c=32, RSS before and after ----------------------------------------
if phase soak && [ "$SOAK_SECONDS" -gt 0 ]; then
  $LIB limits --redis-port "$P_REDIS" bench-soak
  log "soak: ${SOAK_SECONDS}s of mixed traffic at c=32"
  rss_before=$($LIB rss "$PID_tollgate")
  BENCH_FIXTURES=$F BENCH_CLIENT=bench-soak BENCH_RUN=soak \
    wrk -t2 -c32 -d"${SOAK_SECONDS}s" --latency -s bench/wrk/mixed.lua "${URL[tollgate]}" >"$TMP/wrk-soak.txt" 2>&1 &
  soak_pid=$!
  PIDS+=("$soak_pid")
  interval=$(( SOAK_SECONDS >= 60 ? SOAK_SECONDS / 30 : 2 ))
  samples=""
  while kill -0 "$soak_pid" 2>/dev/null; do
    samples+=" $($LIB rss "$PID_tollgate")"
    sleep "$interval"
  done
  wait "$soak_pid" || { cat "$TMP/wrk-soak.txt" >&2; die "soak wrk failed"; }
  $LIB settled --redis-port "$P_REDIS" --client bench-soak >/dev/null
  rec=$($LIB soak-record --output "$TMP/wrk-soak.txt" --seconds "$SOAK_SECONDS" --rss-before "$rss_before" \
    --rss-after "$($LIB rss "$PID_tollgate")" --samples "$samples")
  record "$rec"
  reconcile soak bench-soak soak "$(field "$rec" requests)"
fi

# --- open streams: a fresh Tollgate in front of the mock provider, which drips 1 event/s ---------
phase hold || STREAMS=""
if [ -n "$STREAMS" ]; then
  start mock .build/release/tollgate-mock-provider --host 127.0.0.1 --port "$P_MOCK"
  start tollgate-streams "${tollgate_env[@]}" TOLLGATE_PORT="$P_STREAMS" TOLLGATE_ADMIN_PORT="$P_ADMIN2" \
    TOLLGATE_OPENAI_BASE_URL="http://127.0.0.1:$P_MOCK" TOLLGATE_ANTHROPIC_BASE_URL="http://127.0.0.1:$P_MOCK" \
    ${TG_BIN:-.build/release/tollgate} serve --config "$TMP/tollgate-streams.yaml"
  wait_ready tollgate-streams "http://127.0.0.1:$P_STREAMS/readyz"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$P_MOCK/v1/models" && break; sleep 0.05; done
  # 300 events at 1/s outlast any hold; the mock renders a stream's events up front, so a longer
  # reply would cost the mock (not Tollgate) ~250 bytes per event per stream.
  $PY -c 'import json,sys; b=json.load(open(sys.argv[1])); b["max_completion_tokens"]=300; json.dump(b, open(sys.argv[2],"w"))' \
    $F/chat-request-stream.json "$TMP/hold-request.json"
  max_streams=$(( (NOFILE - 200) / 2 ))
  for n in $STREAMS; do
    note=""
    if [ "$n" -gt "$max_streams" ]; then
      note="asked for $n; capped at $max_streams: the open-files limit here is $NOFILE (the hard limit; raising it needs CAP_SYS_RESOURCE) and Tollgate holds 2 descriptors per stream"
      n=$max_streams
    fi
    client=bench-hold-$n
    $LIB limits --redis-port "$P_REDIS" "$client"
    log "holding $n open streams through Tollgate (mock provider upstream)"
    $PY bench/sse_load.py hold --url "http://127.0.0.1:$P_STREAMS/v1/chat/completions" --body "$TMP/hold-request.json" \
      --header 'X-Mock-Completion-Tokens: 100000' --header 'X-Mock-Chunk-Delay-Ms: 1000' --client "$client" \
      --streams "$n" --hold "$HOLD_SECONDS" --watch "tollgate=$PID_tollgate_streams" --watch "mock=$PID_mock" \
      >"$TMP/hold-$n.txt" 2>&1 || log "hold $n reported errors (see $TMP/hold-$n.txt)"
    acct=$($LIB settled --redis-port "$P_REDIS" --client "$client" --timeout 60)
    record "$($LIB sse-record --output "$TMP/hold-$n.txt" --note "$note" --accounting "$acct")"
  done
fi

# --- report ----------------------------------------------------------------------------------
# Only a whole run is a result; a run of selected phases (BENCH_PHASES) stays in its temp dir.
if [ "$MODE" = full ] && [ -z "${BENCH_PHASES:-}" ]; then
  OUT=bench/results/$(date -u +%Y-%m-%d)-$COMMIT
else
  OUT=$TMP/$MODE
fi
$LIB report --tmp "$TMP" --out "$OUT"
exit
}
