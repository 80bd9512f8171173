#!/usr/bin/env python3
"""The frame size of every async function in a Swift binary, largest first.

An async function's frame is carved from its task's allocator when it is called, and a task keeps
its allocator's high-water mark for as long as it lives. A connection's task lives as long as an
open stream, so a large frame anywhere on its deepest stack costs memory per open stream (issue
13). The size is the second word of the function's "async function pointer" (the `...Tu`
symbol): a relative pointer to the code, then the initial context size.

    bench/async_frames.py .build/release/tollgate [REGEX] [COUNT]

REGEX filters the demangled names (e.g. 'ProxyPipeline|StreamRelay'); COUNT defaults to 30.
Needs nm, readelf and `swift demangle`.
"""
import re
import struct
import subprocess
import sys


def sections(binary):
    """(address, file offset, size) of every section, to map a symbol's address into the file."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and int(m.group(1), 16):
            found.append(tuple(int(g, 16) for g in m.groups()))
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    pattern = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    nm = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    symbols = [line.split() for line in nm.splitlines() if line.endswith("Tu") and len(line.split()) == 3]
    names = subprocess.run(["swift", "demangle", "--compact"], input="\n".join(s[2] for s in symbols),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    places = sections(binary)
    data = open(binary, "rb").read()
    sizes = []
    for (address, _, _), name in zip(symbols, names):
        if pattern and not pattern.search(name):
            continue
        a = int(address, 16)
        offset = next((a - start + file_offset for start, file_offset, size in places if start <= a < start + size), None)
        if offset is not None:
            sizes.append((struct.unpack("<I", data[offset + 4:offset + 8])[0], name.removeprefix("async function pointer to ")))
    for size, name in sorted(sizes, reverse=True)[:count]:
        print(f"{size:7d}  {name[:180]}")


if __name__ == "__main__":
    main()
