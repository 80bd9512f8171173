#!/usr/bin/env python3
"""Redis CPU of the budget scripts alone: reserve + settle pairs against a throw-away
redis-server, measured with INFO commandstats (usec of evalsha per call). Stdlib only.

    bench/redis_scripts.py                       the scripts BudgetScripts.load() uses (v5)
    bench/redis_scripts.py --version 4 --runs 5  the old pair, for comparison
    bench/redis_scripts.py --version 6 --batch 8 apply_v6: 8 operations of the client per call
    bench/redis_scripts.py --version 6 --batch 8 --mixed   each call settles 4 and reserves 4

The arguments are the ones BudgetStore sends for the bench's chat request (config defaults:
alerts 50,80,100, no loop breaker, no run, no downgrade); one client holds `--window` leases in
flight, as one wrk connection pool does against one client in `make bench`. Each run pipelines
`--window` reserves, then settles them, `--pairs` times over; between the two halves the stats
are read and reset, so reserve and settle are reported apart.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from benchlib import ROOT, HUGE_BUDGET, Redis, commandstats  # noqa: E402

LUA = ROOT / "lua"
LEASE_MS, GRACE, RETENTION = 600_000, 3600, 86_400
# The bench's chat request priced as gpt-4o-mini: input bound and per-output-token cost.
FIXED, UNIT, TOKENS = 135_000, 600, 256
NEVER = 253_402_300_800


def pipeline(r, commands):
    out = b"".join(encode(c) for c in commands)
    r.sock.sendall(out)
    return [r._reply() for _ in commands]


def encode(args):
    out = b"*%d\r\n" % len(args)
    for x in args:
        x = str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out


def civil(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def days_from_civil(y, m, d):
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def reserve_v4(base, rid):
    return ([f"{base}:limits", f"{base}:leases", f"{base}:alerts"],
            [base, 0, 0, NEVER, 0, rid, FIXED, UNIT, TOKENS, TOKENS, HUGE_BUDGET, HUGE_BUDGET, LEASE_MS, GRACE, GRACE,
             RETENTION, "block", "f" * 64, 0, 60, "", "", "", "", "", 7 * 86400, "gpt-4o-mini", 0, "", "", 0, 0, 0, 0,
             "50,80,100", 10000])


def reserve_v5(base, rid):
    # UTC: the period BudgetStore expects (TimezoneSchedule.period(at:)), valid for the whole day.
    now = int(time.time())
    days = now // 86400
    y, m, d = civil(days)
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    day, month = f"{base}:day:{y:04d}-{m:02d}-{d:02d}", f"{base}:month:{y:04d}-{m:02d}"
    return ([f"{base}:limits", f"{base}:leases", day, month],
            [rid, FIXED, UNIT, TOKENS, TOKENS, "gpt-4o-mini", "f" * 64, days * 86400, (days + 1) * 86400,
             (days + 1) * 86400, days_from_civil(ny, nm, 1) * 86400, 0, HUGE_BUDGET, HUGE_BUDGET, LEASE_MS, RETENTION,
             0, 0, f"0 {NEVER} 0 {GRACE} {GRACE} 60 604800 10000 block 50,80,100", "", "", "", "", ""])


def apply_header(base):
    """apply_v6's KEYS and batch ARGV (ARGV[1..13]), as BudgetStore sends them."""
    keys, args = reserve_v5(base, "x")
    return keys, args[7:18] + [args[18], f"{HUGE_BUDGET} {HUGE_BUDGET} 10000 50,80,100"]


def apply_reserve(rid):
    return ["r", rid, FIXED, UNIT, TOKENS, TOKENS, "gpt-4o-mini"]


def apply_settle(member):
    return ["S", member, FIXED + 100 * UNIT, "gpt-4o-mini"]


def settle_args(version, base, member):
    if version == 4:
        return [f"{base}:leases", f"{base}:limits", f"{base}:alerts"], [member, FIXED + 100 * UNIT, "gpt-4o-mini", "50,80,100", HUGE_BUDGET, HUGE_BUDGET, 10000]
    return [f"{base}:leases"], [member, FIXED + 100 * UNIT, "gpt-4o-mini", f"{HUGE_BUDGET} {HUGE_BUDGET} 10000 50,80,100"]


def evalsha(r, version, name):
    return r.call("SCRIPT", "LOAD", (LUA / f"{name}_v{version}.lua").read_text())


def usec(stats, command="evalsha"):
    s = stats.get(command)
    return (s["usec"], s["calls"]) if s else (0, 0)


class Meter:
    """evalsha's usec over what ran since the last read. Deltas, not CONFIG RESETSTAT: a reset
    frees each command's latency histogram, and re-creating those of the commands a script
    calls (~60k instructions each) is charged to the EVALSHA that first calls them again."""

    def __init__(self, r):
        self.r = r
        self.last = usec(commandstats(r))

    def read(self):
        now = usec(commandstats(self.r))
        delta = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        return delta


def one_run_v6(r, pairs, window, batch, mixed):
    """apply_v6: `batch` operations of the client per EVALSHA. Split: the window's reserves in
    batches, then their settles in batches. Mixed: each call settles batch/2 leases of the
    previous round and reserves batch/2 new ones (a steady tick of a busy client)."""
    sha = evalsha(r, 6, "apply")
    base = f"tollgate:{{bench-{uuid.uuid4().hex[:8]}}}"
    r.call("HSET", f"{base}:limits", "daily", HUGE_BUDGET, "monthly", HUGE_BUDGET)
    keys, header = apply_header(base)
    totals = {"reserve": [0, 0], "settle": [0, 0], "mixed": [0, 0]}
    meter = Meter(r)

    def run(ops_per_call):
        calls = [["EVALSHA", sha, len(keys), *keys, *header, *[x for op in ops for x in op]] for ops in ops_per_call]
        meter.read()
        replies = pipeline(r, calls)
        u, c = meter.read()
        out = []
        for reply in replies:
            if not isinstance(reply, list):
                raise SystemExit(f"apply_v6 failed: {reply}")
            out += reply
        return u, out

    def chunks(ops, n):
        return [ops[i:i + n] for i in range(0, len(ops), n)]

    if mixed:
        half = max(1, batch // 2)
        members = []
        _, replies = run(chunks([apply_reserve(uuid.uuid4().hex) for _ in range(window)], half))
        members = [x[7] for x in replies]
        for _ in range(pairs // window):
            calls = []
            for part in chunks(members, half):
                calls.append([apply_settle(m) for m in part] + [apply_reserve(uuid.uuid4().hex) for _ in part])
            u, replies = run(calls)
            members = [x[7] for x in replies if len(x) == 11]
            if len(members) != window or any(x[0] != 1 for x in replies):
                raise SystemExit(f"apply_v6 mixed: not all granted/settled: {replies[:4]}")
            totals["mixed"][0] += u
            totals["mixed"][1] += window
        return {"pair": totals["mixed"][0] / totals["mixed"][1]}
    for _ in range(pairs // window):
        u, replies = run(chunks([apply_reserve(uuid.uuid4().hex) for _ in range(window)], batch))
        if any(x[0] != 1 for x in replies):
            raise SystemExit(f"apply_v6 did not grant: {replies[:2]}")
        totals["reserve"][0] += u
        totals["reserve"][1] += window
        u, settled = run(chunks([apply_settle(x[7]) for x in replies], batch))
        if any(x[0] != 1 for x in settled):
            raise SystemExit(f"apply_v6 did not settle: {settled[:2]}")
        totals["settle"][0] += u
        totals["settle"][1] += window
    out = {k: u / c for k, (u, c) in totals.items() if c}
    out["pair"] = out["reserve"] + out["settle"]
    return out


def one_run(r, version, pairs, window):
    reserve_sha, settle_sha = evalsha(r, version, "reserve"), evalsha(r, version, "settle")
    base = f"tollgate:{{bench-{uuid.uuid4().hex[:8]}}}"
    r.call("HSET", f"{base}:limits", "daily", HUGE_BUDGET, "monthly", HUGE_BUDGET)
    make = reserve_v4 if version == 4 else reserve_v5
    totals = {"reserve": [0, 0], "settle": [0, 0]}
    meter = Meter(r)
    for _ in range(pairs // window):
        reserves = []
        for _ in range(window):
            keys, args = make(base, uuid.uuid4().hex)
            reserves.append(["EVALSHA", reserve_sha, len(keys), *keys, *args])
        meter.read()
        replies = pipeline(r, reserves)
        u, c = meter.read()
        totals["reserve"][0] += u
        totals["reserve"][1] += c
        settles = []
        for reply in replies:
            if reply[0] != 1:
                raise SystemExit(f"reserve_v{version} did not grant: {reply}")
            keys, args = settle_args(version, base, reply[7])
            settles.append(["EVALSHA", settle_sha, len(keys), *keys, *args])
        meter.read()
        for reply in pipeline(r, settles):
            if reply[0] != 1:
                raise SystemExit(f"settle_v{version} did not settle: {reply}")
        u, c = meter.read()
        totals["settle"][0] += u
        totals["settle"][1] += c
    return {k: u / c for k, (u, c) in totals.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", type=int, default=5, choices=(4, 5, 6))
    ap.add_argument("--batch", type=int, default=8, help="v6: operations of the client per EVALSHA")
    ap.add_argument("--mixed", action="store_true", help="v6: each call settles batch/2 and reserves batch/2")
    ap.add_argument("--pairs", type=int, default=20_000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, help="an existing redis-server (default: start one)")
    a = ap.parse_args()
    server = None
    port = a.port
    if port is None:
        port = int(subprocess.run([sys.executable, str(ROOT / "bench/lib/benchlib.py"), "ports", "1"],
                                  capture_output=True, text=True, check=True).stdout)
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", tempfile.gettempdir()], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                r = Redis(port)
                break
            except OSError:
                time.sleep(0.05)
        if a.version == 6:
            runs = [one_run_v6(r, a.pairs, a.window, a.batch, a.mixed) for _ in range(a.runs)]
        else:
            runs = [one_run(r, a.version, a.pairs, a.window) for _ in range(a.runs)]
        for x in runs:
            x.setdefault("pair", x.get("reserve", 0) + x.get("settle", 0))
        out = {"version": a.version, "pairs": a.pairs, "window": a.window, "redis": r.call("INFO", "server").split("redis_version:")[1].split()[0]}
        if a.version == 6:
            out["batch"], out["mixed"] = a.batch, a.mixed
        for name in ("reserve", "settle"):
            if name not in runs[0]:
                continue
            values = sorted(x[name] for x in runs)
            out[name] = {"min": round(values[0], 2), "median": round(statistics.median(values), 2), "max": round(values[-1], 2)}
        pair = sorted(x["pair"] for x in runs)
        out["pair"] = {"min": round(pair[0], 2), "median": round(statistics.median(pair), 2), "max": round(pair[-1], 2)}
        print(json.dumps(out))
    finally:
        if server:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
