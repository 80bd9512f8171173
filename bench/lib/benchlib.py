#!/usr/bin/env python3
"""Helpers for bench/run.sh (stdlib only): generated configs, expected costs, Redis counters,
budget reconciliation, /proc sampling and the final report.

    benchlib.py prepare   --tmp DIR --ports k=v,...     configs + DIR/costs.json
    benchlib.py proc      PID [PID...]                  {"ticks":…, "rss_kb":…, "hwm_kb":…} (children included)
    benchlib.py limits    --redis-port P CLIENT...      sets a budget that never refuses
    benchlib.py counters  --redis-port P CLIENT         the client's day counters, summed
    benchlib.py reconcile ...                           settled spend vs what the upstream served
    benchlib.py report    --tmp DIR ...                 table, BENCH_RESULT line, results files
"""
import argparse
import json
import math
import os
import re
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
FIXTURES = BENCH / "fixtures"
PRICING = ROOT / "Sources/TollgateCore/Resources/pricing.yaml"
HUGE_BUDGET = 9_000_000_000_000_000  # nano-USD (9 million USD): under Lua's 2^53, never refuses

# The request kinds the upstream serves. `stream` kinds are routed by the X-Bench-Stream header
# (Tollgate forwards unknown headers unchanged), so one upstream serves all four.
KINDS = {
    "chat": {"path": "/v1/chat/completions", "request": "chat-request.json", "response": "chat-response.json", "stream": False},
    "chat-sse": {"path": "/v1/chat/completions", "request": "chat-request-stream.json", "response": "chat-stream.sse", "stream": True},
    "messages": {"path": "/v1/messages", "request": "messages-request.json", "response": "messages-response.json", "stream": False},
    "messages-sse": {"path": "/v1/messages", "request": "messages-request-stream.json", "response": "messages-stream.sse", "stream": True},
}


# ---------------------------------------------------------------------------------------------
# Expected cost: usage from the fixed responses × the bundled pricing table, rounded up once.

def pricing_table():
    """model → {field: nano-USD per million tokens}, read from the bundled pricing.yaml."""
    text = PRICING.read_text()
    models = {}
    try:
        import yaml  # python3-yaml, when present
        for name, entry in yaml.safe_load(text)["models"].items():
            models[name] = {k: str(v) for k, v in entry.items()}
    except ImportError:
        for m in re.finditer(r"^\s+([\w.\-]+):\s*\{([^}]*)\}", text, re.M):
            models[m.group(1)] = dict((k.strip(), v.strip()) for k, v in (p.split(":") for p in m.group(2).split(",")))
    table = {}
    for name, entry in models.items():
        nano = lambda usd: int(Decimal(usd) * 1_000_000_000)
        p = {"input": nano(entry["input"]), "output": nano(entry.get("output", "0"))}
        p["cached_input"] = nano(entry["cached_input"]) if "cached_input" in entry else p["input"]
        p["cache_write"] = nano(entry["cache_write"]) if "cache_write" in entry else p["input"]
        p["reasoning"] = nano(entry["reasoning"]) if "reasoning" in entry else p["output"]
        p["max_output_tokens"] = int(entry["max_output_tokens"])
        table[name] = p
    return table


def price_for(table, model):
    """Exact name, else the longest base whose dated snapshot this is (as PriceTable does)."""
    if model in table:
        return table[model]
    best = None
    for base in table:
        suffix = model[len(base) + 1:] if model.startswith(base + "-") else None
        if suffix and (re.fullmatch(r"\d{8}", suffix) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", suffix) or suffix == "latest"):
            if best is None or len(base) > len(best):
                best = base
    if best is None:
        raise SystemExit(f"model {model} is not in {PRICING}")
    return table[best]


def usage_of(kind, body):
    """(model, normalised usage) exactly as the provider reports it in the fixed response."""
    if kind == "chat":
        doc = json.loads(body)
        return doc["model"], openai_usage(doc["usage"])
    if kind == "messages":
        doc = json.loads(body)
        return doc["model"], anthropic_usage(doc["usage"])
    events = [e for e in body.split("\n\n") if e.strip()]
    datas = []
    for e in events:
        for line in e.split("\n"):
            if line.startswith("data: ") and line[6:] != "[DONE]":
                datas.append(json.loads(line[6:]))
    if kind == "chat-sse":
        final = [d for d in datas if d.get("usage")]
        assert len(final) == 1, "the chat stream fixture needs exactly one usage chunk"
        return final[0]["model"], openai_usage(final[0]["usage"])
    start = next(d for d in datas if d["type"] == "message_start")["message"]
    usage = anthropic_usage(start["usage"])
    for d in datas:  # message_delta carries the cumulative output count
        if d["type"] == "message_delta" and "output_tokens" in d.get("usage", {}):
            usage["output"] = d["usage"]["output_tokens"]
    return start["model"], usage


def openai_usage(u):
    cached = u.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    reasoning = u.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
    return {"input": u["prompt_tokens"] - cached, "cached_input": cached, "cache_write": 0,
            "output": u.get("completion_tokens", 0) - reasoning, "reasoning": reasoning}


def anthropic_usage(u):
    return {"input": u.get("input_tokens", 0), "cached_input": u.get("cache_read_input_tokens", 0),
            "cache_write": u.get("cache_creation_input_tokens", 0), "output": u.get("output_tokens", 0), "reasoning": 0}


def reservation_bound(request, size, price):
    """An upper bound of what strict mode reserves for this request (README: input bound at the
    dearest input price + reply cap × output price): every byte of the body counted as a token,
    plus the per-request and per-message framing, and the request's cap or the model's maximum."""
    messages = len(request.get("messages", [])) + 1
    input_tokens = size + 16 + 8 * messages
    worst_input = max(price["input"], price["cached_input"], price["cache_write"])
    cap = request.get("max_completion_tokens") or request.get("max_tokens") or price["max_output_tokens"]
    return -(-(input_tokens * worst_input + cap * max(price["output"], price["reasoning"])) // 1_000_000)


def expected_costs():
    table = pricing_table()
    costs = {}
    for kind, spec in KINDS.items():
        body = (FIXTURES / spec["response"]).read_text()
        model, usage = usage_of(kind, body)
        price = price_for(table, model)
        nano_times_million = sum(max(0, usage[f]) * price[f] for f in usage)
        request = (FIXTURES / spec["request"]).read_bytes()
        costs[kind] = {"nano_usd": -(-nano_times_million // 1_000_000), "model": model, "usage": usage,
                       "response_bytes": len(body.encode()), "request_bytes": len(request),
                       "reservation_bound_nano": reservation_bound(json.loads(request), len(request), price_for(table, json.loads(request)["model"]))}
    return costs


# ---------------------------------------------------------------------------------------------
# Generated configuration

def nginx_quote(text):
    """A single-quoted nginx string. The fixtures avoid the characters nginx would interpret."""
    for bad in ("'", "\\", "$"):
        assert bad not in text, f"fixture contains {bad!r}, which nginx's return would interpret"
    return "'" + text + "'"


def nginx_common(d, workers):
    return f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 30000;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    client_body_temp_path {d}/client_body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 1000000; keepalive_timeout 300s;
"""


def upstream_conf(d, port, workers):
    """The fixed-response provider: OpenAI chat and Anthropic messages, JSON or SSE.
    nginx limits one config token to 4 KB, so each body is assembled from `set` pieces."""
    def body_location(name, kind, content_type):
        text = (FIXTURES / KINDS[kind]["response"]).read_text()
        pieces = [text[i:i + 3000] for i in range(0, len(text), 3000)]
        sets = "\n".join(f"        set $p{i} {nginx_quote(p)};" for i, p in enumerate(pieces))
        joined = "".join(f"$p{i}" for i in range(len(pieces)))
        return f"""    location = {name} {{
{sets}
        default_type {content_type};
        return 200 "{joined}";
    }}
"""
    return nginx_common(d, workers) + f"""    # The upstream log is the ground truth for what "the provider" served (budget reconciliation).
    log_format bench '$http_x_bench_run $request_uri $http_x_bench_stream $status $body_bytes_sent';
    access_log {d}/access.log bench buffer=256k flush=200ms;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /healthz {{ access_log off; return 200 'ok'; }}
        location = /v1/chat/completions {{
            if ($http_x_bench_stream) {{ rewrite ^ /fixed/chat-sse last; }}
            rewrite ^ /fixed/chat last;
        }}
        location = /v1/messages {{
            if ($http_x_bench_stream) {{ rewrite ^ /fixed/messages-sse last; }}
            rewrite ^ /fixed/messages last;
        }}
{body_location("/fixed/chat", "chat", "application/json")}
{body_location("/fixed/chat-sse", "chat-sse", "text/event-stream")}
{body_location("/fixed/messages", "messages", "application/json")}
{body_location("/fixed/messages-sse", "messages-sse", "text/event-stream")}
    }}
}}
"""


def proxy_conf(d, port, upstream_port, workers):
    """The reference: a bare proxy_pass, with upstream keep-alive (as any production nginx has)."""
    return nginx_common(d, workers) + f"""    access_log off;
    upstream provider {{ server 127.0.0.1:{upstream_port}; keepalive 512; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://provider;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def tollgate_conf(port, redis_port, upstream_url, max_connections):
    return f"""# Generated by bench/lib/benchlib.py; environment variables override it.
server: {{ host: 127.0.0.1, port: {port} }}
redis: {{ url: "redis://127.0.0.1:{redis_port}/0", timeout_ms: 1000 }}
providers:
  openai:    {{ base_url: "{upstream_url}", api_key_env: TOLLGATE_BENCH_NO_KEY }}
  anthropic: {{ base_url: "{upstream_url}", api_key_env: TOLLGATE_BENCH_NO_KEY }}
pricing_file: null
clients: {{ id_header: X-Client-ID, unknown: reject }}
budget: {{ mode: strict, timezone: UTC }}
upstream: {{ max_connections: {max_connections} }}
log_level: warning
"""


def cmd_prepare(a):
    ports = dict(kv.split("=") for kv in a.ports.split(","))
    tmp = Path(a.tmp)
    for name in ("nginx-upstream", "nginx-proxy"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    (tmp / "nginx-upstream/nginx.conf").write_text(upstream_conf(tmp / "nginx-upstream", ports["upstream"], a.workers))
    (tmp / "nginx-proxy/nginx.conf").write_text(proxy_conf(tmp / "nginx-proxy", ports["proxy"], ports["upstream"], a.workers))
    (tmp / "tollgate.yaml").write_text(tollgate_conf(ports["tollgate"], ports["redis"], f"http://127.0.0.1:{ports['upstream']}", a.max_connections))
    (tmp / "tollgate-streams.yaml").write_text(tollgate_conf(ports["streams"], ports["redis"], f"http://127.0.0.1:{ports['mock']}", a.stream_max_connections))
    (tmp / "costs.json").write_text(json.dumps(expected_costs(), indent=1))


# ---------------------------------------------------------------------------------------------
# /proc

def children(pid):
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(p.name))
    return kids


def proc_sample(pids, with_children=True):
    """CPU ticks (utime+stime, all threads) and RSS of the processes and, for nginx, their workers."""
    todo = list(pids)
    if with_children:
        for pid in pids:
            todo += children(pid)
    ticks = rss = hwm = 0
    for pid in todo:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
        except OSError:
            pass
    return {"ticks": ticks, "rss_kb": rss, "hwm_kb": hwm, "clk_tck": os.sysconf("SC_CLK_TCK"), "t": time.time(),
            "box_ticks": box_busy_ticks()}


def box_busy_ticks():
    """The whole box's busy CPU ticks, all cores (/proc/stat: every field but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


def cmd_proc(a):
    print(json.dumps(proc_sample([int(p) for p in a.pids])))


# ---------------------------------------------------------------------------------------------
# Redis (a minimal RESP client: no redis-py needed)

class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for x in args:
            x = str(x).encode()
            out += b"$%d\r\n%s\r\n" % (len(x), x)
        self.sock.sendall(out)
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")


def commandstats(r):
    """INFO commandstats as {command: {"calls", "usec"}}: Redis's own CPU per command, which the
    load of a shared machine moves far less than wall-clock time."""
    stats = {}
    for line in r.call("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            kv = dict(f.split("=", 1) for f in fields.split(","))
            stats[name] = {"calls": int(kv["calls"]), "usec": int(kv["usec"])}
    return stats


def day_counters(r, client):
    """The client's day hashes, summed (a run that crosses UTC midnight spans two keys)."""
    total = {"spent": 0, "reserved": 0, "requests": 0, "refused": 0, "leases_reaped": 0}
    cursor = "0"
    while True:
        cursor, keys = r.call("SCAN", cursor, "MATCH", f"tollgate:{{{client}}}:day:*", "COUNT", 1000)
        for key in keys:
            values = r.call("HGETALL", key)
            for field, value in zip(values[::2], values[1::2]):
                if field in total:
                    total[field] += int(value)
        if cursor == "0":
            return total


def cmd_limits(a):
    r = Redis(a.redis_port)
    for client in a.clients:
        r.call("HSET", f"tollgate:{{{client}}}:limits", "daily", HUGE_BUDGET, "monthly", HUGE_BUDGET)


# What the budget scripts call inside EVALSHA (commandstats counts those calls twice: under
# their own name and inside evalsha's usec), and what the bench itself sends.
SCRIPT_COMMANDS = {"time", "zcount", "zrangebyscore", "zrange", "zrem", "zadd", "exists", "hincrby", "hmget", "hget",
                   "hset", "hsetnx", "hdel", "expireat", "expire", "pexpireat", "incr", "ttl", "xadd"}
BENCH_COMMANDS = {"info", "config", "scan", "hgetall", "ping", "client", "select", "hello", "command", "script"}


def cmd_commandstats(a):
    r = Redis(a.redis_port)
    if a.reset:
        r.call("CONFIG", "RESETSTAT")
    else:
        print(json.dumps(commandstats(r), separators=(",", ":")))


def redis_commandstats_record(stats, requests):
    """Redis µs per request from INFO commandstats: evalsha's usec (which includes every command
    a script calls) plus the commands the replicas send outside scripts (the top-spender ZINCRBY),
    over the requests wrk completed; and evalsha's own µs per call."""
    # Redis 7 names subcommands "config|resetstat".
    own = {c: v for c, v in stats.items()
           if c in ("evalsha", "eval") or (c.split("|")[0] not in SCRIPT_COMMANDS and c.split("|")[0] not in BENCH_COMMANDS)}
    ev = stats.get("evalsha", {"calls": 0, "usec": 0})
    return {"redis_cmd_us_per_req": round(sum(v["usec"] for v in own.values()) / requests, 1),
            "evalsha_calls_per_req": round(ev["calls"] / requests, 2),
            "evalsha_us_per_call": round(ev["usec"] / ev["calls"], 1) if ev["calls"] else None,
            "redis_commands": {c: {"calls": v["calls"], "us_per_call": round(v["usec"] / v["calls"], 2)} for c, v in own.items() if v["calls"]}}


def cmd_counters(a):
    print(json.dumps(day_counters(Redis(a.redis_port), a.client)))


# ---------------------------------------------------------------------------------------------
# Reconciliation: settled spend against what the upstream served

def served_by_upstream(access_log, run_id, costs):
    """Per kind: complete (status 200, whole fixed body) and cut (anything else) upstream replies."""
    out = {}
    try:
        lines = Path(access_log).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 5 or parts[0] != run_id:
            continue
        _, uri, stream, status, sent = parts
        kind = ("chat" if uri.startswith("/v1/chat") else "messages") + ("-sse" if stream not in ("-", "") else "")
        entry = out.setdefault(kind, {"complete": 0, "cut": 0})
        whole = status == "200" and int(sent) == costs[kind]["response_bytes"]
        entry["complete" if whole else "cut"] += 1
    return out


def cmd_reconcile(a):
    costs = json.loads(Path(a.costs).read_text())
    r = Redis(a.redis_port)
    # Wait until every reservation of the run is settled and the upstream log stops growing.
    deadline = time.time() + a.timeout
    last = None
    while True:
        counters = day_counters(r, a.client)
        served = served_by_upstream(a.access_log, a.run_id, costs)
        state = (counters["reserved"], counters["requests"], json.dumps(served, sort_keys=True))
        if (counters["reserved"] == 0 and state == last) or time.time() > deadline:
            break
        last = state
        time.sleep(0.5)
    complete = sum(v["complete"] for v in served.values())
    cut = sum(v["cut"] for v in served.values())
    expected = sum(v["complete"] * costs[k]["nano_usd"] for k, v in served.items())
    result = {
        "type": "reconcile", "label": a.label or a.run_id, "client": a.client, "run_id": a.run_id, "served": served, "upstream_complete": complete, "upstream_cut": cut,
        "settled_requests": counters["requests"], "spent_nano": counters["spent"], "expected_nano": expected,
        "drift_nano": counters["spent"] - expected, "reserved_left_nano": counters["reserved"],
        "refused": counters["refused"], "leases_reaped": counters["leases_reaped"],
    }
    if a.client_completed is not None:
        result["client_completed"] = a.client_completed
    # Zero drift is exact when no client left early. wrk stops with up to one request per
    # connection in flight: the upstream may have served those in full while their client was
    # already gone, and Tollgate charges a disconnected request by its documented policy (the
    # reservation, or the streamed fallback), never less than nothing. So those requests may add
    # spend, up to their reservations, and must never remove any.
    in_flight = cut + (max(0, complete - a.client_completed) if a.client_completed is not None else 0)
    allowance = in_flight * max((costs[k]["reservation_bound_nano"] for k in served), default=0)
    result.update(client_gone_at_stop=in_flight, drift_allowance_nano=allowance)
    problems = []
    if counters["reserved"] != 0:
        problems.append(f"{counters['reserved']} nano-USD still reserved after {a.timeout}s")
    if result["drift_nano"] < 0:
        text = f"settled spend is {-result['drift_nano']} nano-USD below what the upstream served in full"
        kinds = [k for k, v in served.items() if v["complete"]]
        if len(kinds) == 1 and -result["drift_nano"] % costs[kinds[0]]["nano_usd"] == 0:
            n = -result["drift_nano"] // costs[kinds[0]]["nano_usd"]
            text += (f" = {n} complete {kinds[0]} replies charged $0 (their client hung up while Tollgate still read them)")
        problems.append(text)
    elif result["drift_nano"] > allowance:
        problems.append(f"drift {result['drift_nano']:+d} nano-USD exceeds what the {in_flight} requests whose client "
                        f"left at the stop could have reserved ({allowance})")
    if counters["requests"] < complete:
        problems.append(f"{complete - counters['requests']} upstream replies were never settled")
    if counters["refused"]:
        problems.append(f"{counters['refused']} requests refused for budget")
    result["problems"] = problems
    if not problems and result["drift_nano"] > 0:
        result["note"] = (f"+{result['drift_nano']} nano-USD charged by the disconnect policy for requests whose "
                          f"client left at the stop (upstream had sent them in full)")
    print(json.dumps(result))


def cmd_settled(a):
    """Waits until nothing of the client is reserved any more; prints its counters."""
    r = Redis(a.redis_port)
    deadline = time.time() + a.timeout
    while True:
        c = day_counters(r, a.client)
        if c["reserved"] == 0 or time.time() > deadline:
            print(json.dumps({"settled_requests": c["requests"], "spent_nano": c["spent"], "reserved_left_nano": c["reserved"]}))
            return
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# A wrk run → one record

def wrk_record(text):
    """WRK_RESULT from chat.lua's done(); falls back to wrk's own --latency lines."""
    for line in text.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT "):])
    raise SystemExit("wrk printed no WRK_RESULT line:\n" + text)


def cmd_wrk_record(a):
    w = wrk_record(Path(a.output).read_text())
    rec = {"type": "wrk", "target": a.target, "conns": a.conns, "requests": w["requests"],
           "seconds": w["duration_us"] / 1e6, "rps": w["requests"] / (w["duration_us"] / 1e6),
           "errors": sum(w["errors"].values()), "error_kinds": w["errors"],
           "p50_us": w["latency_us"]["p50"], "p90_us": w["latency_us"]["p90"], "p99_us": w["latency_us"]["p99"],
           "p999_us": w["latency_us"]["p999"], "max_us": w["latency_us"]["max"], "mean_us": w["latency_us"]["mean"]}
    if a.label:
        rec["label"] = a.label
    for name, before, after in (("cpu", a.before, a.after), ("redis", a.redis_before, a.redis_after),
                                ("upstream", a.upstream_before, a.upstream_after)):
        if before and after and w["requests"]:
            b, e = json.loads(before), json.loads(after)
            us = (e["ticks"] - b["ticks"]) * 1e6 / e["clk_tck"] / w["requests"]
            rec["cpu_us_per_req" if name == "cpu" else f"{name}_us_per_req"] = round(us, 1)
            if name == "cpu":
                rec["rss_kb"], rec["hwm_kb"] = e["rss_kb"], e["hwm_kb"]
                if "box_ticks" in b and "box_ticks" in e:
                    rec["box_us_per_req"] = round((e["box_ticks"] - b["box_ticks"]) * 1e6 / e["clk_tck"] / w["requests"], 1)
    if a.redis_stats and w["requests"]:
        rec.update(redis_commandstats_record(json.loads(a.redis_stats), w["requests"]))
    print(json.dumps(rec))


def sse_result(path):
    for line in Path(path).read_text().splitlines():
        if line.startswith("SSE_RESULT "):
            return json.loads(line[len("SSE_RESULT "):])
    raise SystemExit(f"no SSE_RESULT line in {path}:\n" + Path(path).read_text())


def cmd_sse_record(a):
    r = sse_result(a.output)
    r["type"] = r["mode"]
    if a.target:
        r["target"] = a.target
    if r["mode"] == "hold":
        acct = json.loads(a.accounting)
        r.update(note=a.note or None, accounting=acct)
        failures = []
        if r["errors"]:
            failures.append(f"{r['errors']} stream errors {r['error_kinds']}")
        if r["open"] < r["streams"]:
            failures.append(f"only {r['open']} of {r['streams']} streams delivered a first event")
        if acct["reserved_left_nano"]:
            failures.append(f"{acct['reserved_left_nano']} nano-USD still reserved after the streams closed")
        r["failures"] = failures
    print(json.dumps(r))


def cmd_line(a):
    """One human line about a record (for run.sh's progress log)."""
    r = json.loads(a.record)
    t = r["type"]
    if t == "wrk":
        cpu = f"  CPU {r['cpu_us_per_req']} µs/req" if "cpu_us_per_req" in r else ""
        if "redis_cmd_us_per_req" in r:
            cpu += f"  Redis {r['redis_cmd_us_per_req']} µs/req (EVALSHA {r['evalsha_us_per_call']} µs/call)"
        print(f"{r['target']:>8} c={r['conns']:<3} {r['rps']:>8.0f} req/s  p50 {r['p50_us'] / 1000:.2f} ms  "
              f"p99 {r['p99_us'] / 1000:.2f} ms  p99.9 {r['p999_us'] / 1000:.2f} ms  errors {r['errors']}{cpu}")
    elif t == "ttfb":
        print(f"SSE {r['target']:>8} c={r['concurrency']:<3} {r['rate']:>7.0f} streams/s  TTFB p50 "
              f"{r['ttfb_us']['p50'] / 1000:.2f} ms  p99 {r['ttfb_us']['p99'] / 1000:.2f} ms  errors {r['errors']}")
    elif t == "reconcile":
        print(f"budget {r['label']}: spent {r['spent_nano']} expected {r['expected_nano']} drift {r['drift_nano']:+d} "
              f"(upstream complete {r['upstream_complete']}, cut {r['upstream_cut']}, settled {r['settled_requests']}) "
              f"{'; '.join(r['problems']) or r.get('note') or 'ok'}")
    elif t == "hold":
        w = r["watch"]["tollgate"]
        print(f"hold {r['streams']}: {r['open']} open in {r['opened_in_s']} s, Tollgate RSS {w['before']['rss_kb']} → "
              f"{w['open']['rss_kb']} → {w['after']['rss_kb']} kB, errors {r['errors']}, settled "
              f"{r['accounting']['settled_requests']}, reserved left {r['accounting']['reserved_left_nano']}")
    elif t == "soak":
        print(f"soak: {r['requests']} requests, {r['errors']} errors, RSS {r['rss_before_kb']} → {r['rss_after_kb']} kB")
    else:
        print(json.dumps(r))


def cmd_soak_record(a):
    w = wrk_record(Path(a.output).read_text())
    samples = [int(x) for x in a.samples.split()] if a.samples else []
    print(json.dumps({"type": "soak", "seconds": a.seconds, "conns": a.conns, "requests": w["requests"],
                      "rps": w["requests"] / (w["duration_us"] / 1e6), "errors": sum(w["errors"].values()),
                      "error_kinds": w["errors"], "p99_us": w["latency_us"]["p99"], "rss_before_kb": a.rss_before,
                      "rss_after_kb": a.rss_after, "rss_samples_kb": samples}))


def cmd_rss(a):
    print(proc_sample([a.pid], with_children=False)["rss_kb"])


# ---------------------------------------------------------------------------------------------
# Report

def fmt_ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


def pct(x):
    return "-" if x is None else f"{x:.2f}"


def cmd_report(a):
    tmp = Path(a.tmp)
    records = [json.loads(l) for l in (tmp / "records.jsonl").read_text().splitlines() if l.strip()]
    meta = json.loads((tmp / "meta.json").read_text())
    costs = json.loads((tmp / "costs.json").read_text())
    wrk = [r for r in records if r["type"] == "wrk"]
    by = {(r["target"], r["conns"]): r for r in wrk}
    conns = sorted({r["conns"] for r in wrk})
    lines = []
    p = lines.append
    p(f"# Tollgate benchmark — {meta['date']} ({meta['mode']})")
    p("")
    p(f"commit {meta['commit']}{' (dirty work tree)' if meta['dirty'] else ''} · {meta['nproc']} × {meta['cpu']} · "
      f"{meta['mem_gib']} GiB · kernel {meta['kernel']} · nginx {meta['nginx']} · wrk {meta['wrk']} · {meta['swift']}")
    p(f"{meta['seconds']} s per wrk run after a {meta['warmup']} s warm-up; everything on loopback on the same "
      f"{meta['nproc']} cores (load generator included); nginx workers: {meta['workers']}.")
    load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    meta["load_end"] = load_end
    p(f"Load average before the run: {meta['load_start']}; after: {load_end}"
      + (" — **the machine was busy with other work: timings are noisy**" if float(meta["load_start"].split()[0]) > 1.0 else ""))
    p("")
    p("## Non-streaming chat completion (POST 0.9 KB → 0.8 KB JSON with usage), wrk")
    p("")
    p("| target | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | Redis CPU µs/req | Redis µs/req (commandstats) | EVALSHA µs/call | RSS MiB |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in conns:
        for t in ("direct", "nginx", "tollgate"):
            r = by.get((t, c))
            if not r:
                continue
            cpu = f"{r['cpu_us_per_req']:.1f}" if r.get("cpu_us_per_req") is not None else "-"
            redis_cpu = f"{r['redis_us_per_req']:.1f}" if r.get("redis_us_per_req") is not None else "-"
            rss = f"{r['rss_kb'] / 1024:.1f}" if r.get("rss_kb") else "-"
            redis_cmd = f"{r['redis_cmd_us_per_req']:.1f}" if r.get("redis_cmd_us_per_req") is not None else "-"
            evalsha = f"{r['evalsha_us_per_call']:.1f}" if r.get("evalsha_us_per_call") is not None else "-"
            p(f"| {t} | {c} | {r['rps']:.0f} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | {fmt_ms(r['p999_us'])} | "
              f"{r['errors']} | {cpu} | {redis_cpu} | {redis_cmd} | {evalsha} | {rss} |")
    summary = {"mode": meta["mode"], "commit": meta["commit"], "date": meta["date"], "nproc": meta["nproc"]}
    p("")
    ratios = []
    for c in conns:
        if ("tollgate", c) in by and ("nginx", c) in by:
            ratio = by[("tollgate", c)]["rps"] / by[("nginx", c)]["rps"]
            summary[f"rps_ratio_c{c}"] = round(ratio, 3)
            ratios.append(f"c={c}: **{ratio:.2f}**")
        for t in ("direct", "nginx", "tollgate"):
            if (t, c) in by:
                r = by[(t, c)]
                summary[f"{t}_c{c}"] = {"rps": round(r["rps"]), "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                                        "p999_us": r["p999_us"], "errors": r["errors"]}
                if t == "tollgate":
                    summary[f"{t}_c{c}"].update(cpu_us_per_req=r.get("cpu_us_per_req"), rss_kb=r.get("rss_kb"),
                                                redis_us_per_req=r.get("redis_us_per_req"),
                                                redis_cmd_us_per_req=r.get("redis_cmd_us_per_req"),
                                                evalsha_us_per_call=r.get("evalsha_us_per_call"))
                if t == "nginx":
                    summary[f"{t}_c{c}"].update(cpu_us_per_req=r.get("cpu_us_per_req"))
    p("Tollgate / nginx req/s: " + ", ".join(ratios))
    if all((t, 1) in by for t in ("direct", "nginx", "tollgate")):
        d = by[("direct", 1)]
        added = {t: {q: by[(t, 1)][q] - d[q] for q in ("p50_us", "p99_us")} for t in ("nginx", "tollgate")}
        summary["added_latency_c1_us"] = added
        p(f"Added latency at c=1 (p50 / p99 over direct): Tollgate **+{added['tollgate']['p50_us']} µs** / "
          f"+{added['tollgate']['p99_us']} µs; nginx +{added['nginx']['p50_us']} µs / +{added['nginx']['p99_us']} µs")
    p("")

    ttfb = [r for r in records if r["type"] == "ttfb"]
    if ttfb:
        p("## Streaming (SSE, fixed 14 KB chat stream from nginx), sse_load.py")
        p("")
        p("| target | conns | streams/s | TTFB p50 ms | TTFB p99 ms | whole stream p50 ms | errors |")
        p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        tb = {(r["target"], r["concurrency"]): r for r in ttfb}
        for r in ttfb:
            p(f"| {r['target']} | {r['concurrency']} | {r['rate']:.0f} | {fmt_ms(r['ttfb_us']['p50'])} | "
              f"{fmt_ms(r['ttfb_us']['p99'])} | {fmt_ms(r['total_us']['p50'])} | {r['errors']} |")
        for c in sorted({r["concurrency"] for r in ttfb}):
            if ("tollgate", c) in tb and ("nginx", c) in tb:
                added = {q: tb[("tollgate", c)]["ttfb_us"][q] - tb[("nginx", c)]["ttfb_us"][q] for q in ("p50", "p99")}
                summary[f"ttfb_added_over_nginx_c{c}_us"] = added
                p(f"\nTTFB added over nginx at c={c}: p50 **+{added['p50']} µs**, p99 +{added['p99']} µs")
        p("")

    holds = [r for r in records if r["type"] == "hold"]
    if holds:
        p("## Open streams (mock provider drips 1 event/s), Tollgate memory")
        p("")
        p("| streams asked | open (first event seen) | Tollgate RSS before MiB | with streams open MiB | RSS per stream KiB | after close MiB | "
          "CPU µs per relayed event | mock RSS open MiB | settled / reserved left |")
        p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in holds:
            tg = r["watch"]["tollgate"]
            mock = r["watch"].get("mock", {})
            per = (tg["open"]["rss_kb"] - tg["before"]["rss_kb"]) / max(1, r["open"])
            cpu = r.get("tollgate_cpu_us_per_event")
            acct = r.get("accounting", {})
            p(f"| {r['streams']} | {r['open']} | {tg['before']['rss_kb'] / 1024:.1f} | {tg['open']['rss_kb'] / 1024:.1f} | "
              f"{per:.1f} | {tg['after']['rss_kb'] / 1024:.1f} | {'-' if cpu is None else f'{cpu:.1f}'} | "
              f"{mock.get('open', {}).get('rss_kb', 0) / 1024:.0f} | {acct.get('settled_requests', '-')} / {acct.get('reserved_left_nano', '-')} |")
            summary[f"streams_{r['streams']}"] = {"open": r["open"], "rss_before_kb": tg["before"]["rss_kb"],
                                                  "rss_open_kb": tg["open"]["rss_kb"], "rss_per_stream_kb": round(per, 1),
                                                  "rss_after_close_kb": tg["after"]["rss_kb"], "cpu_us_per_event": cpu,
                                                  "errors": r["errors"], "note": r.get("note")}
        for r in holds:
            if r.get("note"):
                p(f"\n{r['streams']} streams: {r['note']}")
        p("")

    soak = [r for r in records if r["type"] == "soak"]
    if soak:
        s = soak[0]
        growth = s["rss_after_kb"] - s["rss_before_kb"]
        p(f"## Soak: {s['seconds']} s of c={s['conns']} mixed traffic (chat, chat SSE, messages, messages SSE)")
        p("")
        p(f"{s['requests']} requests ({s['rps']:.0f}/s), {s['errors']} errors; Tollgate RSS {s['rss_before_kb'] / 1024:.1f} MiB before → "
          f"{s['rss_after_kb'] / 1024:.1f} MiB after ({growth / 1024:+.1f} MiB); samples (MiB): "
          + " ".join(f"{x / 1024:.1f}" for x in s["rss_samples_kb"]))
        summary["soak"] = {"seconds": s["seconds"], "requests": s["requests"], "errors": s["errors"],
                           "rss_before_kb": s["rss_before_kb"], "rss_after_kb": s["rss_after_kb"], "rss_growth_kb": growth}
        p("")

    recs = [r for r in records if r["type"] == "reconcile"]
    p("## Budget accounting (Redis counters vs what the upstream served)")
    p("")
    p("Expected cost per request (usage in the fixed response × bundled pricing.yaml, rounded up): "
      + ", ".join(f"{k} {v['nano_usd']} nano-USD ({v['model']})" for k, v in costs.items()))
    p("")
    p("| run | client completed | upstream complete / cut | client gone at stop | settled | spent nano-USD | expected | drift | reserved left | problems |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    problems = []
    for r in recs:
        problems += [f"{r['label']}: {x}" for x in r["problems"]]
        p(f"| {r['label']} | {r.get('client_completed', '-')} | {r['upstream_complete']} / {r['upstream_cut']} | "
          f"{r.get('client_gone_at_stop', '-')} | {r['settled_requests']} | "
          f"{r['spent_nano']} | {r['expected_nano']} | {r['drift_nano']:+d} | {r['reserved_left_nano']} | "
          f"{'; '.join(r['problems']) or r.get('note') or 'none'} |")
    p("")
    p("drift = spent − Σ replies the upstream sent in full × expected cost. wrk stops with up to one request per "
      "connection in flight (*client gone at stop* = upstream replies the client never saw + cut replies); Tollgate "
      "charges those by its disconnect policy, so they may add spend, up to their reservations, but never remove any. "
      "The `exact` run sends a fixed number of requests and waits for every reply: its drift must be exactly 0.")
    errors = sum(r.get("errors", 0) for r in records if r["type"] in ("wrk", "ttfb", "soak", "exact"))
    hold_errors = sum(r.get("errors", 0) for r in holds)
    summary.update(errors=errors, stream_hold_errors=hold_errors, budget_problems=problems,
                   drift_nano_total=sum(r["drift_nano"] for r in recs),
                   exact_drift_nano=next((r["drift_nano"] for r in recs if r["label"].startswith("exact")), None))
    failures = list(problems)
    if errors:
        failures.append(f"{errors} request errors")
    failures += [f"hold {r['streams']}: {e}" for r in holds for e in r.get("failures", [])]
    summary["failures"] = failures
    p("")
    p(f"**Result: {'OK' if not failures else 'FAILED: ' + '; '.join(failures)}**")
    report = "\n".join(lines) + "\n"
    print(report)
    print("BENCH_RESULT " + json.dumps(summary, separators=(",", ":")))
    if a.out:
        Path(a.out + ".md").write_text(report)
        Path(a.out + ".json").write_text(json.dumps({"meta": meta, "summary": summary, "costs": costs, "records": records}, indent=1))
        print(f"results: {a.out}.md, {a.out}.json")
    sys.exit(1 if failures else 0)


def cmd_ports(a):
    """Free loopback ports below the ephemeral range: a port the kernel hands out for outgoing
    connections (a bench opens tens of thousands) could be taken before a later process binds it."""
    import random, socket
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    ports = []
    for p in random.sample(range(10000, low), low - 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
        if len(ports) == a.count:
            break
    print(*ports)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ports")
    s.add_argument("count", type=int)
    s.set_defaults(fn=cmd_ports)
    s = sub.add_parser("prepare")
    s.add_argument("--tmp", required=True)
    s.add_argument("--ports", required=True)
    s.add_argument("--workers", default="auto")
    s.add_argument("--max-connections", type=int, default=256)
    s.add_argument("--stream-max-connections", type=int, default=20000)
    s.set_defaults(fn=cmd_prepare)
    s = sub.add_parser("costs")
    s.set_defaults(fn=lambda a: print(json.dumps(expected_costs(), indent=1)))
    s = sub.add_parser("proc")
    s.add_argument("pids", nargs="+")
    s.set_defaults(fn=cmd_proc)
    s = sub.add_parser("limits")
    s.add_argument("--redis-port", type=int, required=True)
    s.add_argument("clients", nargs="+")
    s.set_defaults(fn=cmd_limits)
    s = sub.add_parser("counters")
    s.add_argument("--redis-port", type=int, required=True)
    s.add_argument("client")
    s.set_defaults(fn=cmd_counters)
    s = sub.add_parser("reconcile")
    s.add_argument("--redis-port", type=int, required=True)
    s.add_argument("--client", required=True)
    s.add_argument("--run-id", required=True)
    s.add_argument("--access-log", required=True)
    s.add_argument("--costs", required=True)
    s.add_argument("--client-completed", type=int)
    s.add_argument("--label")
    s.add_argument("--timeout", type=float, default=20)
    s.set_defaults(fn=cmd_reconcile)
    s = sub.add_parser("settled")
    s.add_argument("--redis-port", type=int, required=True)
    s.add_argument("--client", required=True)
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(fn=cmd_settled)
    s = sub.add_parser("wrk-record")
    s.add_argument("--output", required=True, help="wrk's stdout")
    s.add_argument("--target", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--label")
    s.add_argument("--before")
    s.add_argument("--after")
    s.add_argument("--redis-before")
    s.add_argument("--redis-after")
    s.add_argument("--upstream-before", help="proc samples of the upstream, for its CPU per request")
    s.add_argument("--upstream-after")
    s.add_argument("--redis-stats", help="INFO commandstats after the run (benchlib.py commandstats), reset before it")
    s.set_defaults(fn=cmd_wrk_record)
    s = sub.add_parser("commandstats")
    s.add_argument("--redis-port", type=int, required=True)
    s.add_argument("--reset", action="store_true", help="CONFIG RESETSTAT instead of printing")
    s.set_defaults(fn=cmd_commandstats)
    s = sub.add_parser("sse-record")
    s.add_argument("--output", required=True)
    s.add_argument("--target")
    s.add_argument("--note", default="")
    s.add_argument("--accounting", default="{}")
    s.set_defaults(fn=cmd_sse_record)
    s = sub.add_parser("soak-record")
    s.add_argument("--output", required=True)
    s.add_argument("--seconds", type=int, required=True)
    s.add_argument("--conns", type=int, default=32)
    s.add_argument("--rss-before", type=int, required=True)
    s.add_argument("--rss-after", type=int, required=True)
    s.add_argument("--samples", default="")
    s.set_defaults(fn=cmd_soak_record)
    s = sub.add_parser("rss")
    s.add_argument("pid", type=int)
    s.set_defaults(fn=cmd_rss)
    s = sub.add_parser("line")
    s.add_argument("record")
    s.set_defaults(fn=cmd_line)
    s = sub.add_parser("report")
    s.add_argument("--tmp", required=True)
    s.add_argument("--out")
    s.set_defaults(fn=cmd_report)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
