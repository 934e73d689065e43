#!/usr/bin/env bash
# The project's test command (README.md and CI call this).
set -euo pipefail
cd "$(dirname "$0")/.."
# Incremental caches double the target directory and buy nothing in a one-off test run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
