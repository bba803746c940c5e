#!/usr/bin/env bash
# The compose deployment, run for real with podman (docs/deploy.md):
#   1. podman, podman-compose, buildah, debootstrap and runc installed if missing, and the host
#      settings podman needs here (/etc/containers/containers.conf, only when absent);
#   2. a Debian 12 base image debootstrapped from the host's apt mirror (once: kept as
#      localhost/debian:bookworm, tagged debian:12 and debian:12-slim);
#   3. the service image from docker/runtime.Dockerfile around the binaries of BUILD_DIR, and a
#      Prometheus image from Debian's package (docker/prometheus.Dockerfile);
#   4. deploy/docker-compose.yml up (controller, 2 activation servers, 2 trainers, Prometheus;
#      Grafana has no Debian package, so its panels' queries are evaluated here instead);
#   5. a tiny run submitted from the host with saectl (bearer token from sae.env), waited for to
#      SUCCEEDED, then Prometheus's HTTP API asked for the run's series and for every Grafana
#      panel's query over the run's time range: a panel with no data fails the test;
#   6. everything torn down: containers, network, volumes, the work folder.
# Usage: scripts/compose-test.sh [--full-image] [BUILD_DIR]   (default build; needs root, as podman
# here). With --full-image the service image is docker/Dockerfile's whole multi-stage build from
# the sources (the build packages, CMake/Ninja inside the image: about an hour on 2 cores the
# first time) instead of the runtime stage around BUILD_DIR's binaries; BUILD_DIR's saectl still
# submits the run from the host.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
FULL_IMAGE=0
if [ "${1:-}" = "--full-image" ]; then FULL_IMAGE=1; shift; fi
BUILD_DIR=$(realpath "${1:-build}")
SAECTL="$BUILD_DIR/bin/saectl"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
log() { echo "compose-test: $*" >&2; }
for b in saectl sae-controller sae-activation-server sae-trainer; do
  [ -x "$BUILD_DIR/bin/$b" ] || { log "$BUILD_DIR/bin/$b is missing: build first"; exit 2; }
done

# 1. Packages and host settings.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
# dnsname: service names resolve between containers (podman 4.3 on CNI; not a hard dependency of podman).
for p in podman podman-compose buildah debootstrap runc golang-github-containernetworking-plugin-dnsname; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ]; then
  # Without the ulimits a container start fails with "setrlimit RLIMIT_NOFILE: Operation not
  # permitted"; crun fails on this host's cgroups, runc works.
  nofile=$(ulimit -Hn)
  log "writing /etc/containers/containers.conf (runc, cgroupfs, nofile $nofile)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee /etc/containers/containers.conf >/dev/null <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

# 2. The base image, from Debian's packages (no registry is needed).
if ! podman image exists localhost/debian:bookworm; then
  mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?$' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d)
  log "debootstrapping Debian 12 from $mirror (about a minute)"
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "${mirror%/}" "${mirror%/}" "${mirror%/}" | $SUDO tee "$rootfs/etc/apt/sources.list" >/dev/null
  $SUDO tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null
  $SUDO rm -rf "$rootfs"
fi
podman tag localhost/debian:bookworm docker.io/library/debian:bookworm docker.io/library/debian:12 docker.io/library/debian:12-slim

# 3. Images: the service around the host's binaries, and Prometheus.
WORK=$(mktemp -d)
PROJECT="saecompose$$"
COMPOSE=(podman-compose -p "$PROJECT" -f "$WORK/deploy/docker-compose.yml")
cleanup() {
  status=$?
  if [ $status -ne 0 ] && [ -f "$WORK/deploy/docker-compose.yml" ]; then
    for s in controller_1 activation-server_1 activation-server_2 trainer_1 trainer_2 prometheus_1; do
      log "---- logs of ${PROJECT}_$s"; podman logs --tail 40 "${PROJECT}_$s" 2>&1 | sed 's/^/  /' >&2 || true
    done
  fi
  if [ -f "$WORK/deploy/docker-compose.yml" ]; then
    "${COMPOSE[@]}" down -t 1 -v >/dev/null 2>&1 || true
    podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
    podman volume ls -q | grep "^${PROJECT}_" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap "exit 143" TERM INT HUP

REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ $FULL_IMAGE -eq 1 ]; then
  log "building localhost/sae-service:test from docker/Dockerfile (all stages; log: $WORK/image-build.log)"
  started=$(date +%s)
  # The host's CA bundle, for npm behind a TLS-intercepting proxy (as on the machines this is
  # developed on): a build secret, kept in no layer.
  podman build --format docker --network=host -f docker/Dockerfile --build-arg SAE_REVISION="$REVISION" \
    --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt \
    -t localhost/sae-service:test . >"$WORK/image-build.log" 2>&1 || {
    tail -n 60 "$WORK/image-build.log" >&2; log "docker/Dockerfile did not build"; exit 1; }
  log "docker/Dockerfile built in $(( $(date +%s) - started )) s"
else
  mkdir -p "$WORK/context/bin" "$WORK/context/docker"
  for b in saectl sae-controller sae-activation-server sae-trainer; do
    strip --strip-debug -o "$WORK/context/bin/$b" "$BUILD_DIR/bin/$b"
  done
  cp -r "$CACHE/gpt2-tokenizer" "$WORK/context/gpt2-tokenizer"
  cp docker/runtime-packages.txt docker/healthcheck.sh "$WORK/context/docker/"
  log "building localhost/sae-service:test (the apt layer is cached after the first time)"
  podman build -q --format docker --network=host -f docker/runtime.Dockerfile \
    --build-arg SAE_REVISION="$REVISION" -t localhost/sae-service:test "$WORK/context" >/dev/null
fi
# The image as the issue of record asks for it: non-root, a health check, OCI labels, the four
# binaries without debug info.
image_user=$(podman image inspect -f '{{.Config.User}}' localhost/sae-service:test)
[ "$image_user" = sae ] || { log "the image runs as '$image_user', not sae"; exit 1; }
podman image inspect -f '{{json .Config.Healthcheck}}' localhost/sae-service:test | grep -q sae-healthcheck \
  || { log "the image has no HEALTHCHECK running sae-healthcheck"; exit 1; }
[ "$(podman image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' localhost/sae-service:test)" = "$REVISION" ] \
  || { log "the image's org.opencontainers.image.revision label is not $REVISION"; exit 1; }
podman run --rm --network=none -e REVISION="$REVISION" localhost/sae-service:test bash -c '
  for b in saectl sae-controller sae-activation-server sae-trainer; do
    "$b" --help >/dev/null || { echo "$b --help failed in the image"; exit 1; }
  done
  [ "$(id -u)" = 10001 ] || { echo "uid $(id -u), not 10001"; exit 1; }
  grep -q "(revision $REVISION)" /etc/sae-service-release \
    || { echo "/etc/sae-service-release: $(cat /etc/sae-service-release), not revision $REVISION"; exit 1; }
  if sae-healthcheck >/dev/null 2>&1; then echo "sae-healthcheck passes with nothing listening"; exit 1; fi' \
  || { log "the image's binaries do not run"; exit 1; }
probe=$(podman create localhost/sae-service:test)
podman cp "$probe:/usr/local/bin/sae-trainer" "$WORK/sae-trainer.image" && podman rm -f "$probe" >/dev/null
if readelf -S "$WORK/sae-trainer.image" | grep -q '\.debug_info'; then
  log "the image's sae-trainer still has debug info"; exit 1
fi
log "image: user sae (uid 10001), HEALTHCHECK, revision label $REVISION, binaries run, no debug info"
log "building localhost/sae-prometheus:test"
podman build -q --format docker --network=host -f docker/prometheus.Dockerfile -t localhost/sae-prometheus:test docker >/dev/null

# 4. The stack, from a copy of deploy/ with the test's token, ports and a 2 s scrape interval
#    (so that a run of a minute gives every rate() window samples).
cp -r deploy "$WORK/deploy"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "SAE_AUTH_TOKEN=$TOKEN" > "$WORK/deploy/sae.env"
sed -i 's/scrape_interval: 10s/scrape_interval: 2s/; s/evaluation_interval: 10s/evaluation_interval: 2s/' \
  "$WORK/deploy/prometheus/prometheus.yml"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export SAE_CONTROLLER_PORT=$(free_port) SAE_CONSOLE_PORT=$(free_port) SAE_PROMETHEUS_PORT=$(free_port)
export SAE_IMAGE=localhost/sae-service:test PROMETHEUS_IMAGE=localhost/sae-prometheus:test
export SAE_MODELS_DIR="$WORK/models" SAE_DATA_DIR="$WORK/data"
mkdir -p "$SAE_MODELS_DIR" "$SAE_DATA_DIR"
"$SAECTL" model init --preset gpt2-tiny --seed 0 --out "$SAE_MODELS_DIR/gpt2-tiny" >/dev/null
cp "$CACHE/corpus/fortunes.jsonl" "$SAE_DATA_DIR/fortunes.jsonl"
chmod -R a+rX "$WORK"
log "podman-compose up (project $PROJECT, controller on 127.0.0.1:$SAE_CONTROLLER_PORT)"
"${COMPOSE[@]}" up -d controller activation-server trainer prometheus >"$WORK/up.log" 2>&1 || {
  cat "$WORK/up.log" >&2; exit 1; }

export SAECTL_SERVER="127.0.0.1:$SAE_CONTROLLER_PORT" SAE_AUTH_TOKEN="$TOKEN"
deadline=$((SECONDS + 240))
until "$SAECTL" get runs >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { log "the controller did not answer in 240 s"; "$SAECTL" get runs >&2 || true; exit 1; }
  sleep 2
done
log "the controller answers; submitting a run (it starts once 2 activation servers and 2 trainers registered)"

# 5. A tiny run, from the host, with the documented command.
RUN=$("$SAECTL" submit examples/quickstart.yaml --name compose \
  --set model_name=gpt2-tiny --set model_path=/models/gpt2-tiny \
  --set dataset_path=/data/fortunes.jsonl --set hook_point=blocks.1.hook_resid_pre \
  --set context_size=32 --set train_batch_size=512 --set total_training_tokens=102400 \
  --set store_batch_size=8 --set n_checkpoints=2 | tail -n 1)
log "run $RUN submitted"
if ! "$SAECTL" wait "$RUN" --timeout 600; then
  "$SAECTL" describe run "$RUN" >&2 || true
  exit 1
fi
log "run $RUN SUCCEEDED"
# Each service's health check, run as the engine runs it (podman runs the timers through systemd,
# which this host lacks, so the test runs each once itself).
for s in controller_1 activation-server_1 activation-server_2 trainer_1 trainer_2; do
  podman healthcheck run "${PROJECT}_$s" >/dev/null 2>&1 \
    || { log "the health check of ${PROJECT}_$s failed"; podman inspect -f '{{json .State.Health}}' "${PROJECT}_$s" >&2 || true; exit 1; }
done
log "the health checks of the controller, both activation servers and both trainers pass"
"$SAECTL" get runs -o wide >&2
/usr/bin/python3 tests/deploy/compose_queries.py --prometheus "http://127.0.0.1:$SAE_PROMETHEUS_PORT" \
  --run "$RUN" --dashboard deploy/grafana/dashboards/sae-training.json --token "$TOKEN" \
  --logs-of "$PROJECT"
log "passed"
