#!/usr/bin/env bash
# `make test`: a throw-away redis-server on a free port, `swift test` against it, then stop it;
# then the benchmark's smoke run (which starts its own Redis and upstreams).
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(scripts/free-port.sh)
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
# Redis is waited for before its directory goes (it may still be writing there as it stops).
stop_redis() {
  local pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null) && kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do [[ -n "${pid:-}" ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$dir"
}
trap stop_redis EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export TOLLGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
echo "test redis: $TOLLGATE_TEST_REDIS_URL"
# The executables too: the CLI and cluster tests run the real `tollgate` binary.
swift build
# A hung test must not hold CI: Swift Testing time limits per suite, and this as a last resort.
# A crash prints only the crashed thread (a CI log shows its tail); on failure the run ends with
# what matters: fatal errors, failed tests, and the tests still running when it stopped.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=yes,interactive=no,color=no,threads=crashed,registers=none,images=none,limit=30}
# Swift Testing starts every test at once unless told otherwise: ~500 at the start of a run on
# 2 cores stretched 0.6 s tests to 12 s, and a CI run failed on two that time a hang-up. At most
# this many run at once (the serialized heavy suites take one place).
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-16}
log="$dir/swift-test.log"
if ! timeout --kill-after=15 2400 swift test "$@" 2>&1 | tee "$log"; then
  echo "=== swift test failed: summary ==="
  grep -E "Fatal error|Program crashed|✘" "$log" | head -40 || true
  python3 - "$log" <<'PY'
import re, sys
started, ended = [], set()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r'◇ Test (".*?"|\S+) started', line)
    if m: started.append(m.group(1))
    m = re.match(r'[✔✘] Test (".*?"|\S+) ', line)
    if m: ended.add(m.group(1))
running = [t for t in started if t not in ended and t != "run"]
print("tests still running when it stopped (%d):" % len(running))
for t in running[:40]: print("  " + t)
PY
  exit 1
fi
# The benchmark's smoke mode (release build, about a minute of load, no timing assertions) so the
# bench suite cannot rot: it fails only when something errs or the budget drifts. Skipped when
# arguments select particular tests, or with TOLLGATE_SKIP_BENCH_SMOKE=1.
# The release build is made first and outside the smoke's time limit: on a slow fresh machine it
# alone takes ~14 min, and the limit is there to stop a hung load, not a long compile.
if [ $# -eq 0 ] && [ "${TOLLGATE_SKIP_BENCH_SMOKE:-0}" != 1 ]; then
  swift build -c release --product tollgate
  swift build -c release --product tollgate-mock-provider
  BENCH_SMOKE=1 BENCH_NO_BUILD=1 timeout --kill-after=15 900 bench/run.sh
fi
# A short `make chaos` (its release build is the one the bench just made): Redis, a replica and
# the provider killed under load, then overshoot ≤ 0 and no lost settlement. Free ports, so a
# `make cluster` left running does not collide; skipped like the bench smoke.
if [ $# -eq 0 ] && [ "${TOLLGATE_SKIP_BENCH_SMOKE:-0}" != 1 ]; then
  base=$(scripts/free-port.sh 9)   # one block: balancer, Redis, mock, 3 replicas, 3 admin ports
  CLUSTER_PORT=$base CLUSTER_REDIS_PORT=$((base + 1)) CLUSTER_MOCK_PORT=$((base + 2)) \
    CLUSTER_REPLICA_PORT=$((base + 3)) CLUSTER_ADMIN_PORT=$((base + 6)) CLUSTER_REPLICAS=3 \
    CLUSTER_DIR=$PWD/var/chaos-smoke CHAOS_PHASE_SECONDS=4 timeout --kill-after=15 900 scripts/chaos.sh
fi
