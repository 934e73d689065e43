#!/usr/bin/env bash
# Load benchmark of the server against a fake OpenAI-compatible upstream on loopback:
# requests/s and latency (wrk --latency) calling the upstream directly, through `eino serve`
# and through the LiteLLM proxy (pip `litellm[proxy]`, pinned, in target/litellm-venv; 2
# workers, master key), at 1 connection (JSON) and 64 connections (JSON and SSE); eino's CPU
# time per proxied request; the same for `floor_proxy` (the least a relay on our HTTP stack
# does: forward the body, relay the answer's bytes), the floor any proxy on this machine
# stands on; then idle RSS and peak RSS with 1000 concurrent streaming requests, and the
# time to the first streamed token, direct, through eino and through the floor relay
# (scripts/bench/ttft.py).
# Installs wrk (Debian) if missing. RECORD_RUNS=false turns run traces off,
# RECORD_RUNS_SAMPLE=0.1 keeps a tenth of the successful ones; LITELLM=0 skips LiteLLM.
#   bash scripts/bench_server.sh            # prints `name value unit` lines
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk; }
cargo build --release -q -p eino-cli
cargo build --release -q -p eino-server --example fake_upstream --example floor_proxy
TMP=$(mktemp -d)
UP=127.0.0.1:19101; SRV=127.0.0.1:19102; LLM=127.0.0.1:19103; FLOOR=127.0.0.1:19104
LITELLM=${LITELLM:-1}
if [ "$LITELLM" = 1 ] && [ ! -x target/litellm-venv/bin/litellm ]; then
    python3 -m venv target/litellm-venv
    target/litellm-venv/bin/pip install -q 'litellm[proxy]==1.108.0'
fi
# LiteLLM's workers are its children: its own process group, killed as a group.
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; [ -z "${LLM_PGID:-}" ] || kill -- -"$LLM_PGID" 2>/dev/null || true; rm -rf "$TMP"; }
PIDS=(); trap cleanup EXIT
target/release/examples/fake_upstream $UP 2>/dev/null & PIDS+=($!)
target/release/examples/floor_proxy $FLOOR "http://$UP" 2>/dev/null & PIDS+=($!)
FLOOR_PID=$!
cat > "$TMP/eino.yaml" <<YAML
models:
  up: { provider: openai, model: fake, base_url: "http://$UP/v1", max_retries: 0 }
embedders: {}
applications: {}
telemetry: { log_level: warn, record_runs: ${RECORD_RUNS:-true}, record_runs_sample: ${RECORD_RUNS_SAMPLE:-1.0} }
YAML
target/release/eino serve --config "$TMP/eino.yaml" --addr $SRV --data-dir "$TMP/data" 2>/dev/null & PIDS+=($!)
EINO_PID=$!
for _ in $(seq 100); do curl -sf "http://$SRV/ready" >/dev/null && break; sleep 0.1; done
body() { printf '{"model":"%s","stream":%s,"messages":[{"role":"user","content":"hi"}]}' "$1" "$2"; }
run() { # name url body [connections]
  printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.headers["Authorization"]="Bearer sk-bench"\nwrk.body=[[%s]]\n' "$3" > "$TMP/req.lua"
  local c=${4:-64} t=2; [ "$c" = 1 ] && t=1
  out=$(wrk -t$t -c"$c" -d"$DURATION" --latency -s "$TMP/req.lua" "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  LAST_REQS=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$1_rps $rps req/s"; echo "$1_p50 $p50"; echo "$1_p99 $p99"
  [ -z "$errs" ] || echo "$1_errors $errs"
}
if [ "$LITELLM" = 1 ]; then
    cat > "$TMP/litellm.yaml" <<YAML
model_list:
  - model_name: fake
    litellm_params: { model: openai/fake, api_base: "http://$UP/v1", api_key: unused }
general_settings: { master_key: sk-bench }
litellm_settings: { telemetry: false }
YAML
    (cd "$TMP" && LITELLM_LOG=ERROR exec setsid "$OLDPWD/target/litellm-venv/bin/litellm" --config litellm.yaml \
        --host 127.0.0.1 --port 19103 --num_workers 2 >/dev/null 2>&1) & LLM_PGID=$!
    for _ in $(seq 240); do
        curl -sf -H "Authorization: Bearer sk-bench" "http://$LLM/health/liveliness" >/dev/null && break
        sleep 0.5
    done
fi
idle=$(awk '/VmRSS/ {print $2}' /proc/$EINO_PID/status)
echo "idle_rss_kb $idle kB"
cpu_ticks() { awk '{print $14 + $15}' /proc/${1:-$EINO_PID}/stat; }
per_request() { # name ticks requests
  awk -v t="$2" -v hz="$(getconf CLK_TCK)" -v n="$3" -v name="$1" \
      'BEGIN {printf "%s %.1f us\n", name, t / hz * 1e6 / n}'
}
run direct_json_c1 "http://$UP/v1/chat/completions" "$(body fake false)" 1
run eino_json_c1 "http://$SRV/v1/chat/completions" "$(body up false)" 1
run floor_json_c1 "http://$FLOOR/v1/chat/completions" "$(body fake false)" 1
[ "$LITELLM" = 1 ] && run litellm_json_c1 "http://$LLM/v1/chat/completions" "$(body fake false)" 1
run direct_json "http://$UP/v1/chat/completions" "$(body fake false)"
before=$(cpu_ticks)
run eino_json "http://$SRV/v1/chat/completions" "$(body up false)"
after=$(cpu_ticks)
eino_reqs=$LAST_REQS
before_floor=$(cpu_ticks $FLOOR_PID)
run floor_json "http://$FLOOR/v1/chat/completions" "$(body fake false)"
floor_ticks=$(($(cpu_ticks $FLOOR_PID) - before_floor)); floor_reqs=$LAST_REQS
[ "$LITELLM" = 1 ] && run litellm_json "http://$LLM/v1/chat/completions" "$(body fake false)"
run direct_stream "http://$UP/v1/chat/completions" "$(body fake true)"
run eino_stream "http://$SRV/v1/chat/completions" "$(body up true)"
run floor_stream "http://$FLOOR/v1/chat/completions" "$(body fake true)"
[ "$LITELLM" = 1 ] && run litellm_stream "http://$LLM/v1/chat/completions" "$(body fake true)"
# CPU time (user + system) per request of the 64-connection JSON runs.
per_request eino_cpu_per_request_us $((after - before)) "$eino_reqs"
per_request floor_cpu_per_request_us "$floor_ticks" "$floor_reqs"
# 1000 concurrent slow streams (20 chunks, 50 ms apart): peak RSS of the server.
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
CHUNKS=20 CHUNK_DELAY_MS=50 target/release/examples/fake_upstream $UP 2>/dev/null & PIDS[0]=$!
sleep 0.3
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=[[%s]]\n' "$(body up true)" > "$TMP/req.lua"
ulimit -n 65536 2>/dev/null || true
wrk -t2 -c1000 -d10s --timeout 10s -s "$TMP/req.lua" "http://$SRV/v1/chat/completions" > "$TMP/wrk1000.txt"
echo "streams1000_rps $(awk '/Requests\/sec/ {print $2}' "$TMP/wrk1000.txt") req/s"
echo "peak_rss_kb $(awk '/VmHWM/ {print $2}' /proc/$EINO_PID/status) kB"
# Time to the first streamed token at one connection (the upstream's first chunk after
# 5 ms): what eino adds to it.
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
CHUNKS=4 CHUNK_DELAY_MS=5 target/release/examples/fake_upstream $UP 2>/dev/null & PIDS[0]=$!
sleep 0.3
read -r d50 d90 < <(python3 scripts/bench/ttft.py $UP fake 200)
read -r e50 e90 < <(python3 scripts/bench/ttft.py $SRV up 200)
read -r f50 f90 < <(python3 scripts/bench/ttft.py $FLOOR fake 200)
echo "direct_ttft_p50 $d50 us"; echo "direct_ttft_p90 $d90 us"
echo "eino_ttft_p50 $e50 us"; echo "eino_ttft_p90 $e90 us"
echo "floor_ttft_p50 $f50 us"; echo "floor_ttft_p90 $f90 us"
echo "eino_ttft_added_p50 $((e50 - d50)) us"; echo "floor_ttft_added_p50 $((f50 - d50)) us"
