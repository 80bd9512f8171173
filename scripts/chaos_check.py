#!/usr/bin/env python3
"""The verdict of `make chaos` (scripts/chaos.sh): compares what the mock provider billed
(var/cluster/usage.jsonl, priced here from the shipped pricing table) with Tollgate's counters in
Redis, client by client. Prints the report; exits 1 on overshoot or a lost settlement.

  overshoot        spent + reserved past the client's daily limit (must be <= 0)
  lost settlement  a client whose counted spend is below what the provider billed it, or a
                   lease still open after the drain (must be 0)
"""
import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from fractions import Fraction

redis_port, clients, limit, day, pricing, usage, load = sys.argv[1:8]
clients, limit = int(clients), int(limit)
load = json.loads(load)


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", redis_port, *args], check=True, capture_output=True, text=True).stdout
    return out.split("\n")[:-1] if out else []


prices = {}
for line in open(pricing):
    m = re.match(r"\s+([\w.-]+):\s+\{ input: ([\d.]+), cached_input: ([\d.]+),(?: cache_write: ([\d.]+),)?.* output: ([\d.]+),", line)
    if m:
        prices[m.group(1)] = {k: Fraction(v) if v else Fraction(0) for k, v in zip(("input", "cached", "write", "output"), m.groups()[1:])}


def billed_nano(line):
    p = prices[line["model"]]
    cached, writes = line["cached_tokens"], line["cache_write_tokens"]
    usd_per_million = ((line["input_tokens"] - cached - writes) * p["input"] + cached * p["cached"]
                       + writes * p["write"] + line["output_tokens"] * p["output"])
    return math.ceil(usd_per_million * 1000)  # USD per 1M tokens -> nano-USD per token: x 1000


billed, replies, cut = defaultdict(int), defaultdict(int), 0
for raw in open(usage):
    line = json.loads(raw)
    if line.get("tag", "").startswith("chaos-"):
        billed[line["tag"]] += billed_nano(line)
        replies[line["tag"]] += 1
        cut += 0 if line["complete"] else 1

rows, overshoot, lost, open_leases, reaped = [], None, 0, 0, 0
for i in range(1, clients + 1):
    c = f"chaos-{i}"
    fields = redis("HGETALL", f"tollgate:{{{c}}}:day:{day}")
    h = {fields[j]: int(fields[j + 1]) for j in range(0, len(fields) - 1, 2) if re.fullmatch(r"-?\d+", fields[j + 1])}
    spent, reserved = h.get("spent", 0), h.get("reserved", 0)
    leases = [m for m in redis("ZRANGE", f"tollgate:{{{c}}}:leases", "0", "-1") if m.startswith("A|")]
    over = spent + reserved - limit
    overshoot = over if overshoot is None else max(overshoot, over)
    short = max(0, billed[c] - spent)
    lost += (1 if short > 0 else 0) + len(leases)
    open_leases += len(leases)
    reaped += h.get("leases_reaped", 0)
    rows.append((c, replies[c], billed[c], spent, reserved, over, short, len(leases)))

print(f"requests   served {load['served']}  refused {load['refused']}  errored {load['errored']}  "
      f"(streams completed {load['streams_completed']}, cut {load['streams_cut']})")
print(f"           by status: {json.dumps(load['statuses'], sort_keys=True)}")
print(f"provider   {sum(replies.values())} replies billed ({cut} cut short)")
print(f"{'client':<10} {'replies':>7} {'billed':>10} {'spent':>10} {'reserved':>9} {'vs limit':>10} {'short':>6} {'open':>5}")
for r in rows:
    print(f"{r[0]:<10} {r[1]:>7} {r[2]:>10} {r[3]:>10} {r[4]:>9} {r[5]:>10} {r[6]:>6} {r[7]:>5}")
print(f"overshoot         {overshoot} nano-USD (max over clients of spent + reserved - limit {limit}; must be <= 0)")
print(f"lost settlements  {lost}  (clients charged below what the provider billed, plus leases still open: {open_leases})")
print(f"leases reclaimed  {reaped}  (leases of killed requests, reaped and charged their reservation)")
sys.exit(0 if overshoot <= 0 and lost == 0 else 1)
