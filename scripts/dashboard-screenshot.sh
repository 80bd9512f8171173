#!/usr/bin/env bash
# Regenerates docs/dashboard.png: a throw-away redis-server seeded with a plausible month for a
# few clients, `tollgate serve` on it, and headless Chromium signing in and taking the picture
# (Tests/browser/dashboard.py, the driver DashboardTests uses). Needs `swift build` and chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
base=$(scripts/free-port.sh 3); redis_port=$base admin_port=$((base + 1)) port=$((base + 2))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
cleanup() { kill "$(cat "$dir/tollgate.pid" 2>/dev/null)" 2>/dev/null || true
            kill "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# The seed: one line per hash field, days counted back from today (UTC).
python3 - "$redis_port" <<'EOF' | redis-cli -p "$redis_port" >/dev/null
import datetime, json, random, sys, time
random.seed(7)
now = int(time.time()); today = datetime.date.fromtimestamp(now)
month = today.strftime("%Y-%m")
clients = {  # id: (daily limit USD, typical day USD, models with weights)
    "search-agent": (25, 14, {"gpt-4o": 6, "gpt-4o-mini": 3, "text-embedding-3-small": 1}),
    "support-bot@eu": (10, 6.5, {"claude-sonnet-4-5": 5, "claude-haiku-4-5": 4}),
    "research:deep": (40, 9, {"o3": 7, "gpt-4o": 2}),
    "batch:nightly": (5, 4.2, {"gpt-4o-mini": 8, "text-embedding-3-small": 2}),
    "code-review": (15, 2.2, {"claude-sonnet-4-5": 9, "claude-haiku-4-5": 1}),
}
cmd = lambda *a: print(" ".join(json.dumps(str(x)) for x in a))
month_spent = {}
for c, (limit, typical, models) in clients.items():
    cmd("HSET", f"tollgate:{{{c}}}:limits", "daily", limit * 10**9, "monthly", limit * 25 * 10**9)
    for back in range(30):
        day = today - datetime.timedelta(days=back)
        spent = int(typical * random.uniform(0.35, 1.25) * (1.5 if back == 0 and c == "batch:nightly" else 1) * 10**9)
        requests = int(spent / 2e7) + 1
        key = f"tollgate:{{{c}}}:day:{day.isoformat()}"
        total_w = sum(models.values()); rest = spent
        fields = ["spent", spent, "requests", requests]
        for i, (m, w) in enumerate(models.items()):
            part = rest if i == len(models) - 1 else spent * w // total_w
            rest -= part; fields += [f"model:{m}", part]
        if back == 0:
            fields += ["refused", {"batch:nightly": 14, "support-bot@eu": 2}.get(c, 0),
                       "loop_trips", 3 if c == "research:deep" else 0, "downgrades", 21 if c == "search-agent" else 0]
            cmd("ZADD", f"tollgate:top:day:{day.isoformat()}", spent, c)
        cmd("HSET", key, *fields)
        if day.strftime("%Y-%m") == month: month_spent[c] = month_spent.get(c, 0) + spent
for c, spent in month_spent.items():
    cmd("HSET", f"tollgate:{{{c}}}:month:{month}", "spent", spent, "requests", spent // 20_000_000)
    cmd("ZADD", f"tollgate:top:month:{month}", spent, c)
alert = lambda c, pct, spent, limit, cause, ago: json.dumps({
    "type": "budget.threshold", "id": f"{c}|daily|{today}|{pct}", "client": c, "period": "daily", "window": str(today),
    "threshold_percent": pct, "limit_usd": str(limit), "spent_usd": str(spent), "limit_nano_usd": limit * 10**9,
    "spent_nano_usd": int(spent * 10**9), "cause": cause,
    "fired_at": datetime.datetime.fromtimestamp(now - ago, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
for a in [alert("search-agent", 50, 12.5, 25, "spent", 5400), alert("batch:nightly", 80, 4, 5, "spent", 3000),
          alert("batch:nightly", 100, 5, 5, "refused", 900)]:
    cmd("LPUSH", "tollgate:alerts:recent", a)
EOF

TOLLGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0" TOLLGATE_HOST=127.0.0.1 TOLLGATE_PORT="$port" \
TOLLGATE_ADMIN_PORT="$admin_port" TOLLGATE_ADMIN_TOKEN=screenshot TOLLGATE_LOG_LEVEL=error \
  .build/debug/tollgate serve >/dev/null 2>&1 & echo $! > "$dir/tollgate.pid"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin_port/login" && break; sleep 0.1; done
python3 Tests/browser/dashboard.py --url "http://127.0.0.1:$admin_port" --token screenshot --out "$dir/shots" >/dev/null
cp "$dir/shots/dashboard.png" docs/dashboard.png
echo "wrote docs/dashboard.png"
