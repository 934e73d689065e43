#!/usr/bin/env bash
# The retrieval benchmark's corpus: the Linux man-pages project's pages (Debian packages
# `manpages` and `manpages-dev`), unpacked into a cache directory outside the repository.
# Prints that directory. Idempotent: a finished download is reused.
set -euo pipefail
dest="${EINO_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/eino/bench}/manpages"
if [ -f "$dest/.complete" ]; then
    echo "$dest"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# The version the recorded figures used; any version works, with slightly other figures.
if ! apt-get download manpages=6.03-2 manpages-dev=6.03-2 >&2 2>/dev/null; then
    echo "manpages 6.03-2 is not available here; taking the current version" >&2
    apt-get download manpages manpages-dev >&2
fi
for deb in ./*.deb; do
    dpkg-deb -x "$deb" x
done
rm -rf "$dest"
mkdir -p "$dest"
for section in x/usr/share/man/man*; do
    cp -r "$section" "$dest/"
done
# Alias pages are symlinks (or `.so` includes); the benchmark reads real pages only.
find "$dest" -type l -delete
find "$dest" -type f -name "*.gz" -exec gunzip -f {} +
touch "$dest/.complete"
echo "$dest"
