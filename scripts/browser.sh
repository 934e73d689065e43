#!/usr/bin/env bash
# Makes a headless browser available to the web UI test: Debian's chromium (installed with
# apt-get when missing; needs root or sudo) and npm's playwright-core (pinned) under $1.
# Prints the directory holding node_modules.
set -euo pipefail
dir="${1:?usage: browser.sh DIR}"
pin="playwright-core@1.64.1"
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q chromium >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
fi
mkdir -p "$dir"
if [ "$(cat "$dir/installed.txt" 2>/dev/null)" != "$pin" ]; then
    npm install --silent --no-audit --no-fund --prefix "$dir" "$pin" >/dev/null
    echo "$pin" > "$dir/installed.txt"
fi
echo "$dir"
