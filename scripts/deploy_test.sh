#!/usr/bin/env bash
# The deploy test (docs/deploy.md): everything in deploy/ and the Dockerfile, checked
# statically and then run for real on this machine's Docker. Called by scripts/test.sh;
# installs what it needs (scripts/deploy/setup.sh), starts and stops dockerd itself, and
# removes its containers, networks and volumes at the end (the images stay, as a cache).
#
#   1. lint and validate: hadolint, yamllint, compose config, kustomize | kubernetes-validate
#      --strict (base and overlay), promtool (config, rules, alert unit tests), the
#      dashboard (generated file up to date, every query parsed by promtool);
#   2. build the images (release binary on the host, models baked in; runtime ≤ 150 MB);
#   3. one container alone: refuses a public address without auth, the model-less image
#      fails clearly, and with a key the official openai SDK drives it (models, chat,
#      stream, embeddings); cold start and image sizes are printed;
#   4. the compose stack: ingest through the balancer, ask both replicas (same sources),
#      Prometheus sees both replicas, 30 s of load while one replica is killed and started
#      again with zero failed requests, then `down -v`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deploy/setup.sh

T0=$SECONDS
step() { echo "== deploy test: $* (at $((SECONDS - T0)) s)"; }
fail() {
    echo "deploy test FAILED: $*" >&2
    exit 1
}
PROJECT=einoci
TAG=eino:ci
WORK=$(mktemp -d)
COMPOSE=(docker-compose -p "$PROJECT" -f deploy/compose/docker-compose.yml)
CONTAINERS=()

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)) && docker info >/dev/null 2>&1; then
        echo "---- logs of the failed run (last lines) ----" >&2
        "${COMPOSE[@]}" logs --tail=30 >&2 2>/dev/null
        for c in "${CONTAINERS[@]}"; do docker logs --tail=30 "$c" >&2 2>/dev/null; done
    fi
    if docker info >/dev/null 2>&1; then
        for c in "${CONTAINERS[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1; done
        "${COMPOSE[@]}" --profile grafana down -v -t 1 >/dev/null 2>&1
    fi
    deploy_stop_dockerd
    rm -rf "$WORK"
    echo "== deploy test: $([[ $rc == 0 ]] && echo passed || echo failed) in $((SECONDS - T0)) s"
}
trap cleanup EXIT

step "tools"
deploy_packages
deploy_venv
V=$DEPLOY_VENV/bin

step "static checks"
"$V/hadolint" --config deploy/hadolint.yaml Dockerfile
"$V/hadolint" --config deploy/hadolint.yaml --ignore DL3008 --ignore DL3066 deploy/compose/*/Dockerfile
"$V/yamllint" -c deploy/yamllint.yml deploy
POSTGRES_PASSWORD=x EINO_API_KEY_SHA256=x "${COMPOSE[@]}" --profile grafana config -q
for k in deploy/k8s/base deploy/k8s/overlays/production; do
    "$V/kubectl" kustomize "$k" >"$WORK/k8s.yaml"
    "$V/kubernetes-validate" --strict --quiet "$WORK/k8s.yaml" || fail "$k does not validate"
    grep -q "kind: Deployment" "$WORK/k8s.yaml" || fail "$k renders no Deployment"
done
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool check rules deploy/prometheus/eino.rules.yml >/dev/null
promtool test rules deploy/prometheus/tests/eino.test.yml
# Every alert has a unit test.
for a in $(sed -n 's/^ *- alert: *//p' deploy/prometheus/eino.rules.yml); do
    grep -q "alertname: $a\$" deploy/prometheus/tests/eino.test.yml || fail "alert $a has no unit test"
done
python3 scripts/deploy/dashboard.py --check
"$V/python" scripts/deploy/check_dashboard.py deploy/grafana/eino.json

step "engine"
deploy_dockerd
deploy_base_image

step "images"
bash scripts/deploy/image.sh "$TAG" >"$WORK/image.log" 2>&1 || { tail -30 "$WORK/image.log"; fail "image build"; }
size_mb() { echo $(($(docker image inspect -f '{{.Size}}' "$1") / 1000000)); }
echo "image sizes: $TAG-runtime $(size_mb "$TAG-runtime") MB, $TAG $(size_mb "$TAG") MB"
(($(size_mb "$TAG-runtime") <= 150)) || fail "the runtime image is over 150 MB"

KEY="deploy-test-key-$RANDOM$RANDOM$RANDOM"
HASH=$(target/release/eino keys hash "$KEY")
KEYS="[{sha256=\"$HASH\",tenant=\"deploy\",name=\"ci\"}]"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS: until it answers 2xx
    local deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

step "one container"
# Without auth the image's configuration (0.0.0.0) is refused, with the reason.
if docker run --rm "$TAG" >"$WORK/noauth.log" 2>&1; then fail "served without auth"; fi
grep -q "without authentication" "$WORK/noauth.log" || fail "no reason given: $(cat "$WORK/noauth.log")"
# The model-less image with the default (local-model) configuration names what is missing.
if docker run --rm -e "EINO_AUTH__API_KEYS=$KEYS" "$TAG-runtime" >"$WORK/nomodels.log" 2>&1; then
    fail "the runtime image served local models it does not have"
fi
grep -q "smollm2\|SmolLM2" "$WORK/nomodels.log" || fail "no model named: $(tail -3 "$WORK/nomodels.log")"
PORT=$(free_port)
CONTAINERS+=(eino-deploy-alone)
start_ms=$(date +%s%3N)
docker run -d --name eino-deploy-alone -p "127.0.0.1:$PORT:8080" -e "EINO_AUTH__API_KEYS=$KEYS" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges "$TAG" >/dev/null
wait_http "http://127.0.0.1:$PORT/ready" 120 || fail "the container never got ready"
echo "cold start (docker run to /ready, empty volume, models in the image): $(($(date +%s%3N) - start_ms)) ms"
EINO_API_KEY=$KEY "$V/python" crates/eino-cli/tests/sdk_client.py "http://127.0.0.1:$PORT" ||
    fail "the openai SDK against the container"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/models")
[[ $code == 401 ]] || fail "no key: $code, not 401"
for _ in $(seq 30); do
    [[ $(docker inspect -f '{{.State.Health.Status}}' eino-deploy-alone) == healthy ]] && break
    sleep 1
done
[[ $(docker inspect -f '{{.State.Health.Status}}' eino-deploy-alone) == healthy ]] ||
    fail "HEALTHCHECK never passed"
# The models are in the image: a container with no network at all loads them and gets ready.
CONTAINERS+=(eino-deploy-offline)
docker run -d --name eino-deploy-offline --network none -e "EINO_AUTH__API_KEYS=$KEYS" "$TAG" >/dev/null
for _ in $(seq 120); do
    docker exec eino-deploy-offline eino health >/dev/null 2>&1 && break
    sleep 0.5
done
docker exec eino-deploy-offline eino health >/dev/null || fail "no ready without network"
docker rm -f eino-deploy-offline >/dev/null
stop_ms=$(date +%s%3N)
docker stop -t 40 eino-deploy-alone >/dev/null
[[ $(docker inspect -f '{{.State.ExitCode}}' eino-deploy-alone) == 0 ]] || fail "unclean exit on SIGTERM"
echo "graceful stop (SIGTERM to exit 0): $(($(date +%s%3N) - stop_ms)) ms"

step "compose: up"
export EINO_IMAGE=$TAG EINO_STACK_TAG=ci EINO_API_KEY_SHA256=$HASH EINO_TENANT=deploy
export POSTGRES_PASSWORD="pw-$RANDOM$RANDOM" EINO_REQUESTS_PER_MINUTE=600000
EINO_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
export EINO_PORT PROMETHEUS_PORT
LB=http://127.0.0.1:$EINO_PORT
PROM=http://127.0.0.1:$PROMETHEUS_PORT
"${COMPOSE[@]}" build -q >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "compose build"; }
"${COMPOSE[@]}" up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "compose up"; }
wait_http "$LB/lb-health" 120 || fail "the balancer never got healthy"
wait_http "$PROM/-/ready" 60 || fail "Prometheus never got ready"
api() { # METHOD PATH [JSON]: through the balancer, with the key
    curl -fsS -X "$1" "$LB$2" -H "authorization: Bearer $KEY" -H 'content-type: application/json' ${3:+-d "$3"}
}
prom() { # QUERY: the first sample's value, or empty
    curl -fsS "$PROM/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
wait_prom() { # QUERY VALUE SECONDS
    local deadline=$((SECONDS + $3))
    until [[ "$(prom "$1")" == "$2" ]]; do
        ((SECONDS < deadline)) || fail "Prometheus: $1 is '$(prom "$1")', not $2"
        sleep 1
    done
}
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$("${COMPOSE[@]}" ps -q "$1")"; }

step "compose: ingest through the balancer, ask each replica"
api POST /api/v1/knowledge-bases '{"name": "docs"}' >/dev/null
job=$(curl -fsS "$LB/api/v1/knowledge-bases/docs/documents" -H "authorization: Bearer $KEY" \
    -F file=@crates/eino-rag/tests/fixtures/docs/rust.md | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 120); do
    state=$(api GET "/api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    [[ $state == running ]] || break
    sleep 0.5
done
[[ $state == done ]] || fail "ingestion job: $state"
ask() { # REPLICA: the sorted sources of its answer, asked directly (not through the balancer)
    curl -fsS "http://$(ip_of "$1"):8080/api/v1/chat" -H "authorization: Bearer $KEY" \
        -H 'content-type: application/json' \
        -d '{"message": "What is Cargo, the Rust build tool?", "max_tokens": 16}' |
        python3 -c 'import json,sys; print(sorted({s["source"] for s in json.load(sys.stdin)["sources"]}))'
}
one=$(ask eino1)
two=$(ask eino2)
echo "sources: eino1 $one, eino2 $two"
[[ $one == "$two" && $one == *rust.md* ]] || fail "the replicas answer from different sources"

step "compose: Prometheus scrapes both replicas"
wait_prom 'sum(up{job="eino"})' 2 60
wait_prom 'sum(eino_ready{job="eino"})' 2 60

step "compose: 30 s of load, one replica killed at 10 s and started at 20 s"
"$V/python" scripts/deploy/load.py --url "$LB" --key "$KEY" --kb docs --seconds 30 --clients 8 \
    >"$WORK/load.json" &
load=$!
sleep 10
victim=$("${COMPOSE[@]}" ps -q eino2)
docker kill "$victim" >/dev/null
sleep 10
docker start "$victim" >/dev/null
wait $load || { cat "$WORK/load.json"; fail "requests failed during the failover"; }
echo "load: $(cat "$WORK/load.json")"
for _ in $(seq 90); do
    [[ $(docker inspect -f '{{.State.Health.Status}}' "$victim") == healthy ]] && break
    sleep 1
done
wait_prom 'sum(up{job="eino"})' 2 60
wait_prom 'count(eino_build_info{job="eino"})' 2 30
# The restarted replica is back in the balancer's rotation: requests sent through the
# balancer reach it again. (The load may end before the balancer's checks readmit it; its
# counters started again from zero, so without this Prometheus could see only one replica.)
served_by_eino2() {
    curl -fsS "http://$(ip_of eino2):8080/metrics" | grep '^http_requests_total{.*route="/v1/embeddings"' >/dev/null
}
deadline=$((SECONDS + 60))
until served_by_eino2; do
    ((SECONDS < deadline)) || fail "the restarted replica never got requests from the balancer"
    for i in $(seq 8); do api POST /v1/embeddings "{\"model\": \"minilm\", \"input\": \"back $i\"}" >/dev/null; done
    sleep 1
done
# Both replicas served requests, as Prometheus sees them.
wait_prom 'count(sum by (instance) (http_requests_total{job="eino", route="/v1/embeddings"}) > 0)' 2 30
# Alerts load and evaluate in the running Prometheus.
[[ $(curl -fsS "$PROM/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))') -ge 10 ]] ||
    fail "Prometheus did not load eino's rules"

step "compose: down"
"${COMPOSE[@]}" --profile grafana down -v -t 10 >/dev/null 2>&1
