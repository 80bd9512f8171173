#!/usr/bin/env python3
"""Mixed load for `make chaos` (scripts/chaos.sh): runs until the stop file appears, then prints
one JSON line of counts. Standard library only.

Each worker sends, through the load balancer, as one of the chaos clients:
  - OpenAI chat completions, whole (half of the requests),
  - OpenAI chat completions, streamed with include_usage (a quarter),
  - Anthropic messages, streamed (a quarter),
with a random reply length (X-Mock-Completion-Tokens) under the max_tokens it asks for, and
streams paced by X-Mock-Chunk-Delay-Ms so that kills land in the middle of them.
X-Mock-Tag carries the client to the mock provider's usage log: Tollgate strips its client header.
"""
import http.client
import json
import os
import random
import sys
import threading
import time

host, port = sys.argv[1], int(sys.argv[2])
clients, workers, stop_file = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
MAX_TOKENS = 48

counts = {"served": 0, "refused": 0, "errored": 0, "streams_completed": 0, "streams_cut": 0}
statuses = {}
lock = threading.Lock()


def count(key, status=None):
    with lock:
        counts[key] += 1
        if status is not None:
            statuses[str(status)] = statuses.get(str(status), 0) + 1


def request(rng):
    client = f"chaos-{rng.randrange(clients) + 1}"
    kind = rng.choice(["chat", "chat", "chat-stream", "messages-stream"])
    headers = {
        "Content-Type": "application/json", "X-Client-ID": client, "X-Mock-Tag": client,
        "X-Mock-Completion-Tokens": str(rng.randint(4, MAX_TOKENS)),
    }
    prompt = [{"role": "user", "content": "chaos " * rng.randint(1, 40)}]
    if kind == "messages-stream":
        path = "/v1/messages"
        headers["anthropic-version"] = "2023-06-01"
        body = {"model": "claude-3-5-haiku", "max_tokens": MAX_TOKENS, "stream": True, "messages": prompt}
    else:
        path = "/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS, "messages": prompt}
        if kind == "chat-stream":
            body.update(stream=True, stream_options={"include_usage": True})
    streamed = kind.endswith("stream")
    if streamed:
        headers["X-Mock-Chunk-Delay-Ms"] = "20"
    return path, json.dumps(body), headers, streamed


def worker(seed):
    rng = random.Random(seed)
    conn = None
    while not os.path.exists(stop_file):
        path, body, headers, streamed = request(rng)
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status == 200:
                count("served", 200)
                if streamed:
                    finished = b"[DONE]" in data or b"message_stop" in data
                    count("streams_completed" if finished else "streams_cut")
            elif response.status == 402:
                count("refused", 402)
                time.sleep(0.05)  # a refused client backs off a little, as an agent would
            else:
                count("errored", response.status)
                time.sleep(0.1)  # Redis or the provider is away: retry soon, not in a tight loop
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as error:
            count("errored", type(error).__name__)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.1)


threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=120)
print(json.dumps(dict(counts, statuses=statuses)))
