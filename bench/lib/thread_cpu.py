#!/usr/bin/env python3
"""CPU per request of each kind of thread of a process, from /proc/PID/task/*/stat.

  thread_cpu.py snapshot PID > before.json      (utime+stime ticks per thread, by name)
  thread_cpu.py report before.json after.json --requests N

Threads are grouped by name with trailing digits dropped (NIO-ELT-0-#1 and NIO-ELT-0-#0 are
both event loops), so the report says where the process's time goes: the event loops, curl's
thread, Swift's global executor, the log writer.
"""
import json, os, re, sys

TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        threads[tid] = {"name": name, "ticks": int(fields[11]) + int(fields[12])}
    return threads


def group(name):
    return re.sub(r"[-#0-9 ]+$", "", re.sub(r"#\d+", "#", name)) or name


def report(before, after, requests):
    by_group = {}
    for tid, t in after.items():
        ticks = t["ticks"] - before.get(tid, {"ticks": 0})["ticks"]
        g = by_group.setdefault(group(t["name"]), [0, 0])
        g[0] += ticks
        g[1] += 1
    total = sum(t for t, _ in by_group.values())
    print(f"{'thread group':<28} {'threads':>7} {'µs/request':>11} {'share':>6}")
    for name, (ticks, count) in sorted(by_group.items(), key=lambda kv: -kv[1][0]):
        if ticks == 0:
            continue
        print(f"{name:<28} {count:>7} {ticks * TICK_US / requests:>11.1f} {100 * ticks / max(total, 1):>5.1f}%")
    print(f"{'all threads':<28} {len(after):>7} {total * TICK_US / requests:>11.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        json.dump(snapshot(sys.argv[2]), sys.stdout)
    elif sys.argv[1] == "report":
        with open(sys.argv[2]) as f:
            b = json.load(f)
        with open(sys.argv[3]) as f:
            a = json.load(f)
        report(b, a, int(sys.argv[sys.argv.index("--requests") + 1]))
