#!/usr/bin/env bash
# Prints the first of COUNT (default 1) consecutive loopback ports nothing listens on, below the
# kernel's ephemeral range: a port in that range can be taken as the source port of some outgoing
# connection (a replica's Redis or upstream connection) before the process meant for it binds it.
python3 - "${1:-1}" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for first in random.sample(range(10000, low - count), low - count - 10000):
    if all(free(p) for p in range(first, first + count)):
        print(first)
        sys.exit(0)
sys.exit("no free ports below the ephemeral range")
PY
