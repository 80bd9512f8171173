#!/usr/bin/env bash
# `make demo`: a client running out of budget on a 3-replica cluster, narrated. Starts the local
# cluster against the mock provider (nothing leaves this machine, no keys needed), spends a small
# daily budget through nginx until Tollgate answers 402, shows what Redis recorded, the budget
# policies and the threshold alerts, and ends with the spend dashboard's URL: on success the
# cluster stays up for you to look (make cluster-stop); on failure it is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cluster-lib.sh

client=demo-agent
daily_usd=0.02               # the demo client's daily limit
daily_nano=20000000          # the same in nano-USD (1 USD = 1e9), as Redis keeps it
reply_tokens=250             # the mock provider answers with this many tokens
max_requests=40              # a safety stop; the budget runs out long before

step() { printf '\n==> %s\n' "$*"; }

for name in $(cluster_names); do
  cluster_pid "$name" >/dev/null && die "a cluster is already running: stop it first (make cluster-stop)"
done

# Ports: the usual ones, or the next free block (+100) when something else listens there.
ports_free() { local p; for ((p = $1; p < $1 + $2; p++)); do ! port_in_use "$p" || return 1; done; }
choose_ports() { # VARIABLE DEFAULT COUNT
  local var=$1 port=$2 tries=0
  if [ -n "${!var:-}" ]; then return; fi
  until ports_free "$port" "$3"; do
    port=$((port + 100)); tries=$((tries + 1))
    ((tries < 50)) || die "no free port found near $2; set $var"
  done
  export "$var=$port"
}
choose_ports CLUSTER_PORT 8090 1
choose_ports CLUSTER_REPLICA_PORT 8091 3
choose_ports CLUSTER_ADMIN_PORT 8191 3
choose_ports CLUSTER_REDIS_PORT 6380 1
choose_ports CLUSTER_MOCK_PORT 9090 1
export CLUSTER_REPLICAS=3
unset CLUSTER_UPSTREAM   # always the mock provider

tmp=$(mktemp -d)
keep_cluster=0
cleanup() {
  local status=$?
  if [ "$keep_cluster" = 1 ] && [ "$status" = 0 ]; then rm -rf "$tmp"; exit 0; fi
  step "Stopping the cluster (scripts/cluster-down.sh)"
  scripts/cluster-down.sh || true
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The replicas' config: the shipped one plus threshold alerts sent to the mock provider's webhook
# receiver (it appends what it gets to var/cluster/alerts.jsonl).
mkdir -p var/cluster
export CLUSTER_CONFIG=$PWD/var/cluster/demo.yaml
export TOLLGATE_ALERTS_WEBHOOK_SECRET=demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
alerts_file=$PWD/var/cluster/alerts.jsonl
{ cat deploy/tollgate.yaml; cat <<YAML
alerts:
  thresholds: [50, 80, 100]
  poll_interval_ms: 100
  webhook: { url: "http://127.0.0.1:$CLUSTER_MOCK_PORT/hooks/alerts", secret_env: TOLLGATE_ALERTS_WEBHOOK_SECRET }
YAML
} >"$CLUSTER_CONFIG"

step "Starting a local cluster: Redis, the mock provider, 3 Tollgate replicas, nginx in front"
echo "    (the mock provider plays OpenAI and Anthropic; nothing leaves this machine)"
scripts/cluster-up.sh >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; exit 1; }
grep '^cluster:' "$tmp/up.log" | sed 's/^/    /'
lb=http://127.0.0.1:$CLUSTER_PORT
redis() { redis-cli -p "$CLUSTER_REDIS_PORT" "$@"; }

step "Giving client '$client' a daily budget of \$$daily_usd"
echo "    redis-cli HSET 'tollgate:{$client}:limits' daily $daily_nano    # nano-USD"
redis HSET "tollgate:{$client}:limits" daily "$daily_nano" >/dev/null
echo "    Every replica reads this hash on each request: no restart, no config change."

step "Sending requests through nginx ($lb) as '$client' until the budget runs out"
echo "    Each asks for up to 300 tokens; the mock answers with $reply_tokens. Tollgate reserves the"
echo "    worst case before forwarding, settles the real usage after, and reports what is left in"
echo "    the X-Budget-Remaining-USD header."
echo

# Prints a one-line account of the response in $tmp/body (JSON, or an SSE stream).
describe() {
  python3 - "$tmp/body" "$1" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
status = sys.argv[2]
if status == "402":
    print("refused: budget exceeded"); sys.exit()
events = [l[5:].strip() for l in text.splitlines() if l.startswith("data:")]
if events:
    usage = {}
    for e in events:
        try: usage = json.loads(e).get("usage") or usage
        except ValueError: pass
    print(f"streamed {len(events)} events, {usage.get('completion_tokens', '?')} output tokens"); sys.exit()
try: body = json.loads(text)
except ValueError: print(text.strip()[:60]); sys.exit()
usage = body.get("usage") or {}
tokens = usage.get("completion_tokens", usage.get("output_tokens"))
print(f"{tokens} output tokens" if tokens is not None else json.dumps(body)[:60])
PY
}

n=0
status=0
# send LABEL PATH JSON [curl args...]
send() {
  local label=$1 path=$2 json=$3; shift 3
  n=$((n + 1))
  status=$(curl -sS -N -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$lb$path" \
    -H "X-Client-ID: $client" -H 'Content-Type: application/json' \
    -H "X-Mock-Completion-Tokens: $reply_tokens" "$@" -d "$json")
  local remaining
  remaining=$(tr -d '\r' <"$tmp/headers" | awk -F': ' 'tolower($1) == "x-budget-remaining-usd" { print $2 }')
  printf '    #%-2d %-28s %s  %-40s %s\n' "$n" "$label" "$status" "$(describe "$status")" \
    "${remaining:+remaining \$$remaining}" | tee -a "$tmp/rows"
}

chat='{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"user","content":"Summarise the plan."}]}'
stream='{"model":"gpt-4o","max_tokens":300,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream the plan."}]}'
claude='{"model":"claude-haiku-4-5","max_tokens":300,"messages":[{"role":"user","content":"Review the plan."}]}'

send "chat (gpt-4o)" /v1/chat/completions "$chat"
send "chat (gpt-4o)" /v1/chat/completions "$chat"
send "chat, streamed (gpt-4o)" /v1/chat/completions "$stream"
send "messages (claude-haiku-4-5)" /v1/messages "$claude" -H 'anthropic-version: 2023-06-01'
while [ "$status" != 402 ] && ((n < max_requests)); do
  send "chat (gpt-4o)" /v1/chat/completions "$chat"
done
[ "$status" = 402 ] || die "no 402 after $max_requests requests: the budget was not enforced"

echo
if awk -v full="$reply_tokens" '$0 ~ / 200 / && match($0, /[0-9]+ output tokens/) { if (substr($0, RSTART) + 0 < full) found = 1 }
                                 END { exit !found }' "$tmp/rows"; then
  echo "    Near the end the remaining budget could not cover 300 tokens, so Tollgate lowered"
  echo "    max_tokens to what it could afford (strict mode) instead of refusing; once not even"
  echo "    the minimum reply fitted, it refused without calling the provider."
else
  echo "    Once the remaining budget could not cover the request, Tollgate refused it without"
  echo "    calling the provider."
fi

step "The 402 body (what an OpenAI or Anthropic SDK raises as an APIStatusError)"
python3 -m json.tool "$tmp/body" | sed 's/^/    /'

step "Every replica agrees: the same request sent straight to each of them"
for port in $(seq "$CLUSTER_REPLICA_PORT" $((CLUSTER_REPLICA_PORT + 2))); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
    -H "X-Client-ID: $client" -H 'Content-Type: application/json' -d "$chat")
  echo "    replica :$port -> $code"
done

today=$(date -u -d "@$(redis TIME | head -n 1)" +%F)
step "What Redis recorded today (all replicas share these counters; amounts in nano-USD)"
echo "    redis-cli HGETALL 'tollgate:{$client}:day:$today'"
redis HGETALL "tollgate:{$client}:day:$today" | paste - - | sed 's/^/      /'
echo "    spent is what the provider reported, priced; it never exceeds the limit of $daily_nano."

step "The same through the CLI: tollgate spend $client"
# `tollgate spend --help` exits 0 even in builds without a spend command (serve is the default
# command and prints its own help), so look for the command's own usage line.
if .build/release/tollgate spend --help 2>/dev/null | grep -q 'USAGE: tollgate spend'; then
  echo "    .build/release/tollgate spend $client --redis redis://127.0.0.1:$CLUSTER_REDIS_PORT/0"
  .build/release/tollgate spend "$client" --redis "redis://127.0.0.1:$CLUSTER_REDIS_PORT/0" |
    sed 's/^/    /' || echo "    (tollgate spend failed)"
else
  echo "    This build has no 'spend' command yet; the HGETALL above shows the same numbers."
fi

# --- Budget policies (README, "Budget policies"): one client per rule ---------------------------
# policy_call LABEL CLIENT JSON [curl args...]: one request; prints status, the policy headers and
# what the answer says.
policy_call() {
  local label=$1 who=$2 json=$3; shift 3
  local code
  code=$(curl -sS -N -o "$tmp/pbody" -D "$tmp/pheaders" -w '%{http_code}' "$lb/v1/chat/completions" \
    -H "X-Client-ID: $who" -H 'Content-Type: application/json' "$@" -d "$json")
  local marks
  marks=$(tr -d '\r' <"$tmp/pheaders" | awk -F': ' 'tolower($1) ~ /^x-budget-(exceeded|on-limit|downgraded-from)$/ { printf "%s: %s  ", $1, $2 }')
  local said
  said=$(python3 - "$tmp/pbody" <<'PY'
import json, sys
try: body = json.load(open(sys.argv[1]))
except ValueError: print("(not JSON)"); sys.exit()
if "error" in body:
    e = body["error"]; print(f"{e.get('type')}: {e.get('message', '')[:110]}")
elif body.get("choices"):
    print(f"model {body.get('model')}: {body['choices'][0]['message']['content'][:100]!r}")
else: print(json.dumps(body)[:100])
PY
)
  printf '    %-26s %s  %s\n      %s\n' "$label" "$code" "$marks" "$said"
}
small='{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"Next step?"}]}'
big='{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"Plan the week."}]}'

step "Policy on_limit: warn (alert-only): over the limit, forwarded anyway and counted apart"
redis HSET "tollgate:{demo-warn}:limits" daily 1000 on_limit warn >/dev/null
echo "    redis-cli HSET 'tollgate:{demo-warn}:limits' daily 1000 on_limit warn"
policy_call "over the limit" demo-warn "$small"
sleep 0.3
echo "    over_limit_spent today: $(redis HGET "tollgate:{demo-warn}:day:$today" over_limit_spent) nano-USD (the guarantee is given up, deliberately)"

step "Policy on_limit: stop: a normal-looking answer that says the budget is exhausted"
redis HSET "tollgate:{demo-stop}:limits" daily 1000 on_limit stop >/dev/null
echo "    redis-cli HSET 'tollgate:{demo-stop}:limits' daily 1000 on_limit stop"
policy_call "over the limit" demo-stop "$small"
echo "    Nothing was sent to the provider and nothing was charged."

step "Policy downgrade: past 50 % of the budget, gpt-4o requests go out as gpt-4o-mini"
redis HSET "tollgate:{demo-down}:limits" daily 20000000 downgrade_at 50 downgrade:gpt-4o gpt-4o-mini >/dev/null
echo "    redis-cli HSET 'tollgate:{demo-down}:limits' daily 20000000 downgrade_at 50 downgrade:gpt-4o gpt-4o-mini"
policy_call "at 0 % spent" demo-down "$big"
redis HSET "tollgate:{demo-down}:day:$today" spent 12000000 >/dev/null
echo "    (an operator's HSET puts the day's spend at 60 %)"
policy_call "at 60 % spent" demo-down "$big"

step "Policy loop breaker: the same request more than 3 times a minute is a runaway loop"
redis HSET "tollgate:{demo-loop}:limits" loop_max 3 loop_window 60 >/dev/null
echo "    redis-cli HSET 'tollgate:{demo-loop}:limits' loop_max 3 loop_window 60"
for i in 1 2 3 4; do policy_call "identical request #$i" demo-loop "$small"; done

step "Workflow run budget: X-Budget-Run: research-42 with X-Budget-Run-USD: 0.00002"
for i in 1 2 3; do
  policy_call "run research-42 #$i" demo-run "$small" -H 'X-Budget-Run: research-42' -H 'X-Budget-Run-USD: 0.00002'
done
echo "    redis-cli HGETALL 'tollgate:{demo-run}:run:research-42': $(redis HGETALL "tollgate:{demo-run}:run:research-42" | paste -sd' ')"

step "Header budget: X-Budget-Daily-USD only ever lowers the client's limit"
policy_call "X-Budget-Daily-USD: 0.00001" demo-hdr "$small" -H 'X-Budget-Daily-USD: 0.00001'
policy_call "X-Budget-Daily-USD: 1000" demo-hdr "$small" -H 'X-Budget-Daily-USD: 1000'
policy_call "X-Budget-Daily-USD: lots" demo-hdr "$small" -H 'X-Budget-Daily-USD: lots'

step "Threshold alerts: 50, 80 and 100 % of a budget, each fired once across the replicas"
echo "    The scripts decide each crossing atomically and append it to the client's outbox in Redis;"
echo "    each replica's sender drains the outboxes into the webhook (here: the mock provider's"
echo "    /hooks/alerts, which appends every payload to $alerts_file)."
for _ in $(seq 1 50); do
  [ "$(grep -c "\"client\":\"$client\"" "$alerts_file" 2>/dev/null)" -ge 3 ] && break
  sleep 0.1
done
python3 - "$alerts_file" "$client" <<'PY'
import hashlib, hmac, json, os, sys
secret = os.environ["TOLLGATE_ALERTS_WEBHOOK_SECRET"].encode()
for line in open(sys.argv[1], encoding="utf-8"):
    hook = json.loads(line)
    a = hook["body"]
    body = json.dumps(a, separators=(",", ":")).encode()
    print(f"    {a['client']:<12} {a['period']:<8} {a['threshold_percent']:>3} %  {a['cause']:<8} spent ${a['spent_usd']} of ${a['limit_usd']}")
# Verify one signature the way a receiver does: HMAC-SHA256 of "<timestamp>.<raw body>".
PY
first=$(head -n 1 "$alerts_file" 2>/dev/null || true)
if [ -n "$first" ]; then
  python3 - "$first" <<'PY'
import hashlib, hmac, json, os, sys
hook = json.loads(sys.argv[1])
# The mock stored the body as it arrived; re-serialised compactly it is byte-identical (the
# sender writes compact JSON with a fixed key order).
raw = json.dumps(hook["body"], separators=(",", ":"), ensure_ascii=False).encode()
mac = hmac.new(os.environ["TOLLGATE_ALERTS_WEBHOOK_SECRET"].encode(), hook["timestamp"].encode() + b"." + raw, hashlib.sha256).hexdigest()
print("    signature of the first one: " + ("verified" if hmac.compare_digest("sha256=" + mac, hook["signature"]) else "MISMATCH"))
PY
fi

keep_cluster=1
step "Done. The cluster is still running, so you can look around:"
echo "    spend dashboard:        http://127.0.0.1:$CLUSTER_ADMIN_PORT/   (admin listener of replica 1)"
echo "    alert payloads:         $alerts_file"
echo "    stop everything with:   make cluster-stop"
