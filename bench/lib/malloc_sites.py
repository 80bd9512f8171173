"""Mallocs per request, by the Tollgate function they come from (bench/profile.sh's
BENCH_PROFILE_MALLOCS=1). Reads `perf script -F comm,ip,sym,dso` of a malloc uprobe on stdin.

A malloc is put on the innermost frame of Tollgate's own modules on its stack (what our code
asked for, through the standard library or NIO); those with no such frame are put on their
innermost named frame (NIO, curl, the runtime)."""
import argparse
import collections
import re
import subprocess
import sys

OURS = re.compile(r"\$s\d+Tollgate(Server|Core|Redis|Upstream)")


def samples(lines):
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.split(None, 2)
            if len(parts) == 3:
                stack.append(parts[1])
    if stack:
        yield stack


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    sites = collections.Counter()
    total = 0
    for stack in samples(sys.stdin):
        total += 1
        frames = stack[1:]  # stack[0] is malloc itself
        ours = next((f for f in frames if OURS.match(f)), None)
        named = next((f for f in frames if f not in ("[unknown]", "swift_allocObject", "swift_slowAlloc")), "[unknown]")
        sites[ours or named] += 1
    n = max(args.requests, 1)
    print(f"{total} mallocs over {args.requests} requests: {total / n:.1f} per request")
    top = sites.most_common(args.top)
    names = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(k for k, _ in top),
                           capture_output=True, text=True).stdout.split("\n")
    for (_, count), name in zip(top, names):
        print(f"{count / n:7.2f}  {name[:160]}")


main()
