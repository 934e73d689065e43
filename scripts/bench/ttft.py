"""Time to the first streamed token of a chat completion, one request at a time on a
kept-alive connection: `python3 ttft.py HOST:PORT MODEL N` prints `p50_us p90_us`.
The first token is the first `data:` line with non-empty `content` (the role chunk
before it does not count)."""

import http.client
import json
import sys
import time

addr, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.rsplit(":", 1)
body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
conn = http.client.HTTPConnection(host, int(port))
times = []
for _ in range(n + 5):
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, headers)
    resp = conn.getresponse()
    first = None
    while first is None:
        line = resp.readline()
        if not line:
            break
        if line.startswith(b"data: {"):
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                first = time.perf_counter() - start
    resp.read()
    if first is not None:
        times.append(first)
times = sorted(times[5:])  # the first five warm the connection up
print(f"{1e6 * times[len(times) // 2]:.0f} {1e6 * times[int(len(times) * 0.9)]:.0f}")
