#!/usr/bin/env bash
# The project's test command (README.md and CI call this).
set -euo pipefail
cd "$(dirname "$0")/.."
# Incremental caches double the target directory and buy nothing in a one-off test run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Modules in floors: no import circle in the server or in the core's compose/.
python3 scripts/module_cycles.py crates/eino-server/src --depth 1
python3 scripts/module_cycles.py crates/eino-server/src --depth 2
python3 scripts/module_cycles.py crates/eino/src --prefix compose --depth 2
python3 scripts/module_cycles.py crates/eino/src --prefix adk --depth 2
cargo test --workspace
# The service's API suites again, every test server on its own throwaway PostgreSQL
# (tests/common/pg.rs) instead of SQLite: both stores pass the same suites. `--workspace`
# keeps the first pass's feature set, so the test binaries are reused, not rebuilt.
EINO_TEST_STORE=postgres cargo test --workspace \
    --test native_api --test openai_api --test tools --test knowledge --test resilience \
    --test web_ui --test otlp --test openai_sdk --test agent --test redis --test hardening --test crash \
    --test mcp_tools --test multi_agent
# The deploy test: the Dockerfile, the compose stack and the Kubernetes, Prometheus and
# Grafana files, checked and run on Docker (docs/deploy.md). It needs root (apt, dockerd);
# EINO_SKIP_DEPLOY_TEST=1 skips it on a workstation, never in CI.
if [[ "${EINO_SKIP_DEPLOY_TEST:-0}" == 1 ]]; then
    echo "SKIPPED: the deploy test (EINO_SKIP_DEPLOY_TEST=1)" >&2
else
    bash scripts/deploy_test.sh
fi
