#!/usr/bin/env bash
# Build the eino images from this checkout (docs/deploy.md):
#   TAG          the runtime with the default local models baked in (Dockerfile target with-models)
#   TAG-runtime  the binary alone (target runtime)
# Usage: scripts/deploy/image.sh [TAG]   (default eino:latest)
#
# The Dockerfile has no Rust builder stage: the release binary is built here, on the host,
# and copied in with the models and the image's configuration from a staging directory
# (the build context). The base image (debian:trixie-slim) is pulled by Docker as usual;
# where no registry is reachable, scripts/deploy/setup.sh makes it with debootstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-eino:latest}
docker=${DOCKER:-docker}

cargo build --release -p eino-cli
stage=target/docker-context
rm -rf "$stage"
mkdir -p "$stage/models"
cp Dockerfile deploy/eino.yaml "$stage/"
# Stripped like a distribution's binaries (12 MB less). A panic still says where it
# happened: its message carries the file and line, which need no symbols.
strip --strip-all -o "$stage/eino" target/release/eino
# The default models: fetched into the model cache if missing (sha256-checked), then
# copied into the context.
target/release/eino models pull | while IFS=$'\t' read -r name dir; do
    cp -a "$dir" "$stage/models/$name"
done
for m in "$stage"/models/*; do
    test -f "$m/.verified" || { echo "image.sh: $m is not a verified model" >&2; exit 1; }
done

"$docker" build --target runtime -t "$tag-runtime" "$stage"
"$docker" build --target with-models -t "$tag" "$stage"
"$docker" image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -F "${tag%%:*}:" || true
