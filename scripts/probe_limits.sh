#!/usr/bin/env bash
# The figures behind the service's limits (docs/benchmarks.md § Limits under attack): a
# release `eino serve` on the embedded defaults (the local SmolLM2 and MiniLM) is probed on
# loopback the way issue 17's adversarial run did, and its peak memory and CPU are read from
# /proc:
#   - a 1 MiB PDF whose stream inflates to 1 GiB, uploaded 4 times at once;
#   - 8 concurrent chat requests of 100 000 messages (3.5 MiB each);
#   - a streamed local-model answer (max_tokens 512) whose client leaves after 1 s: the
#     server's CPU seconds in the 5 s after;
#   - 1500 connections that send half a request head and 200 that send nothing: how many
#     are still open after header_read_timeout_secs (10 s) + 2 s.
#   bash scripts/probe_limits.sh      # prints `name value unit` lines
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p eino-cli
TMP=$(mktemp -d)
SRV=127.0.0.1:19111
cleanup() { kill "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
EINO_TELEMETRY__LOG_LEVEL=warn target/release/eino serve --addr $SRV --data-dir "$TMP/data" 2>/dev/null &
PID=$!
for _ in $(seq 600); do curl -sf "http://$SRV/ready" >/dev/null && break; sleep 0.5; done
hwm() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; } # clock ticks
echo "idle_rss_kb $(awk '/VmRSS/ {print $2}' /proc/$PID/status) kB"
python3 - "$SRV" "$TMP" <<'PY'
import json, socket, sys, threading, time, urllib.request, zlib
srv, tmp = sys.argv[1], sys.argv[2]
host, port = srv.split(":")

def bomb(size):
    z, out, block = zlib.compressobj(9), [], b"\0" * (1 << 20)
    for _ in range(size >> 20):
        out.append(z.compress(block))
    out.append(z.flush())
    data = b"".join(out)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"]
    pdf, offs = bytearray(b"%PDF-1.4\n"), []
    for i, o in enumerate(objs, 1):
        offs.append(len(pdf)); pdf += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    x = len(pdf)
    pdf += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offs)
    pdf += b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % x
    return bytes(pdf)

def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(f"http://{srv}{path}", data=body, method=method, headers={"content-type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

call("POST", "/api/v1/knowledge-bases", json.dumps({"name": "probe"}).encode())
pdf = bomb(1 << 30)
print(f"bomb_pdf_bytes {len(pdf)} B")
boundary = "probe-boundary"
form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bomb.pdf\"\r\n"
        f"Content-Type: application/pdf\r\n\r\n").encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
jobs = []
def upload():
    jobs.append(call("POST", "/api/v1/knowledge-bases/probe/documents", form,
                     f"multipart/form-data; boundary={boundary}")[1]["job_id"])
ts = [threading.Thread(target=upload) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
for j in jobs:
    while True:
        st = call("GET", f"/api/v1/jobs/{j}")[1]
        if st["state"] != "running":
            break
        time.sleep(0.2)
print(f"bomb_outcome {st['outcomes'][0][1]['status']}: {st['outcomes'][0][1].get('error', '')[:80]}")
open(f"{tmp}/after_bomb", "w").write("")

msgs = [{"role": "user", "content": "hi"}] * 100_000
big = json.dumps({"model": "smollm2", "messages": msgs}).encode()
print(f"big_request_bytes {len(big)} B")
codes = []
def big_call():
    codes.append(call("POST", "/v1/chat/completions", big)[0])
ts = [threading.Thread(target=big_call) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"big_request_status {sorted(set(codes))}")
PY
echo "peak_rss_after_bombs_and_big_requests_kb $(hwm) kB"
# A streamed answer whose client leaves after 1 s.
curl -sN -m 1 "http://$SRV/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"smollm2","stream":true,"max_tokens":512,"messages":[{"role":"user","content":"Write a long story about a lighthouse."}]}' >/dev/null || true
c0=$(cpu); sleep 5; c1=$(cpu)
echo "cpu_after_disconnect_s $(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}') s"
python3 - "$SRV" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":")
half, silent = [], []
for _ in range(1500):
    s = socket.create_connection((host, int(port))); s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n"); half.append(s)
for _ in range(200):
    silent.append(socket.create_connection((host, int(port))))
time.sleep(12)
def closed(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
open_ = sum(not closed(s) for s in half + silent)
print(f"slow_connections_open_after_12s {open_} of {len(half) + len(silent)}")
PY
