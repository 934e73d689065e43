# The eino image: a Debian slim runtime with the `eino` binary, running as a non-root user.
#
# The build context is a staging directory made by `scripts/deploy/image.sh`, not the
# repository: `eino` (a release binary built on the host with `cargo build --release -p
# eino-cli`), `eino.yaml` (deploy/eino.yaml) and `models/` (the two default local models,
# fetched and sha256-checked by `eino models pull`). There is no Rust builder stage: the
# binary needs only glibc and libstdc++ (both in Debian slim), so the host's build is the
# image's, and a toolchain image would add gigabytes to every CI run.
#
# Two targets:
#   runtime      the binary alone (130 MB): for deployments whose models are upstream
#                providers, or that mount a model directory at $EINO_MODELS_DIR.
#   with-models  the default (last) target: the runtime plus the default local models
#                baked in at build time (320 MB in all), so a replica starts in seconds, with no
#                download, no Python and no egress at start.
ARG BASE=debian:trixie-slim

FROM ${BASE} AS common
# One user, fixed ids (Kubernetes' runAsUser and fsGroup name them); the data directory is
# its own, 0700, and a volume.
RUN groupadd --system --gid 10001 eino \
    && useradd --system --uid 10001 --gid eino --no-create-home \
        --home-dir /var/lib/eino --shell /usr/sbin/nologin eino \
    && install -d -o eino -g eino -m 0700 /var/lib/eino
COPY eino.yaml /etc/eino/eino.yaml
# Configuration: /etc/eino/eino.yaml (mount another over it), then EINO_… variables, which
# win (EINO_STORE__DATABASE_URL, EINO_AUTH__API_KEYS, …; docs/deploy.md).
ENV EINO_MODELS_DIR=/opt/eino/models \
    HOME=/var/lib/eino
WORKDIR /var/lib/eino
VOLUME ["/var/lib/eino"]
EXPOSE 8080
USER 10001:10001
# /ready: the store answers and the server is not shutting down. The start period covers
# loading the local models.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["eino", "health", "--path", "/ready"]
ENTRYPOINT ["eino"]
# The image's configuration listens on 0.0.0.0:8080, which `eino serve` refuses unless
# authentication is configured (API keys or JWT): the loopback rule holds in containers too.
CMD ["serve", "--config", "/etc/eino/eino.yaml"]

FROM common AS runtime
COPY eino /usr/local/bin/eino

FROM common AS with-models
# Models first: they change far less often than the binary, so their layer stays cached.
COPY models/ /opt/eino/models/
COPY eino /usr/local/bin/eino
