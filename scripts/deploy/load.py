"""Bounded load against eino through its load balancer, for the deploy test's failover
check: N client threads, each on its own keep-alive connection, send a mix of requests for
`--seconds` and count every answer that is not 2xx, and every connection error, as a
failure. Prints one JSON summary line; exits 1 if any request failed.

    python scripts/deploy/load.py --url http://127.0.0.1:18080 --key KEY --seconds 30

The mix is what a failover must not break and what the balancer may retry: embeddings
(half of them repeated, so the shared cache answers some), model listings, knowledge-base
searches and short non-streaming chats with a raw model.
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse


def requests_for(worker, i, kb):
    n = (worker * 100_000 + i) if i % 2 else i % 7
    mix = i % 5
    if mix == 0:
        return "GET", "/v1/models", None
    if mix in (1, 2):
        return "POST", "/v1/embeddings", {"model": "minilm", "input": f"load sentence {n}"}
    if mix == 3 and kb:
        return "POST", f"/api/v1/knowledge-bases/{kb}/search", {"query": f"cargo build {n % 3}", "top_k": 3}
    return "POST", "/v1/chat/completions", {
        "model": "smollm2", "max_tokens": 2, "temperature": 0,
        "messages": [{"role": "user", "content": f"Say {n}"}],
    }


def worker(idx, args, stop, results, lock):
    url = urllib.parse.urlsplit(args.url)
    conn, i = None, 0
    while not stop.is_set():
        method, path, body = requests_for(idx, i, args.kb)
        i += 1
        headers = {"authorization": f"Bearer {args.key}", "content-type": "application/json"}
        start = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            conn.request(method, path, json.dumps(body) if body else None, headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            status = f"error: {type(e).__name__}"
            if conn is not None:
                conn.close()
            conn = None
        took = time.monotonic() - start
        with lock:
            results.append((status, took, path))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--kb", default="")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    stop, lock, results = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=worker, args=(w, args, stop, results, lock)) for w in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    took = sorted(t for _, t, _ in results)
    statuses = {}
    for s, _, _ in results:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    failed = [(s, path) for s, _, path in results if not (isinstance(s, int) and 200 <= s < 300)]
    pct = lambda q: round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 1) if took else None
    print(json.dumps({
        "requests": len(results), "failed": len(failed), "statuses": statuses,
        "first_failures": failed[:5], "rps": round(len(results) / args.seconds, 1),
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0),
    }))
    raise SystemExit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
