#!/usr/bin/env python3
"""Streaming load for Tollgate's benchmark. Stdlib only: asyncio streams speaking raw HTTP/1.1
(keep-alive, Content-Length or chunked bodies). Prints one JSON line: `SSE_RESULT {...}`.

  ttfb   C connections each send streaming requests back to back for --duration seconds; per
         request: time to the response head, to the first body byte (the first SSE event) and
         to the end of the stream.
  hold   opens --streams streams (at most --connect-parallelism connecting at once), waits until
         every one has delivered its first event, samples the RSS of each --watch NAME=PID (before,
         with all open, after closing), keeps reading for --hold seconds, then closes them all.
  exact  sends exactly --per-kind requests of each --kind over --concurrency connections and waits
         for every reply: the budget drift check, where nothing may be cut off mid-flight.

Latencies are in microseconds. Exit status 0 when nothing failed.
"""
import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def summary(values):
    v = sorted(values)
    return {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
            "p999": percentile(v, 99.9), "max": v[-1] if v else None}


class HTTPError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def close(self):
        if self.writer:
            self.writer.close()
            self.writer = None

    async def request(self, raw, on_first_byte=None, on_data=None):
        """Sends `raw`; returns (status, headers, body bytes or total length if on_data consumes)."""
        if self.writer is None:
            await self.open()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        first = True
        size = 0
        body = bytearray()

        def got(data):
            nonlocal first, size
            if first and data:
                first = False
                if on_first_byte:
                    on_first_byte()
            size += len(data)
            if on_data:
                on_data(data)
            else:
                body.extend(data)

        if "chunked" in headers.get("transfer-encoding", ""):
            while True:
                line = await self.reader.readuntil(b"\r\n")
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                got(await self.reader.readexactly(n))
                await self.reader.readexactly(2)
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                data = await self.reader.read(min(left, 1 << 16))
                if not data:
                    raise HTTPError("connection closed mid-body")
                got(data)
                left -= len(data)
        else:
            while data := await self.reader.read(1 << 16):
                got(data)
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, (size if on_data else bytes(body))


def build_request(url, body, headers, client=None, run=None):
    u = urlsplit(url)
    lines = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    if client:
        lines.append(f"X-Client-ID: {client}")
    if run:
        lines.append(f"X-Bench-Run: {run}")
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def family_headers(path):
    if path.startswith("/v1/messages"):
        return ["x-api-key: sk-ant-bench-not-a-real-key", "anthropic-version: 2023-06-01"]
    return ["Authorization: Bearer sk-bench-not-a-real-key"]


def rss_and_ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
        return {"rss_kb": rss, "ticks": int(fields[11]) + int(fields[12]), "threads": int(fields[17]), "t": time.time()}
    except (OSError, StopIteration):
        return {"rss_kb": 0, "ticks": 0, "threads": 0, "t": time.time()}


def count_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------

async def run_ttfb(a):
    u = urlsplit(a.url)
    raw = build_request(a.url, open(a.body, "rb").read(), a.header + family_headers(u.path), a.client, a.run)
    head_us, ttfb_us, total_us, errors, statuses = [], [], [], 0, {}
    deadline = time.perf_counter() + a.duration
    completed = 0

    async def worker():
        nonlocal errors, completed
        conn = Connection(u.hostname, u.port)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            first = []
            try:
                status, _, size = await conn.request(raw, on_first_byte=lambda: first.append(time.perf_counter()),
                                                     on_data=lambda d: None)
            except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError):
                errors += 1
                conn.close()
                continue
            t1 = time.perf_counter()
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200 or not first or size < a.min_bytes:
                errors += 1
                continue
            completed += 1
            ttfb_us.append(int((first[0] - t0) * 1e6))
            total_us.append(int((t1 - t0) * 1e6))
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    elapsed = time.perf_counter() - start
    return {"mode": "ttfb", "concurrency": a.concurrency, "completed": completed, "errors": errors,
            "statuses": statuses, "seconds": round(elapsed, 3), "rate": completed / elapsed,
            "ttfb_us": summary(ttfb_us), "total_us": summary(total_us)}


async def run_hold(a):
    u = urlsplit(a.url)
    raw = build_request(a.url, open(a.body, "rb").read(), a.header + family_headers(u.path), a.client, a.run)
    watch = dict(w.split("=") for w in a.watch)
    samples = {name: {"before": rss_and_ticks(pid), "fds_before": count_fds(pid)} for name, pid in watch.items()}
    gate = asyncio.Semaphore(a.connect_parallelism)
    ready = 0
    setup_failed = 0
    all_ready = asyncio.Event()
    stop = asyncio.Event()
    errors = {}
    ttfb_us = []
    events_seen = 0
    conns = []

    def fail(kind):
        errors[kind] = errors.get(kind, 0) + 1

    async def stream():
        nonlocal ready, events_seen, setup_failed
        conn = Connection(u.hostname, u.port)
        conns.append(conn)
        t0 = time.perf_counter()
        marked = False

        def first():
            nonlocal ready, marked, setup_failed
            marked = True
            ttfb_us.append(int((time.perf_counter() - t0) * 1e6))
            ready += 1
            gate.release()
            if ready + setup_failed == a.streams:
                all_ready.set()

        def data(d):
            nonlocal events_seen
            events_seen += d.count(b"\n\n")

        await gate.acquire()
        try:
            await conn.open()
            status, _, _ = await conn.request(raw, on_first_byte=first, on_data=data)
            fail("ended_early" if status == 200 else f"status_{status}")
        except asyncio.CancelledError:
            pass
        except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError) as e:
            fail(type(e).__name__)
        finally:
            if not marked:
                setup_failed += 1
                gate.release()
                if ready + setup_failed == a.streams:
                    all_ready.set()
            conn.close()

    start = time.perf_counter()
    tasks = [asyncio.create_task(stream()) for _ in range(a.streams)]
    try:
        await asyncio.wait_for(all_ready.wait(), a.open_timeout)
    except asyncio.TimeoutError:
        pass
    opened_in = time.perf_counter() - start
    # Let the last connections' first events settle, then sample with everything open.
    await asyncio.sleep(1.0)
    for name, pid in watch.items():
        samples[name]["open"] = rss_and_ticks(pid)
        samples[name]["fds_open"] = count_fds(pid)
    events_at_open = events_seen
    await asyncio.sleep(a.hold)
    for name, pid in watch.items():
        samples[name]["hold_end"] = rss_and_ticks(pid)
    events_in_hold = events_seen - events_at_open
    open_at_end = sum(1 for t in tasks if not t.done())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(a.settle)
    for name, pid in watch.items():
        samples[name]["after"] = rss_and_ticks(pid)
        samples[name]["fds_after"] = count_fds(pid)
    result = {"mode": "hold", "streams": a.streams, "open": ready, "open_at_hold_end": open_at_end,
              "opened_in_s": round(opened_in, 2), "hold_s": a.hold, "errors": sum(errors.values()), "error_kinds": errors,
              "ttfb_us": summary(ttfb_us), "events_in_hold": events_in_hold, "watch": samples}
    if "tollgate" in samples and events_in_hold:
        s = samples["tollgate"]
        clk = os.sysconf("SC_CLK_TCK")
        result["tollgate_cpu_us_per_event"] = (s["hold_end"]["ticks"] - s["open"]["ticks"]) * 1e6 / clk / events_in_hold
    return result


async def run_exact(a):
    """Every kind `name:url:bodyfile[:stream]`; requests interleave kinds; all replies awaited."""
    kinds = []
    for spec in a.kind:
        name, rest = spec.split("=", 1)
        url, body, stream = (rest.split("|") + [""])[:3]
        path = urlsplit(url).path
        extra = ["X-Bench-Stream: 1"] if stream == "stream" else []
        kinds.append((name, url, build_request(url, open(body, "rb").read(), extra + family_headers(path), a.client, a.run)))
    queue = [k for _ in range(a.per_kind) for k in kinds]
    done = {name: 0 for name, _, _ in kinds}
    errors = {}
    u = urlsplit(kinds[0][1])

    async def worker():
        conn = Connection(u.hostname, u.port)
        while queue:
            name, _, raw = queue.pop()
            try:
                status, _, body = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                conn.close()
                continue
            if status == 200 and body:
                done[name] += 1
            else:
                errors[f"status_{status}"] = errors.get(f"status_{status}", 0) + 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    elapsed = time.perf_counter() - start
    return {"mode": "exact", "per_kind": a.per_kind, "completed": done, "errors": sum(errors.values()),
            "error_kinds": errors, "seconds": round(elapsed, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for name in ("ttfb", "hold", "exact"):
        s = sub.add_parser(name)
        s.add_argument("--client", help="X-Client-ID")
        s.add_argument("--run", help="X-Bench-Run (the fixed upstream logs it)")
        if name != "exact":
            s.add_argument("--url", required=True)
            s.add_argument("--body", required=True, help="file holding the JSON request body")
            s.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    s = sub.choices["ttfb"]
    s.add_argument("--concurrency", type=int, default=1)
    s.add_argument("--duration", type=float, default=5)
    s.add_argument("--min-bytes", type=int, default=1, help="a reply shorter than this counts as an error")
    s = sub.choices["hold"]
    s.add_argument("--streams", type=int, required=True)
    s.add_argument("--hold", type=float, default=10)
    s.add_argument("--settle", type=float, default=3, help="seconds after closing before the last sample")
    s.add_argument("--open-timeout", type=float, default=180)
    s.add_argument("--connect-parallelism", type=int, default=128)
    s.add_argument("--watch", action="append", default=[], help="NAME=PID whose RSS and CPU to sample")
    s = sub.choices["exact"]
    s.add_argument("--kind", action="append", required=True, help="NAME=URL|BODYFILE[|stream]")
    s.add_argument("--per-kind", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args()
    result = asyncio.run({"ttfb": run_ttfb, "hold": run_hold, "exact": run_exact}[a.mode](a))
    print("SSE_RESULT " + json.dumps(result))
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
