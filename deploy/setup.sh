#!/usr/bin/env bash
# Prepare a Debian 12 machine (as root) to run and test modelbus. Idempotent: every step
# checks first and does nothing when its work is already done.
#
#   1. apt packages: docker.io docker-compose debootstrap python3 python3-venv ca-certificates
#      prometheus (its server and promtool, for the alert-rule and dashboard tests, which
#      start a server of their own on their own port and storage, never the package's service),
#      curl (the quickstart calls the HTTP gateway with it)
#   2. the Docker engine: started in the background when `docker info` fails (no init system
#      needed; log in $MODELBUS_DOCKERD_LOG, default /var/log/modelbus-dockerd.log)
#   3. .venv with `pip install -e ".[test]"` (skipped while pyproject.toml is unchanged)
#   4. the offline base image for model containers: `modelbus images base`
#
# Environment: MODELBUS_SKIP_BASE_IMAGE=1 skips step 4; MODELBUS_DOCKERD_TIMEOUT (seconds,
# default 60) bounds the wait for the engine. It warns first when the repository's disk has
# less than MODELBUS_MIN_FREE_MB free (default 12000: the environment is about 2 GB, the
# images the tests build about 9 GB).
set -euo pipefail

case "${1:-}" in  # the comment above is the usage
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
                   "${BASH_SOURCE[0]}"; exit 0 ;;
esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
DOCKERD_LOG="${MODELBUS_DOCKERD_LOG:-/var/log/modelbus-dockerd.log}"
DOCKERD_TIMEOUT="${MODELBUS_DOCKERD_TIMEOUT:-60}"
MIN_FREE_MB="${MODELBUS_MIN_FREE_MB:-12000}"
export DEBIAN_FRONTEND=noninteractive

say() { printf '[setup] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (or install sudo)"
    SUDO=(sudo)
fi

install_packages() {
    local wanted=(docker.io docker-compose debootstrap python3 python3-venv ca-certificates
                  prometheus curl)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "apt packages present"
        return
    fi
    say "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

dockerd_alive() {
    # No pgrep: procps is not part of a minimal Debian.
    [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null
}

launch_dockerd() {
    say "starting dockerd${*:+ $*} (log: $DOCKERD_LOG)"
    # setsid + nohup: the engine must outlive this script and its terminal.
    "${SUDO[@]}" setsid nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    DOCKERD_PID=$!
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        say "docker engine is running"
        return
    fi
    DOCKERD_PID=""
    if dockerd_alive; then
        say "dockerd is starting; waiting for it"
    else
        launch_dockerd
    fi
    local deadline=$((SECONDS + DOCKERD_TIMEOUT)) retried=0
    until docker info >/dev/null 2>&1; do
        if [ -n "$DOCKERD_PID" ] && ! kill -0 "$DOCKERD_PID" 2>/dev/null && [ "$retried" = 0 ]; then
            # Kernels without netfilter modules (some VMs) stop dockerd at network set-up.
            # modelbus needs no container networking (model containers run network=none).
            tail -n 10 "$DOCKERD_LOG" >&2 || true
            say "dockerd exited; retrying without iptables and the default bridge"
            retried=1
            launch_dockerd --iptables=false --ip6tables=false --bridge=none
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "docker engine not ready after ${DOCKERD_TIMEOUT}s (see $DOCKERD_LOG)"
        fi
        sleep 1
    done
    say "docker engine is ready"
}

python_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 11)' \
        2>/dev/null
}

install_venv() {
    if ! python_ok; then
        say "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    fi
    local stamp="$VENV/.modelbus-installed"
    local digest
    digest="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x "$VENV/bin/modelbus" ]; then
        say "python environment up to date"
        return
    fi
    say "installing modelbus and its test dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --no-cache-dir --progress-bar off -e ".[test]")
    echo "$digest" >"$stamp"
}

build_base_image() {
    if [ "${MODELBUS_SKIP_BASE_IMAGE:-0}" = "1" ]; then
        say "skipping the base image (MODELBUS_SKIP_BASE_IMAGE=1)"
        return
    fi
    say "building the offline base image (modelbus images base)"
    (cd "$REPO" && "$VENV/bin/modelbus" images base)
}

check_disk() {
    # A full disk shows up much later as an unrelated-looking pip or docker error; say it first.
    local free_mb
    free_mb="$(df -Pm "$REPO" | awk 'NR == 2 { print $4 }')"
    if [ -n "$free_mb" ] && [ "$free_mb" -lt "$MIN_FREE_MB" ]; then
        say "warning: ${free_mb} MB free on the disk of $REPO; set-up and the tests need about" \
            "${MIN_FREE_MB} MB (the environment, the images, the tests' models and topics)"
    fi
}

check_disk
install_packages
start_docker
install_venv
build_base_image
say "done"
