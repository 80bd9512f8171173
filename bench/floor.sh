#!/usr/bin/env bash
# The floor of Tollgate's parts beside nginx and Tollgate (issue 13). wrk against the fixed nginx
# upstream directly (`direct`), through nginx's proxy_pass (`nginx`), and through `tollgate-floor`
# (Sources/tollgate-floor: NIO's HTTP server + a callback handler + Tollgate's curl thread; no
# identity, estimate, usage, log or metrics):
#   floor          nothing else;
#   floor+ping     one Redis round trip (a PING on Tollgate's link) per request;
#   floor+budget   Tollgate's reserve and settle scripts instead, batched as Tollgate batches them;
#   floor+alone    the same scripts, each its own call, the settle sent as soon as the answer is
#                  written (the shape in which a lone request waits least);
#   own-loop, own-loop+ping   the floor built on loops of our own instead of NIO's event loops and
#                  curl's thread (one epoll per core owns the client, curl and Redis sockets);
# and through Tollgate (`tollgate`), in alternating rounds, at each of BENCH_FLOOR_CONNS (1 32) for
# BENCH_FLOOR_SECONDS (10) after a 2 s warm-up, BENCH_FLOOR_ROUNDS (2) times. BENCH_FLOOR_TARGETS
# picks the targets (default: all; direct and nginx always run). Prints per run req/s, p50 and CPU
# µs per request of the process under test, of Redis (with its commands' µs from INFO commandstats
# for the targets that run the scripts), of the upstream, and of the whole box; then the ratios
# and added p50 at c=1 per round, and the medians. BENCH_NO_BUILD=1 skips the build.
# BENCH_FLOOR_PERF=<target> adds a run of that target at c=32 under a whole-box perf record.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(python3 -c 'import sys; print(sys.executable)')
LIB="$PY bench/lib/benchlib.py"
CONNS=${BENCH_FLOOR_CONNS:-"1 32"}
SECONDS_PER_RUN=${BENCH_FLOOR_SECONDS:-10}
ROUNDS=${BENCH_FLOOR_ROUNDS:-2}
TARGETS="direct nginx ${BENCH_FLOOR_TARGETS:-floor floor+ping floor+budget floor+alone own-loop own-loop+ping tollgate}"
[ "${BENCH_NO_BUILD:-0}" = 1 ] || { swift build -c release --product tollgate >&2 && swift build -c release --product tollgate-floor >&2; }

{ ls -1dt bench/results/tmp/floor-* 2>/dev/null || true; } | tail -n +3 | xargs -r rm -rf
TMP=$PWD/bench/results/tmp/floor-$(date -u +%Y%m%dT%H%M%S)-$$
mkdir -p "$TMP"
read -r P_REDIS P_UP P_TG P_PROXY P_FLOOR P_PING P_BUDGET P_ALONE P_OWN P_OWNPING P_Y P_Z <<<"$($LIB ports 12)"
$LIB prepare --tmp "$TMP" --ports "redis=$P_REDIS,upstream=$P_UP,proxy=$P_PROXY,tollgate=$P_TG,streams=$P_Y,mock=$P_Z"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PID_REDIS=$!
PIDS+=("$PID_REDIS")
nginx -p "$TMP/nginx-upstream" -c "$TMP/nginx-upstream/nginx.conf" -e "$TMP/nginx-upstream/error.log" -g 'daemon off;' &
PID_UPSTREAM=$!
PIDS+=("$PID_UPSTREAM")
nginx -p "$TMP/nginx-proxy" -c "$TMP/nginx-proxy/nginx.conf" -e "$TMP/nginx-proxy/error.log" -g 'daemon off;' &
PID_NGINX=$!
PIDS+=("$PID_NGINX")
.build/release/tollgate-floor "$P_FLOOR" "http://127.0.0.1:$P_UP" >"$TMP/floor.log" 2>&1 &
PID_FLOOR=$!
PIDS+=("$PID_FLOOR")
.build/release/tollgate-floor "$P_PING" "http://127.0.0.1:$P_UP" "redis://127.0.0.1:$P_REDIS/0" >"$TMP/floor-ping.log" 2>&1 &
PID_PING=$!
PIDS+=("$PID_PING")
.build/release/tollgate-floor budget "$P_BUDGET" "http://127.0.0.1:$P_UP" "redis://127.0.0.1:$P_REDIS/0" >"$TMP/floor-budget.log" 2>&1 &
PID_BUDGET=$!
PIDS+=("$PID_BUDGET")
.build/release/tollgate-floor budget-alone "$P_ALONE" "http://127.0.0.1:$P_UP" "redis://127.0.0.1:$P_REDIS/0" >"$TMP/floor-alone.log" 2>&1 &
PID_ALONE=$!
PIDS+=("$PID_ALONE")
.build/release/tollgate-floor own-loop "$P_OWN" "http://127.0.0.1:$P_UP" >"$TMP/own-loop.log" 2>&1 &
PID_OWN=$!
PIDS+=("$PID_OWN")
.build/release/tollgate-floor own-loop "$P_OWNPING" "http://127.0.0.1:$P_UP" "redis://127.0.0.1:$P_REDIS/0" >"$TMP/own-loop-ping.log" 2>&1 &
PID_OWNPING=$!
PIDS+=("$PID_OWNPING")
TOLLGATE_HOST=127.0.0.1 TOLLGATE_PORT=$P_TG TOLLGATE_ADMIN_PORT=$P_Y TOLLGATE_REDIS_URL="redis://127.0.0.1:$P_REDIS/0" TOLLGATE_LOG_LEVEL=warning \
  TOLLGATE_OPENAI_BASE_URL="http://127.0.0.1:$P_UP" TOLLGATE_ANTHROPIC_BASE_URL="http://127.0.0.1:$P_UP" \
  .build/release/tollgate serve --config "$TMP/tollgate.yaml" >"$TMP/tollgate.log" 2>&1 &
PID_TG=$!
PIDS+=("$PID_TG")
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$P_TG/readyz" && break; sleep 0.05; done
$LIB limits --redis-port "$P_REDIS" bench-floor
sleep 0.5
for port in $P_PROXY $P_FLOOR $P_PING $P_BUDGET $P_ALONE $P_OWN $P_OWNPING $P_TG; do
  curl -sf -o /dev/null -H 'Content-Type: application/json' -H 'X-Client-ID: bench-floor' --data-binary @bench/fixtures/chat-request.json \
    "http://127.0.0.1:$port/v1/chat/completions" || { echo "port $port does not answer"; exit 1; }
done

declare -A URL=([direct]="http://127.0.0.1:$P_UP" [nginx]="http://127.0.0.1:$P_PROXY" [floor]="http://127.0.0.1:$P_FLOOR" [floor+ping]="http://127.0.0.1:$P_PING" [floor+budget]="http://127.0.0.1:$P_BUDGET" [floor+alone]="http://127.0.0.1:$P_ALONE" [own-loop]="http://127.0.0.1:$P_OWN" [own-loop+ping]="http://127.0.0.1:$P_OWNPING" [tollgate]="http://127.0.0.1:$P_TG")
declare -A WATCH=([direct]="$PID_UPSTREAM" [nginx]="$PID_NGINX" [floor]="$PID_FLOOR" [floor+ping]="$PID_PING" [floor+budget]="$PID_BUDGET" [floor+alone]="$PID_ALONE" [own-loop]="$PID_OWN" [own-loop+ping]="$PID_OWNPING" [tollgate]="$PID_TG")
export BENCH_BODY=bench/fixtures/chat-request.json BENCH_CLIENT=bench-floor BENCH_RUN=floor
RECORDS=$TMP/records.jsonl
for round in $(seq "$ROUNDS"); do
  for c in $CONNS; do
    threads=$((c < 2 ? 1 : 2))
    for target in $TARGETS; do
      wrk -t$threads -c"$c" -d2s -s bench/wrk/chat.lua "${URL[$target]}/v1/chat/completions" >/dev/null
      $LIB commandstats --redis-port "$P_REDIS" --reset
      before=$($LIB proc "${WATCH[$target]}") redis_before=$($LIB proc "$PID_REDIS") upstream_before=$($LIB proc "$PID_UPSTREAM")
      wrk -t$threads -c"$c" -d"${SECONDS_PER_RUN}s" -s bench/wrk/chat.lua "${URL[$target]}/v1/chat/completions" >"$TMP/wrk.txt"
      after=$($LIB proc "${WATCH[$target]}") redis_after=$($LIB proc "$PID_REDIS") upstream_after=$($LIB proc "$PID_UPSTREAM")
      stats=()
      case $target in floor+budget|floor+alone|tollgate) stats=(--redis-stats "$($LIB commandstats --redis-port "$P_REDIS")") ;; esac
      rec=$($LIB wrk-record --output "$TMP/wrk.txt" --target "$target" --conns "$c" --before "$before" --after "$after" --label "round $round" \
            --redis-before "$redis_before" --redis-after "$redis_after" --upstream-before "$upstream_before" --upstream-after "$upstream_after" "${stats[@]}")
      echo "$rec" >>"$RECORDS"
    done
  done
done
$PY - "$RECORDS" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
order = ["direct", "nginx", "floor", "floor+ping", "floor+budget", "floor+alone", "own-loop", "own-loop+ping", "tollgate"]
present = [t for t in order if any(r["target"] == t for r in recs)]
proxies = [t for t in present if t not in ("direct", "nginx")]
# Per request: the process under test's CPU, Redis's (process; its commands by commandstats), the
# upstream nginx's, and the whole box's (/proc/stat); what the box spent beyond those three is wrk's
# and the kernel's work no process was charged for.
print(f"{'round':<8} {'target':<13} {'conns':>5} {'req/s':>8} {'p50 µs':>8} {'CPU µs/req':>11} {'Redis µs/req':>12} {'(commands)':>10} {'upstream':>8} {'box':>6} {'errors':>6}")
for r in recs:
    cmd = f"{r['redis_cmd_us_per_req']:.1f}" if "redis_cmd_us_per_req" in r else "-"
    print(f"{r['label']:<8} {r['target']:<13} {r['conns']:>5} {r['rps']:>8.0f} {r['p50_us']:>8.0f} {r.get('cpu_us_per_req', 0):>11.1f} "
          f"{r.get('redis_us_per_req', 0):>12.1f} {cmd:>10} {r.get('upstream_us_per_req', 0):>8.1f} {r.get('box_us_per_req', 0):>6.0f} {r['errors']:>6}")
print()
for label in sorted({r["label"] for r in recs}):
    for c in sorted({r["conns"] for r in recs}):
        by = {r["target"]: r for r in recs if r["label"] == label and r["conns"] == c}
        ratios = ", ".join(f"{t}/nginx {by[t]['rps'] / by['nginx']['rps']:.2f}x" for t in proxies)
        line = f"{label}, c={c}: {ratios}"
        if c == 1:
            d = by["direct"]["p50_us"]
            line += "; added p50: " + ", ".join(f"{t} +{by[t]['p50_us'] - d:.0f} µs" for t in ["nginx"] + proxies)
        print(line)
import statistics
print()
print("medians over the rounds:")
for c in sorted({r["conns"] for r in recs}):
    def median(t, k):
        values = [r[k] for r in recs if r["target"] == t and r["conns"] == c and k in r]
        return statistics.median(values) if values else None
    med = {t: {k: median(t, k) for k in ("rps", "p50_us", "cpu_us_per_req", "redis_cmd_us_per_req", "redis_us_per_req", "box_us_per_req")} for t in present}
    def describe(t):
        m = med[t]
        redis = f", Redis {m['redis_us_per_req']:.0f} µs CPU/req" if m["redis_us_per_req"] else ""
        if m["redis_cmd_us_per_req"] is not None:
            redis += f" ({m['redis_cmd_us_per_req']:.1f} in commands)"
        box = f", box {m['box_us_per_req']:.0f} µs/req" if m["box_us_per_req"] else ""
        return f"{t} {m['rps']:.0f} req/s ({m['rps'] / med['nginx']['rps']:.2f}x nginx, {m['cpu_us_per_req']:.0f} µs CPU/req{redis}{box})"
    line = f"c={c}: " + ", ".join(describe(t) for t in ["nginx"] + proxies)
    if c == 1:
        line += "; added p50: " + ", ".join(f"{t} +{med[t]['p50_us'] - med['direct']['p50_us']:.0f} µs" for t in ["nginx"] + proxies)
        # A round's added p50 subtracts that round's direct, itself noisy; the best p50 each target
        # reached in any round, less direct's best, is the least the set says it adds.
        best = {t: min(r["p50_us"] for r in recs if r["target"] == t and r["conns"] == c) for t in present}
        line += "\nc=1, best rounds: added p50: " + ", ".join(f"{t} +{best[t] - best['direct']:.0f} µs" for t in ["nginx"] + proxies)
    else:
        # Likewise the most req/s each target reached in any round, over nginx's most.
        most = {t: max(r["rps"] for r in recs if r["target"] == t and r["conns"] == c) for t in present}
        line += f"\nc={c}, best rounds: " + ", ".join(f"{t} {most[t] / most['nginx']:.2f}x nginx" for t in proxies)
    print(line)
PYEOF
echo "records: $RECORDS"

# BENCH_FLOOR_PERF=<target>: one more run of it at c=32 under a whole-box `perf record`, and where
# the box's CPU went, by process and library (kernel included): what the ratios are made of.
if [ -n "${BENCH_FLOOR_PERF:-}" ]; then
  target=$BENCH_FLOOR_PERF
  wrk -t2 -c32 -d2s -s bench/wrk/chat.lua "${URL[$target]}/v1/chat/completions" >/dev/null
  perf record -a -F 999 -e cpu-clock -o "$TMP/perf.data" -- \
    wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" -s bench/wrk/chat.lua "${URL[$target]}/v1/chat/completions" >"$TMP/wrk-perf.txt" 2>"$TMP/perf.log"
  run=$($LIB wrk-record --output "$TMP/wrk-perf.txt" --target "$target" --conns 32 |
        $PY -c 'import json, sys; r = json.load(sys.stdin); print("%.0f req/s, %d errors" % (r["rps"], r["errors"]))')
  echo
  echo "the whole box under $target at c=32 ($run), by process and library:"
  perf report -i "$TMP/perf.data" --stdio --sort comm,dso --percent-limit 0.01 2>/dev/null | grep -v '^#' | grep -v '^$' >"$TMP/perf-by-process.txt"
  $PY - "$TMP/perf-by-process.txt" <<'PYEOF'
import collections, re, sys
# Threads by name: NIO-* and tollgate-* are the proxy's (event loops, curl, log), swapper is idle.
groups = collections.defaultdict(lambda: [0.0, 0.0])
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(.+?)\s{2,}(\S.*?)\s*$", line)
    if not m:
        continue
    share, comm, dso = float(m.group(1)), m.group(2).strip(), m.group(3).strip()
    who = ("the proxy" if comm.startswith(("NIO-", "tollgate")) else "Redis" if comm.startswith("redis") else
           "nginx" if comm == "nginx" else "wrk" if comm == "wrk" else "idle" if comm == "swapper" else "other")
    groups[who][0 if dso == "[kernel.kallsyms]" else 1] += share
for who, (kernel, user) in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
    print(f"  {who:<10} {kernel + user:5.1f} %  (kernel {kernel:4.1f} %, user {user:4.1f} %)")
PYEOF
  echo "  (by thread and library: $TMP/perf-by-process.txt)"
fi
