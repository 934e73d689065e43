#!/usr/bin/env bash
# The service's RAG path end to end, on the embedded defaults (local MiniLM and SmolLM2,
# SQLite, the in-process vector and BM25 indexes), printed as `name value unit` lines:
#  1. Ingestion: `eino ingest` of a folder of Markdown (llama.cpp's documentation, the .md
#     files of the llama-cpp-python source package on PyPI, as scripts/bench_llamacpp.sh
#     takes it) into a fresh server: chunks per second from the upload to the job's end.
#  2. RAG latency: a knowledge base of 1000 documents (man pages written as Markdown by
#     `bench_rag --export-pages`), then time to the first streamed token of
#     `POST /api/v1/chat` with the default application (query embedding, hybrid search,
#     prompt, first token of SmolLM2) for QUERIES questions at 1 and at 8 concurrent users:
#     p50 and p99; then one run's trace (time per step, prompt tokens).
#   bash scripts/bench_rag_server.sh            # QUERIES=40 by default
set -euo pipefail
cd "$(dirname "$0")/.."
QUERIES=${QUERIES:-40}
VERSION=0.3.35
W=target/llamacpp
cargo build --release -q -p eino-cli
cargo build --release -q -p eino-rag --example bench_rag
TMP=$(mktemp -d)
SRV=127.0.0.1:19111
PID=
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

if [ ! -d "$W/llama_cpp_python-$VERSION" ]; then
    mkdir -p "$W"
    python3 -m pip download -q --no-binary llama-cpp-python --no-deps "llama-cpp-python==$VERSION" -d "$W/dl"
    tar xzf "$W/dl/llama_cpp_python-$VERSION.tar.gz" -C "$W"
fi
# One folder, each file named after its path (many are README.md).
mkdir -p "$TMP/md"
(cd "$W/llama_cpp_python-$VERSION" && find . -name '*.md' -print0) |
    while IFS= read -r -d '' f; do
        cp "$W/llama_cpp_python-$VERSION/$f" "$TMP/md/$(echo "${f#./}" | tr '/' '_')"
    done
target/release/examples/bench_rag --export-pages "$TMP/man" 2>/dev/null

serve() {
    target/release/eino serve --addr $SRV --data-dir "$TMP/data" 2>"$TMP/serve.log" &
    PID=$!
    for _ in $(seq 600); do curl -sf "http://$SRV/ready" >/dev/null && return; sleep 0.2; done
    echo "the server did not get ready: see $TMP/serve.log" >&2
    exit 1
}
serve
# `eino ingest` prints one line per file: its name and outcome.
ingest() { # folder kb -> seconds chunks
    local start end
    start=$(date +%s.%N)
    target/release/eino ingest "$1" --kb "$2" --url "http://$SRV" >"$TMP/ingest.out" 2>/dev/null
    end=$(date +%s.%N)
    python3 - "$start" "$end" "$TMP/ingest.out" <<'PY'
import json, sys
chunks = failed = 0
for line in open(sys.argv[3]):
    name, _, outcome = line.rstrip("\n").partition("\t")
    o = json.loads(outcome)
    chunks += o.get("chunks", 0)
    failed += o.get("status") == "failed"
print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f} {chunks} {failed}")
PY
}
read -r secs chunks failed < <(ingest "$TMP/md" docs)
echo "ingest_markdown_files $(ls "$TMP/md" | wc -l) files"
echo "ingest_markdown_bytes $(cat "$TMP"/md/* | wc -c) bytes"
echo "ingest_markdown_chunks $chunks chunks"
echo "ingest_markdown_failed $failed files"
echo "ingest_markdown_seconds $secs s"
python3 -c "print(f'ingest_markdown_chunks_per_sec {$chunks / $secs:.1f} chunks/s')"

# A fresh server for the latency part: the 1000 man pages are its only knowledge base.
kill "$PID"; wait "$PID" 2>/dev/null || true; rm -rf "$TMP/data"
serve
read -r secs chunks failed < <(ingest "$TMP/man" man)
echo "kb_documents $(ls "$TMP/man" | wc -l) documents"
echo "kb_chunks $chunks chunks"
echo "kb_ingest_seconds $secs s"
python3 - "http://$SRV" "$TMP/man" "$QUERIES" <<'PY'
import json, os, sys, threading, time, urllib.request
from http.client import HTTPConnection
from urllib.parse import urlparse

base, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
# The questions: the man pages' one-line descriptions, as a user would ask them.
questions = []
for name in sorted(os.listdir(folder)):
    title = open(os.path.join(folder, name)).readline()
    questions.append("How do I " + title.split(": ", 1)[-1].strip() + "?")
questions = questions[:: max(1, len(questions) // n)][:n]
host = urlparse(base).netloc

def ask(q):
    """Seconds to the first `event: delta`, and the run id."""
    c = HTTPConnection(host, timeout=600)
    body = json.dumps({"message": q, "stream": True, "max_tokens": 16})
    start = time.perf_counter()
    c.request("POST", "/api/v1/chat", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first, run, event = None, None, None
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "delta" and first is None:
            first = time.perf_counter() - start
        elif line.startswith("data: ") and event == "done":
            run = json.loads(line[6:]).get("run_id")
    c.close()
    if first is None:
        raise SystemExit(f"no token streamed for {q!r}")
    return first, run

def pct(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)] * 1000

ask(questions[0])  # warm-up: models loaded, caches filled
runs = []
for users in (1, 8):
    times, lock = [], threading.Lock()
    todo = list(questions)
    def worker():
        while True:
            with lock:
                if not todo:
                    return
                q = todo.pop()
            t, run = ask(q)
            with lock:
                times.append(t)
                runs.append(run)
    threads = [threading.Thread(target=worker) for _ in range(users)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(f"rag_ttft_p50_users{users} {pct(times, 0.5):.0f} ms")
    print(f"rag_ttft_p99_users{users} {pct(times, 0.99):.0f} ms")
# Where the time of one single-user turn goes, from its run trace.
trace = json.load(urllib.request.urlopen(f"{base}/api/v1/runs/{runs[0]}"))
print(f"rag_prompt_tokens {trace.get('prompt_tokens', 0)} tokens")
for node in trace.get("nodes", []):
    if node.get("duration_ms") is not None:
        name = node.get("name", "?").replace(" ", "_")
        print(f"rag_step_ms_{name} {node['duration_ms']:.1f} ms")
PY
