#!/usr/bin/env bash
# Local generation side by side with llama.cpp: same machine, same model (SmolLM2-135M).
#
# Takes llama.cpp's sources from the PyPI source package llama-cpp-python (the tree under
# vendor/llama.cpp), builds only llama-bench and llama-quantize (-DGGML_NATIVE=ON) into
# target/llamacpp, makes a Q8_0 copy of the SmolLM2 GGUF (our engine runs Q8_0 internally,
# so llama.cpp's Q8_0 is the like-for-like anchor), then runs llama-bench (Q4_1 as stored,
# and Q8_0) and eino-local's bench_local alternately, at 1 and 2 threads, ROUNDS times, and
# prints the best figure of each as `name value unit` lines.
#   bash scripts/bench_llamacpp.sh              # ROUNDS=3 by default
# Prompt lengths follow bench_local's prompts: 37 tokens (its short chat prompt) and 300.
# AMX is off: on machines of this kind that report AMX, llama-bench built with it crashed
# in ggml's AMX matmul (the VM does not grant the tile state); AVX512-VNNI is used instead.
# GGML_NATIVE compiles for -march=native, which turns AMX on whatever GGML_AMX_* say, so
# the compiler is told -mno-amx-* (ggml's AMX code is compiled only under __AMX_INT8__).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
VERSION=0.3.35
W=target/llamacpp
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
mkdir -p "$W"
if [ ! -x "$W/build/bin/llama-bench" ]; then
    command -v cmake >/dev/null || apt-get install -y -qq cmake >/dev/null 2>&1 \
        || sudo apt-get install -y -qq cmake >/dev/null
    python3 -m pip download -q --no-binary llama-cpp-python --no-deps "llama-cpp-python==$VERSION" -d "$W/dl"
    tar xzf "$W/dl/llama_cpp_python-$VERSION.tar.gz" -C "$W"
    cmake -S "$W/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$W/build" \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" >"$W/cmake.log" 2>&1
    # The compiler's warnings on ggml's intrinsics run to megabytes: kept in the log.
    cmake --build "$W/build" --target llama-bench llama-quantize -j2 >>"$W/cmake.log" 2>&1 ||
        { echo "building llama.cpp failed: see $W/cmake.log" >&2; exit 1; }
fi
cargo build --release -q -p eino-local --example bench_local --example fetch_models
gguf="$(target/release/examples/fetch_models smollm2 | awk '{print $2}')/model.gguf"
q8="$W/smollm2-q8_0.gguf"
[ -f "$q8" ] || "$W/build/bin/llama-quantize" --allow-requantize "$gguf" "$q8" Q8_0 >/dev/null 2>&1

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
# llama-bench: prompt processing of 37 and 300 tokens, generation of 128, one repetition
# per call (the rounds repeat it); lines `llamacpp_<quant>_<figure>_t<threads> tokens/s`.
llama() { # quant file threads
    "$W/build/bin/llama-bench" -m "$2" -t "$3" -p 37,300 -n 128 -r 1 -o jsonl 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    fig = "gen" if r["n_gen"] else ("pp" if r["n_prompt"] < 100 else "pp_long")
    ts = r["avg_ts"]
    print(f"llamacpp_{sys.argv[1]}_{fig}_t{sys.argv[2]} {ts:.1f} tokens/s")
' "$1" "$3"
}
ours() { # threads
    RAYON_NUM_THREADS=$1 CANDLE_NUM_THREADS=$1 target/release/examples/bench_local |
        awk -v t="$1" '/^local_chat_(pp|pp_long|gen)_tps|^minilm_sentences_per_sec/ {
            sub(/_tps$/, "", $1); sub(/^local_chat_/, "ours_", $1); print $1 "_t" t, $2, $3 }'
}
for _ in $(seq "$ROUNDS"); do
    for t in 1 2; do
        llama q4_1 "$gguf" "$t" >>"$OUT"
        llama q8_0 "$q8" "$t" >>"$OUT"
        ours "$t" >>"$OUT"
    done
done
# Best of the rounds per figure, then our ratio to llama.cpp Q8_0.
python3 - "$OUT" <<'PY'
import sys
best = {}
for line in open(sys.argv[1]):
    name, value, unit = line.split()
    best[name] = (max(float(value), best.get(name, (0, unit))[0]), unit)
for name in sorted(best):
    print(f"{name} {best[name][0]:.1f} {best[name][1]}")
for fig in ("gen", "pp", "pp_long"):
    for t in (1, 2):
        ours, ref = best.get(f"ours_{fig}_t{t}"), best.get(f"llamacpp_q8_0_{fig}_t{t}")
        if ours and ref:
            print(f"ratio_{fig}_t{t} {ours[0] / ref[0]:.2f} x")
PY
